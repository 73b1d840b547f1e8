"""The command line as a whole: help, init, providers, the example workspace."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.providers import PROVIDERS

REPO = Path(__file__).resolve().parent.parent


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


@pytest.mark.parametrize("path,command", list(all_commands(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_with_an_example(path, command):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "reconciler " in result.output.split("Example:")[1]


def test_spec_commands_exist():
    names = {" ".join(path) for path, _ in all_commands(cli)}
    assert {"init", "validate", "plan", "show", "apply", "status", "state", "state list", "state show",
            "state rm", "providers", "sandbox"} <= names


def test_init_scaffolds_a_workspace_that_validates_and_plans(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["init", str(tmp_path / "shop")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "shop" / "manifests" / "catalog.yaml").exists()
    assert runner.invoke(cli, ["-C", str(tmp_path / "shop"), "validate"]).exit_code == 0
    plan = runner.invoke(cli, ["-C", str(tmp_path / "shop"), "plan"])
    assert plan.exit_code == 0 and "Plan: 1 to create, 0 to update, 0 to delete." in plan.output
    # the next step it prints works as printed
    assert "META_TOKEN=sandbox-token reconciler -C" in result.output
    # free ports (a `reconciler sandbox` may hold 8700): the scaffold's target follows them
    applied = runner.invoke(cli, ["-C", str(tmp_path / "shop"), "--with-sandbox", "--sandbox-port", "0", "apply",
                                  "--auto-approve"], env={"META_TOKEN": "sandbox-token"})
    assert applied.exit_code == 0 and "1 confirmed" in applied.output, applied.output
    again = runner.invoke(cli, ["init", str(tmp_path / "shop")])
    assert again.exit_code == 1 and "already a workspace: init would overwrite" in again.output


def test_providers_shows_declared_limits():
    output = CliRunner().invoke(cli, ["providers"]).output
    for name, provider in PROVIDERS.items():
        assert name in output
        assert f"key: {provider.key_field}" in output
    assert "500 items/request, 3 requests in flight" in output
    assert "5000 items/request, 100 requests/3600 s" in output
    assert "5000 items/request, 10,000,000 bytes/request, 5 requests/10 s" in output
    assert "5 requests/10 s (shared by the targets with the same project_id and catalog_id)" in output
    assert "3 requests in flight (shared by every target at one base URL)" in output
    assert "60 items/request\n" in output
    assert "10,485,760 bytes/request" in output


def test_example_workspace_is_valid_and_plans_every_provider():
    runner = CliRunner()
    assert "Valid: 5 targets, 21 products." in runner.invoke(cli, ["-C", str(REPO), "validate"]).output
    result = runner.invoke(cli, ["-C", str(REPO), "--state", "/nonexistent/none.db", "plan", "--format", "json"])
    assert result.exit_code == 0
    import orjson

    plan = orjson.loads(result.output)
    assert {t["provider"] for t in plan["targets"].values()} == set(PROVIDERS)
    assert all(t["summary"]["create"] > 0 for t in plan["targets"].values())


def test_missing_manifests_directory_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), "validate"])
    assert result.exit_code == 1
    assert "manifests directory does not exist" in result.output and "Traceback" not in result.output


def test_status_before_any_apply_creates_no_state(ws):
    ws.write("t.yaml", {"targets": {"vouch": {"provider": "voucherify", "auth": {"app_id": "a", "app_token": "t"}}}})
    result = ws.run("status")
    assert result.exit_code == 0 and "No state yet" in result.output
    assert not (ws.root / "state" / "reconciler.db").exists()
