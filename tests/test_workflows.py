"""The GitHub Actions recipe in examples/github-actions/ (PostgreSQL) and its
sqlite-branch/ variant uses only commands and options that exist: every `reconciler ...`
command line of every `run:` step is checked against the click command tree of
``reconciler.cli.cli`` (global options before or after the subcommand, subcommand groups
such as ``state``, options and their values). Its shell steps that decide something
(which targets get an apply job, which locks are forced) are run for real against a
state."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from reconciler.cli import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "github-actions"
SQLITE = EXAMPLES / "sqlite-branch"
VARIANTS = (EXAMPLES, SQLITE)  # the PostgreSQL recipe, and the small-catalog one
WORKFLOWS = sorted(EXAMPLES.rglob("*.yml")) + sorted(EXAMPLES.rglob("*.yaml"))


def named(path: Path) -> str:
    return str(path.relative_to(EXAMPLES))
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
            found.extend((named(path), args) for args in command_lines(script))
    return found


def test_the_three_workflows_exist_and_parse():
    names = {named(p) for p in WORKFLOWS}
    for folder in VARIANTS:
        assert {named(folder / name) for name in ("plan.yml", "apply.yml", "drift.yml")} <= names
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow.get("jobs"), path.name
        # PyYAML reads the key `on` as True (YAML 1.1)
        assert workflow.get("on", workflow.get(True)), f"{path.name} has no trigger"
    assert (EXAMPLES / "README.md").is_file()


@pytest.mark.parametrize("name, args", all_invocations(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_reconciler_command_exists(name, args):
    assert check(args) == [], f"{name}: reconciler {' '.join(args)}"


def used(name: str) -> list[str]:
    return [" ".join(args) for n, args in all_invocations() if n == name]


@pytest.mark.parametrize("folder", VARIANTS, ids=named)
def test_the_workflows_use_the_commands_the_recipe_promises(folder):
    plan, apply, drift = (used(named(folder / name)) for name in ("plan.yml", "apply.yml", "drift.yml"))
    assert "--no-color plan --format markdown --detailed-exitcode -o plan.out" in plan
    assert "--no-color plan --allow-mass-delete --format markdown --detailed-exitcode -o plan.out" in plan
    assert not any("--auto-approve" in line for line in apply)  # never a blind apply
    assert any("drift --format markdown" in line for line in drift)
    # a cancelled run's locks: forced by the ids `state list --format json` gives
    assert any(line.startswith("--no-color state list --format json") for line in apply)
    assert "--no-color state unlock --force $id" in apply and "--no-color state unlock" not in apply


def test_the_postgresql_apply_applies_the_reviewed_plan_one_target_a_job():
    apply = used("apply.yml")
    # on merge: each target's part of the reviewed plan (confirming an approved mass
    # delete), else its plan made (and posted) there; waiting for a lock held elsewhere
    for line in ("apply plan/plan.out -t $TARGET --lock-timeout 10m --format json",
                 "apply plan/plan.out -t $TARGET --allow-mass-delete --lock-timeout 10m --format json",
                 "plan -t $TARGET --format markdown --detailed-exitcode -o again.out",
                 "apply again.out -t $TARGET --lock-timeout 10m --format json",
                 "status -t $TARGET --lock-timeout 10m"):
        assert f"--no-color {line}" in apply, line
    job = load("apply.yml")["jobs"]["apply"]
    assert job["needs"] == "prepare" and job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"]["target"] == "${{ fromJSON(needs.prepare.outputs.targets) }}"
    assert job["env"]["TARGET"] == "${{ matrix.target }}"
    # every command of a target's job touches its target only (a lock is forced by its id)
    for step in job["steps"]:
        for args in command_lines(step.get("run", "")):
            if args[1:4] != ["state", "unlock", "--force"]:
                assert "-t" in args and args[args.index("-t") + 1] == "$TARGET", (step["name"], args)


def test_the_small_catalog_apply_applies_the_reviewed_plan():
    apply = used("sqlite-branch/apply.yml")
    assert "--no-color apply EXPR --format json" in apply
    assert "--no-color apply EXPR --allow-mass-delete --format json" in apply
    assert "--no-color apply plan.out --format json" in apply
    assert "--no-color apply plan.out --allow-mass-delete --format json" in apply


def load(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("folder, applied", [(EXAMPLES, "apply"), (SQLITE, "apply_reviewed")],
                         ids=["postgresql", "sqlite-branch"])
def test_the_apply_on_merge_finds_the_plan_the_pull_request_kept(folder, applied):
    plan, apply = load(named(folder / "plan.yml")), load(named(folder / "apply.yml"))
    [upload] = [s for s in steps(plan) if s.get("uses", "").startswith("actions/upload-artifact")]
    assert "plan.out" in upload["with"]["path"]
    assert apply["env"]["PLAN_WORKFLOW"] == plan["name"]
    [find] = [s for s in steps(apply) if s.get("id") == "reviewed"]
    assert f"--name {upload['with']['name']} " in find["run"] and '--commit "$head"' in find["run"]
    assert plan["env"]["MASS_DELETE_LABEL"] == apply["env"]["MASS_DELETE_LABEL"]
    assert apply["permissions"]["actions"] == "read"  # to download another run's artifact
    # the apply tells a stale plan from any other failure by the outcome report
    [reviewed] = [s for s in steps(apply) if s.get("id") == applied]
    assert "jq -r '.error.kind" in reviewed["run"] and '"stale_plan"' in reviewed["run"]
    from reconciler.apply.outcome import error_kind
    from reconciler.errors import StalePlanError

    assert error_kind(StalePlanError("x")) == "stale_plan"


@pytest.mark.parametrize("folder", VARIANTS, ids=named)
def test_a_refused_plan_gets_the_recipe_s_approval_hint(folder):
    from reconciler.plan.render import MASS_DELETE_REFUSED

    plan = load(named(folder / "plan.yml"))
    [plan_step] = [s for s in steps(plan) if s.get("id") == "plan"]
    assert f'grep -qF "{MASS_DELETE_REFUSED}" plan.md' in plan_step["run"]
    assert "env.MASS_DELETE_LABEL" in plan_step["env"]["APPROVED"]
    [comment] = [s for s in steps(plan) if "github-script" in s.get("uses", "")]
    assert comment["if"].startswith("always()")  # posted when no plan could be made, too


@pytest.mark.parametrize("folder", VARIANTS, ids=named)
def test_triggers_concurrency_and_secrets(folder):
    def load(name):
        data = yaml.safe_load((folder / name).read_text())
        return data, data.get("on", data.get(True))

    plan, on = load("plan.yml")
    assert "pull_request" in on
    apply, on = load("apply.yml")
    assert on["push"]["branches"] == ["main"]
    assert apply["concurrency"]["cancel-in-progress"] is False
    drift, on = load("drift.yml")
    assert on["schedule"][0]["cron"]
    assert drift["concurrency"]["group"] != apply["concurrency"]["group"]


def test_the_state_comes_from_a_secret_read_only_where_only_read():
    def state_secrets(name):
        return {s["env"]["RECONCILER_STATE"] for s in steps(load(name)) if "RECONCILER_STATE" in (s.get("env") or {})}
    assert state_secrets("apply.yml") == {"${{ secrets.RECONCILER_STATE }}"}
    # plan runs a pull request's code: a role that may only read the state
    assert state_secrets("plan.yml") == state_secrets("drift.yml") == {"${{ secrets.RECONCILER_STATE_READER }}"}
    # without the secret (a fork's pull request) no command runs against an empty local
    # state: each job's first step given it stops there (the later ones need it to pass,
    # but `status`, which creates no state)
    for name in ("plan.yml", "apply.yml", "drift.yml"):
        for job in load(name)["jobs"].values():
            given = [s for s in job["steps"] if "RECONCILER_STATE" in (s.get("env") or {})]
            assert not given or [line.strip() for line in given[0]["run"].splitlines()
                                 if not line.strip().startswith("#")][0].startswith('if [ -z "$RECONCILER_STATE" ]'), name
            assert [s["run"] for s in given[1:] if s.get("if", "").startswith("always()")] in (
                [], ['reconciler --no-color status -t "$TARGET" --lock-timeout 10m']), name
    assert not any("reconciler.db" in step.get("run", "") for name in ("plan.yml", "apply.yml", "drift.yml")
                   for step in steps(load(name)))


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
GIT_REF = re.compile(r"^[A-Za-z0-9_.-]+(\[[A-Za-z0-9_,.-]+\])? @ git\+https://[^@\s]+@(?P<ref>[^@\s]+)$")
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


@pytest.mark.parametrize("path", WORKFLOWS, ids=named)
def test_no_workflow_installs_a_bare_name_from_an_index(path):
    workflow = yaml.safe_load(path.read_text())
    args = installs(workflow)
    assert args, f"{path.name} installs nothing"
    assert [problem for arg in args if (problem := install_problem(arg))] == []
    assert any(re.match(r"reconciler-catalog(\[postgres\])? @ git\+", arg) for arg in args)


def test_the_install_check_catches_index_names():
    assert install_problem("reconciler-catalog @ git+https://github.com/o/reconciler@v0.1.0") is None
    assert install_problem("reconciler-catalog @ git+https://github.com/o/reconciler@3f2a9c1") is None
    assert install_problem("reconciler-catalog[postgres] @ git+https://github.com/o/reconciler@v0.1.0") is None
    assert "package index" in install_problem("reconciler-catalog[postgres]")
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


def is_state_secret(name: str) -> bool:
    """Where the state is (its URL, its password): every command reading it needs it."""
    return name.startswith(("RECONCILER_STATE", "PG"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=named)
def test_secrets_reach_only_the_steps_that_talk_to_the_destinations(path):
    workflow = yaml.safe_load(path.read_text())
    assert secret_names(workflow.get("env")) == [], "secrets in the workflow's environment"
    for name, job in workflow["jobs"].items():
        assert secret_names(job.get("env")) == [], f"secrets in the environment of job {name}"
        for step in job.get("steps") or ():
            secrets = secret_names(step.get("env"))
            if not secrets:
                continue
            run = step.get("run", "")
            assert not PIP.search(run), f"{step.get('name')}: installs with secrets in its environment"
            commands = command_lines(run)
            used = {subcommand(args) for args in commands}
            assert commands, f"{step.get('name')}: secrets given to a step that runs no reconciler command"
            if not all(is_state_secret(secret) for secret in secrets):  # a destination's credentials
                assert used <= CREDENTIAL_COMMANDS, f"{step.get('name')}: credentials given to a step that runs {sorted(used)}"


# -- the steps that decide, run for real ----------------------------------------------------
def run_step(step: dict, cwd: Path, **env: str) -> str:
    """Run a step's script as GitHub runs it (bash -e -o pipefail), with this venv's
    reconciler on PATH; returns what it wrote to $GITHUB_OUTPUT."""
    output = cwd / "github-output"
    output.write_text("")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PATH": path, "NO_COLOR": "1",
                                                       "GITHUB_OUTPUT": str(output), **env})
    assert done.returncode == 0, done.stdout + done.stderr
    return output.read_text()


def the_step(name: str, id_or_name: str) -> dict:
    [step] = [s for s in steps(load(name)) if id_or_name in (s.get("id"), s.get("name"))]
    return step


def test_a_job_runs_for_each_target_with_changes_in_the_reviewed_plan_or_main_s(ws):
    from conftest import product, target

    ws.write("t.yaml", {"targets": {name: target("bloomreach", select={"tags": [name]}) for name in "abc"}})
    ws.write("p.yaml", {"products": [product("A1", tags=["a"]), product("B1", tags=["b"])]})
    (ws.root / "plan").mkdir()
    assert ws.run("plan", "-o", str(ws.root / "plan" / "plan.out")).exit_code == 0  # a, b: changes; c: none
    ws.write("t.yaml", {"targets": {name: target("bloomreach", select={"tags": [name]}) for name in "abcd"}})
    ws.write("p.yaml", {"products": [product("A1", tags=["a"]), product("D1", tags=["d"])]})
    assert ws.run("plan", "-o", str(ws.root / "main.out")).exit_code == 0  # main since: d too
    output = run_step(the_step("apply.yml", "targets"), ws.root)
    assert output == 'targets=["a", "b", "d"]\n'


def holding(state, scope: str):
    """``scope`` locked by another session of this process, as if from another runner."""
    holder = state.reopen()
    lock = holder.locked("reconciler apply (pid 4242)", [scope])
    lock.__enter__()
    with state.transaction() as conn:
        conn.execute("UPDATE locks SET host = 'runner-gone' WHERE scope = ?", (scope,))
    return holder, lock


def test_a_target_job_forces_a_cancelled_run_s_lock_on_its_target_only(state, tmp_path):
    from conftest import location_arg

    where, extra = location_arg(state.location)
    held = [holding(state, scope) for scope in ("t", "u")]
    try:
        run_step(the_step("apply.yml", "Release this target's lock left by a cancelled run"), tmp_path,
                 RECONCILER_STATE=where, TARGET="t", **extra)
        assert [(h.scope, alive) for h, alive in state.holders()] == [("u", True if extra else None)]
        with state.locked("the next apply of t", ["t"]):
            pass
    finally:
        for holder, lock in held:
            lock.__exit__(None, None, None)
            holder.close()


def test_the_small_catalog_apply_forces_every_lock_saved_in_its_copy(tmp_path):
    from reconciler.state import State

    step = the_step("sqlite-branch/apply.yml", "Release the locks a cancelled run saved")
    run_step(step, tmp_path)  # no state yet: nothing to do
    state = State(tmp_path / "state" / "reconciler.db")
    with state.transaction() as conn:
        conn.executemany("INSERT INTO locks VALUES (?, ?, 'reconciler apply (pid 7)', 7, 'runner-gone', 'then', NULL)",
                         [("a", "id1"), ("b", "id1"), ("c", "id2")])
    run_step(step, tmp_path)
    assert state.holders() == []
    state.close()
