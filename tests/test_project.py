"""The project as a distribution: its unique name, its licence, its changelog, and the
version the command reports."""
from __future__ import annotations

import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import DISTRIBUTION, cli

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_the_distribution_has_a_name_of_its_own_and_the_command_keeps_reconciler():
    # "reconciler" on PyPI is an unrelated project (Wikidata reconciliation for pandas).
    assert PYPROJECT["name"] == DISTRIBUTION == "reconciler-catalog"
    assert PYPROJECT["scripts"] == {"reconciler": "reconciler.cli:main"}


def test_a_standard_licence_is_declared_and_shipped():
    assert PYPROJECT["license"] == "MIT"
    assert PYPROJECT["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")
    assert metadata(DISTRIBUTION)["License-Expression"] == "MIT"


def test_the_changelog_has_an_unreleased_section_first():
    sections = [line for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert sections[0] == "## [Unreleased]"
    assert any(line.startswith(f"## [{PYPROJECT['version']}]") for line in sections)


def test_version_option_short_and_long():
    for flag in ("-V", "--version"):
        result = CliRunner().invoke(cli, [flag])
        assert result.exit_code == 0
        assert result.output == f"reconciler, version {version(DISTRIBUTION)}\n"
