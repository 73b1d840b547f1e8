"""The GitHub Actions recipe in examples/github-actions/ uses only commands and options
that exist: every `reconciler ...` command line of every `run:` step is checked against
the click command tree of ``reconciler.cli.cli`` (global options before or after the
subcommand, subcommand groups such as ``state``, options and their values)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from reconciler.cli import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "github-actions"
WORKFLOWS = sorted(EXAMPLES.glob("*.yml")) + sorted(EXAMPLES.glob("*.yaml"))
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "then", "do", "else"}


def run_scripts(workflow: dict) -> list[str]:
    scripts = []
    for job in (workflow.get("jobs") or {}).values():
        for step in job.get("steps") or ():
            if isinstance(step.get("run"), str):
                scripts.append(step["run"])
    return scripts


def command_lines(script: str) -> list[list[str]]:
    """The token lists of every `reconciler` invocation in a shell script."""
    script = script.replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("#") or "reconciler" not in line:
            continue
        # ${{ expressions }} and $(subshells) are opaque values, never options.
        line = re.sub(r"\$\{\{.*?\}\}", "EXPR", line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        tokens = list(lexer)
        for index, token in enumerate(tokens):
            # a command position: start of line or after a shell operator
            if token == "reconciler" and (index == 0 or tokens[index - 1] in SHELL_OPERATORS
                                          or tokens[index - 1].endswith(("(", ";"))):
                args = []
                for arg in tokens[index + 1:]:
                    if arg in SHELL_OPERATORS or set(arg) <= set(";&|<>"):
                        break
                    args.append(arg)
                found.append(args)
    return found


def options_of(command: click.Command) -> dict[str, click.Option]:
    return {opt: p for p in command.params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)}


def check(args: list[str]) -> list[str]:
    """Problems of one `reconciler ARGS...` invocation (empty when it is valid)."""
    problems = []
    command: click.Command = cli
    path = ["reconciler"]
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if token.startswith("-") and token != "-":
            name, _, inline = token.partition("=")
            # global options go before or after the subcommand
            option = options_of(command).get(name) or options_of(cli).get(name)
            if option is None and command.get_help_option(click.Context(command)) is not None \
                    and name in ("-h", "--help"):
                continue
            if option is None:
                problems.append(f"{' '.join(path)}: no option {name}")
                continue
            if not option.is_flag and not inline:
                if not rest:
                    problems.append(f"{' '.join(path)}: option {name} needs a value")
                else:
                    rest.pop(0)
            continue
        if isinstance(command, click.Group):
            sub = command.commands.get(token)
            if sub is None:
                problems.append(f"{' '.join(path)}: no command {token!r}")
                return problems
            command, path = sub, [*path, token]
            continue
        # a positional argument of a leaf command
        if not any(isinstance(p, click.Argument) for p in command.params):
            problems.append(f"{' '.join(path)}: takes no argument {token!r}")
    if isinstance(command, click.Group):
        problems.append(f"{' '.join(path)}: no subcommand given")
    return problems


def all_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        for script in run_scripts(workflow):
            found.extend((path.name, args) for args in command_lines(script))
    return found


def test_the_three_workflows_exist_and_parse():
    names = {p.name for p in WORKFLOWS}
    assert {"plan.yml", "apply.yml", "drift.yml"} <= names
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow.get("jobs"), path.name
        # PyYAML reads the key `on` as True (YAML 1.1)
        assert workflow.get("on", workflow.get(True)), f"{path.name} has no trigger"
    assert (EXAMPLES / "README.md").is_file()


@pytest.mark.parametrize("name, args", all_invocations(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_reconciler_command_exists(name, args):
    assert check(args) == [], f"{name}: reconciler {' '.join(args)}"


def test_the_workflows_use_the_commands_the_recipe_promises():
    used = {name: [" ".join(args) for n, args in all_invocations() if n == name] for name in
            ("plan.yml", "apply.yml", "drift.yml")}
    assert "--no-color plan --format markdown --detailed-exitcode -o plan.out" in used["plan.yml"]
    assert "--no-color plan --allow-mass-delete --format markdown --detailed-exitcode -o plan.out" in used["plan.yml"]
    # on merge: the reviewed plan file, else a plan made (and posted) there; never a blind apply
    assert "--no-color apply EXPR --format json" in used["apply.yml"]
    assert "--no-color apply plan.out --format json" in used["apply.yml"]
    assert not any("--auto-approve" in line for line in used["apply.yml"])
    assert any("drift --format markdown" in line for line in used["drift.yml"])


def load(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_the_apply_on_merge_finds_the_plan_the_pull_request_kept():
    plan, apply = load("plan.yml"), load("apply.yml")
    [upload] = [s for s in steps(plan) if s.get("uses", "").startswith("actions/upload-artifact")]
    assert "plan.out" in upload["with"]["path"]
    assert apply["env"]["PLAN_WORKFLOW"] == plan["name"]
    [find] = [s for s in steps(apply) if s.get("id") == "reviewed"]
    assert f"--name {upload['with']['name']} " in find["run"] and '--commit "$head"' in find["run"]
    assert plan["env"]["MASS_DELETE_LABEL"] == apply["env"]["MASS_DELETE_LABEL"]
    assert apply["permissions"]["actions"] == "read"  # to download another run's artifact
    # the apply tells a stale plan from any other failure by the outcome report
    [reviewed] = [s for s in steps(apply) if s.get("id") == "apply_reviewed"]
    assert "jq -r '.error.kind" in reviewed["run"] and '"stale_plan"' in reviewed["run"]
    from reconciler.apply.outcome import error_kind
    from reconciler.errors import StalePlanError

    assert error_kind(StalePlanError("x")) == "stale_plan"


def test_a_refused_plan_gets_the_recipe_s_approval_hint():
    from reconciler.plan.render import MASS_DELETE_REFUSED

    [plan_step] = [s for s in steps(load("plan.yml")) if s.get("id") == "plan"]
    assert f'grep -qF "{MASS_DELETE_REFUSED}" plan.md' in plan_step["run"]
    assert "env.MASS_DELETE_LABEL" in plan_step["env"]["APPROVED"]
    [comment] = [s for s in steps(load("plan.yml")) if "github-script" in s.get("uses", "")]
    assert comment["if"].startswith("always()")  # posted when no plan could be made, too


def test_triggers_concurrency_and_secrets():
    def load(name):
        data = yaml.safe_load((EXAMPLES / name).read_text())
        return data, data.get("on", data.get(True))

    plan, on = load("plan.yml")
    assert "pull_request" in on
    apply, on = load("apply.yml")
    assert on["push"]["branches"] == ["main"]
    assert apply["concurrency"]["cancel-in-progress"] is False
    drift, on = load("drift.yml")
    assert on["schedule"][0]["cron"]
    assert drift["concurrency"]["group"] != apply["concurrency"]["group"]


def test_the_checker_catches_mistakes():
    assert check(["plan", "--format", "markdown", "--detailed-exitcode"]) == []
    assert check(["--no-color", "-C", "catalog", "drift", "-t", "meta-us", "--format=json"]) == []
    assert check(["state", "unlock"]) == []
    assert check(["state", "rm", "SKU-1", "-t", "meta-us"]) == []
    assert check(["plan", "--detailed-exit-code"]) == ["reconciler plan: no option --detailed-exit-code"]
    assert check(["drfit"]) == ["reconciler: no command 'drfit'"]
    assert check(["state"]) == ["reconciler state: no subcommand given"]
    assert check(["plan", "--format"]) == ["reconciler plan: option --format needs a value"]
    assert check(["--auto-approve", "apply"]) == ["reconciler: no option --auto-approve"]
    assert check(["plan", "--no-color", "-C", "catalog"]) == []
    assert check(["show", "--auto-approve"]) == ["reconciler show: no option --auto-approve"]
    assert check(["validate", "extra"]) == ["reconciler validate: takes no argument 'extra'"]
    assert command_lines('set +e\nreconciler --no-color drift --format markdown > drift.md\ncode=$?') == [
        ["--no-color", "drift", "--format", "markdown"]]
    assert command_lines("if [ -f x ]; then reconciler status; fi") == [["status"]]
    assert command_lines('pip install "reconciler==${RECONCILER_VERSION}"') == []


# -- what the workflows install, and where their secrets go ---------------------------------
PIP = re.compile(r"(?:^|[;&|(]\s*|\s)(?:python3? -m )?pip3? install\s+([^;&|\n]*)")
GIT_REF = re.compile(r"^[A-Za-z0-9_.-]+ @ git\+https://[^@\s]+@(?P<ref>[^@\s]+)$")
BRANCHES = {"main", "master", "HEAD", "develop", "trunk"}


def expand(text: str, env: dict[str, str]) -> str:
    """``$VAR``, ``${VAR}`` and ``${{ env.VAR }}`` replaced by the workflow's values."""
    text = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env.get(m[1], m[0]), text)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], m[0]), text)


def installs(workflow: dict) -> list[str]:
    """Every requirement a ``pip install`` of a ``run:`` step names, its options left out,
    with the workflow's, the job's and the step's ``env`` expanded."""
    found = []
    for job in (workflow.get("jobs") or {}).values():
        for step in job.get("steps") or ():
            if not isinstance(step.get("run"), str):
                continue
            env = {**(workflow.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
            for match in PIP.finditer(step["run"].replace("\\\n", " ")):
                for arg in shlex.split(expand(match[1], env)):
                    found.append(arg)
    return found


def install_problem(arg: str) -> str | None:
    """Why installing ``arg`` is not allowed: only this project, from its own repository at
    a pinned ref (``NAME @ git+https://...@REF``) or from a checked-out directory."""
    if arg.startswith("-"):
        return f"{arg}: no pip option (-r, -U, an index...) may widen what is installed"
    if arg.startswith((".", "/")):
        return None
    match = GIT_REF.match(arg)
    if match is None:
        return f"{arg!r} is a name looked up on a package index"
    if match["ref"] in BRANCHES:
        return f"{arg!r} installs a branch, which moves; pin a tag or a commit"
    return None


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_workflow_installs_a_bare_name_from_an_index(path):
    workflow = yaml.safe_load(path.read_text())
    args = installs(workflow)
    assert args, f"{path.name} installs nothing"
    assert [problem for arg in args if (problem := install_problem(arg))] == []
    assert any(arg.startswith("reconciler-catalog @ git+") for arg in args)


def test_the_install_check_catches_index_names():
    assert install_problem("reconciler-catalog @ git+https://github.com/o/reconciler@v0.1.0") is None
    assert install_problem("reconciler-catalog @ git+https://github.com/o/reconciler@3f2a9c1") is None
    assert install_problem("./reconciler") is None
    assert "package index" in install_problem("reconciler==0.1.0")
    assert "package index" in install_problem("reconciler-catalog")
    assert "branch" in install_problem("reconciler-catalog @ git+https://github.com/o/reconciler@main")
    assert "pip option" in install_problem("-r")
    assert subcommand(["--no-color", "-C", "apply", "status", "-t", "x"]) == "status"
    workflow = {"env": {"V": "0.1.0"}, "jobs": {"j": {"steps": [
        {"run": 'python -m pip install --quiet "reconciler==${V}" && reconciler plan'}]}}}
    assert installs(workflow) == ["--quiet", "reconciler==0.1.0"]


CREDENTIAL_COMMANDS = {"apply", "status", "drift", "import"}


def subcommand(args: list[str]) -> str:
    """The command a `reconciler ARGS...` invocation runs (its global options skipped)."""
    rest, globals_ = list(args), options_of(cli)
    while rest:
        token = rest.pop(0)
        option = globals_.get(token.partition("=")[0])
        if option is None:
            return token
        if not option.is_flag and "=" not in token and rest:
            rest.pop(0)
    return ""


def secret_names(env: dict | None) -> list[str]:
    return [name for name, value in (env or {}).items() if "secrets." in str(value)]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_secrets_reach_only_the_steps_that_talk_to_the_destinations(path):
    workflow = yaml.safe_load(path.read_text())
    assert secret_names(workflow.get("env")) == [], "secrets in the workflow's environment"
    for name, job in workflow["jobs"].items():
        assert secret_names(job.get("env")) == [], f"secrets in the environment of job {name}"
        for step in job.get("steps") or ():
            if not secret_names(step.get("env")):
                continue
            run = step.get("run", "")
            assert not PIP.search(run), f"{step.get('name')}: installs with secrets in its environment"
            commands = command_lines(run)
            used = {subcommand(args) for args in commands}
            assert commands and used <= CREDENTIAL_COMMANDS, (
                f"{step.get('name')}: secrets given to a step that runs {sorted(used) or 'no reconciler command'}")
