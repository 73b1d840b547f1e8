"""The README stays true: every `reconciler` command it shows exists with the options it
uses, and the figures it shows for the example workspace match what the code says."""
from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from test_workflows import check, command_lines

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
REPO = Path(__file__).resolve().parent.parent


def code_blocks() -> list[str]:
    return re.findall(r"```(?:bash|console)\n(.*?)```", README, flags=re.S)


def test_every_command_in_the_readme_exists_with_its_options():
    lines = []
    for block in code_blocks():
        for line in block.splitlines():
            line = line.removeprefix("$ ").strip()
            if line.startswith(("reconciler", "pip install -e . && reconciler")):
                lines.extend(command_lines(line))
    assert len(lines) >= 8
    problems = [problem for args in lines for problem in check(args)]
    assert problems == []


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in re.findall(r"```bash\n(.*?)```", quick, flags=re.S)[0].splitlines()
                if line and not line.startswith("#")]
    assert commands == ["pip install -e . && reconciler --with-sandbox apply --auto-approve",
                        "pip install -e '.[test]' && python -m pytest"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci and "python -m pytest" in ci


def test_example_counts_in_the_readme_match_the_example_workspace():
    result = CliRunner().invoke(cli, ["-C", str(REPO), "--state", "/nonexistent/none.db", "plan"])
    assert "Plan: 98 to create, 0 to update, 0 to delete." in result.output
    assert "Apply complete: 35 confirmed, 63 only accepted" in README
    assert "21 products to five targets" in README


def test_every_path_the_readme_names_exists_and_every_package_is_in_its_module_table():
    named = set(re.findall(r"`((?:reconciler|benchmarks|examples|tests|docs)/[^`\s]*)`", README))
    named |= {script for block in code_blocks() for script in re.findall(r"python (\S+\.py)", block)}
    assert {"reconciler/drift/", "reconciler/cli.py", "benchmarks/plan_scale.py"} <= named
    assert sorted(path for path in named if not (REPO / path).exists()) == []
    table = README.split("The code, for a newcomer", 1)[1].split("\n## ", 1)[0]
    packages = {p.parent.name for p in (REPO / "reconciler").glob("*/*.py")}
    assert sorted(p for p in packages if f"`reconciler/{p}/`" not in table) == []
    assert "(docs/architecture.md)" in table
