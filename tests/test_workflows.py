"""The GitHub Actions recipe in examples/github-actions/ uses only commands and options
that exist: every `reconciler ...` command line of every `run:` step is checked against
the click command tree of ``reconciler.cli.cli`` (global options before the
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
            option = options_of(command).get(name)
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
    assert any("validate" in line for line in used["plan.yml"])
    assert any("plan --format markdown --detailed-exitcode" in line for line in used["plan.yml"])
    assert any("apply --auto-approve" in line for line in used["apply.yml"])
    assert any("drift --format markdown" in line for line in used["drift.yml"])


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
    # secrets only through env, referenced by the targets as ${VAR}
    for data in (apply, drift):
        env = data["jobs"][next(iter(data["jobs"]))]["env"]
        assert all(value.startswith("${{ secrets.") for value in env.values())


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
    assert check(["validate", "extra"]) == ["reconciler validate: takes no argument 'extra'"]
    assert command_lines('set +e\nreconciler --no-color drift --format markdown > drift.md\ncode=$?') == [
        ["--no-color", "drift", "--format", "markdown"]]
    assert command_lines("if [ -f x ]; then reconciler status; fi") == [["status"]]
    assert command_lines('pip install "reconciler==${RECONCILER_VERSION}"') == []
