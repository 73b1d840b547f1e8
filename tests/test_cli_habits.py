"""Terraform habits on the command line: global options before or after the
subcommand, -V, `init` that does not overwrite a workspace silently, and
`--with-sandbox` on ports of one's choosing (0: any free ports), with the example
addresses pointed at them."""
from __future__ import annotations

import socket

import click
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.global_options import hoist
from reconciler.manifest.models import Target
from reconciler.with_sandbox import default_addresses, redirected


def run(*args: str, **kwargs):
    return CliRunner().invoke(cli, list(args), **kwargs)


@pytest.fixture
def shop(tmp_path):
    assert run("init", str(tmp_path / "shop")).exit_code == 0
    return str(tmp_path / "shop")


def test_global_options_after_the_subcommand(shop, tmp_path):
    before = run("--no-color", "-C", shop, "plan")
    assert before.exit_code == 0 and "Plan: 1 to create" in before.output
    for args in (["plan", "--no-color", "-C", shop], ["plan", f"-C{shop}", "--no-color"],
                 ["plan", f"--dir={shop}"], ["-C", shop, "plan", "--no-color"]):
        result = run(*args)
        assert (result.exit_code, result.output) == (0, before.output), args
    # a subcommand's options and their values stay with it, in any order
    json_plan = run("plan", "-t", "meta-sandbox", "--state", str(tmp_path / "none.db"), "--format", "json", "-C", shop)
    assert json_plan.exit_code == 0 and json_plan.output.startswith("{")
    assert run("state", "list", "-C", shop).exit_code == 0  # down a subcommand group
    assert "Valid: 1 targets, 1 products." in run("validate", "-v", "-C", shop).output


def test_unknown_options_and_help_stay_with_their_subcommand(shop):
    bogus = run("plan", "--bogus", "-C", shop)
    assert bogus.exit_code == 2 and "No such option '--bogus'" in bogus.output
    assert run("plan", "-C", shop, "--help").output.startswith("Usage: cli plan [OPTIONS]")
    assert run("-C", shop, "plan", "-h").output.startswith("Usage: cli plan [OPTIONS]")


def test_hoist_moves_only_the_root_options():
    ctx = click.Context(cli, help_option_names=["-h", "--help"])
    assert hoist(cli, ctx, ["plan", "-o", "-v", "--no-color"]) == ["--no-color", "plan", "-o", "-v"]
    assert hoist(cli, ctx, ["show", "x.plan", "--state=s.db", "--", "-C"]) == ["--state=s.db", "show", "x.plan", "--", "-C"]
    assert hoist(cli, ctx, ["-C", "plan", "plan", "-v"]) == ["-C", "plan", "-v", "plan"]
    assert hoist(cli, ctx, ["--version"]) == ["--version"]


def walk(group: click.Group):
    for command in group.commands.values():
        yield command
        if isinstance(command, click.Group):
            yield from walk(command)


def test_no_subcommand_option_shadows_a_global_one():
    """Else `reconciler CMD --opt` would be ambiguous (and hoist would take it)."""
    ctx = click.Context(cli)
    names = lambda command: {n for p in command.get_params(ctx) if isinstance(p, click.Option)  # noqa: E731
                             for n in (*p.opts, *p.secondary_opts)} - {"-h", "--help"}
    globals_ = names(cli)
    assert {command.name: names(command) & globals_ for command in walk(cli)} == {
        command.name: set() for command in walk(cli)}


def test_version_anywhere():
    for args in (["-V"], ["plan", "-V"], ["state", "list", "--version"]):
        result = run(*args)
        assert result.exit_code == 0 and result.output.startswith("reconciler, version "), args


# -- init ------------------------------------------------------------------------------------
def test_init_says_what_it_would_overwrite_and_needs_force(shop, tmp_path):
    from pathlib import Path

    manifest = Path(shop) / "manifests" / "catalog.yaml"
    manifest.write_text("products: []\n")
    (Path(shop) / "manifests" / "more.yaml").write_text("products: []\n")
    refused = run("init", shop)
    assert refused.exit_code == 1
    assert f"init would overwrite {manifest}" in refused.output
    assert "add the example target and product to the 1 other file(s)" in refused.output and "more.yaml" in refused.output
    assert f"reconciler init --force {shop}" in refused.output
    assert manifest.read_text() == "products: []\n"  # nothing written
    forced = run("init", "--force", shop)
    assert forced.exit_code == 0 and f"overwrote {manifest}" in forced.output
    assert "meta-sandbox" in manifest.read_text()
    assert (Path(shop) / "manifests" / "more.yaml").read_text() == "products: []\n"


def test_init_keeps_an_existing_gitignore_and_adds_what_it_lacks(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / ".gitignore").write_text("node_modules/\n*.plan")
    result = run("init", str(tmp_path / "w"))
    assert result.exit_code == 0 and "updated" in result.output
    assert (tmp_path / "w" / ".gitignore").read_text() == "node_modules/\n*.plan\nstate/*.db\nstate/*.db-*\n.reconciler/\n"


# -- --with-sandbox on other ports -------------------------------------------------------------
def test_sandbox_port_must_come_with_with_sandbox(shop):
    result = run("-C", shop, "--sandbox-port", "0", "plan")
    assert result.exit_code == 2 and "--sandbox-port is for --with-sandbox" in result.output


def test_busy_sandbox_ports_are_a_clear_error(shop):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("-C", shop, "--with-sandbox", "--sandbox-port", str(port), "validate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot start the sandbox on ports {port}-" in result.output and "--sandbox-port N" in result.output


def test_redirection_touches_only_the_default_sandbox_addresses():
    addresses = default_addresses(8700, {"vtex_ads": "http://127.0.0.1:40001", "meta_catalog": "http://127.0.0.1:40002"})
    assert addresses == {8700: "http://127.0.0.1:40001", 8701: "http://127.0.0.1:40002"}

    def url(base_url):
        return redirected(Target(name="t", provider="meta_catalog", base_url=base_url), addresses).base_url

    assert url("http://127.0.0.1:8701") == "http://127.0.0.1:40002"
    assert url("http://localhost:8700/prefix/") == "http://127.0.0.1:40001/prefix/"
    assert url("http://127.0.0.1:8702") == "http://127.0.0.1:8702"  # no simulator started there
    assert url("https://127.0.0.1:8701") == "https://127.0.0.1:8701"
    assert url("https://graph.facebook.com") == "https://graph.facebook.com"
    assert url(None) is None
    with pytest.raises(ValueError, match="invalid port"):  # such a base_url is refused at load
        url("http://127.0.0.1:notaport")


def test_the_example_workspace_applies_to_a_sandbox_on_other_ports(tmp_path):
    """The repository's example workspace names 127.0.0.1:8700-8704; on other ports its
    targets follow the simulators (and a sandbox on 8700, if any, is not touched)."""
    from test_cli import REPO

    state = str(tmp_path / "state.db")
    result = run("-C", str(REPO), "--state", state, "apply", "--auto-approve", "--with-sandbox", "--sandbox-port", "0")
    assert result.exit_code == 0, result.output
    assert "Apply complete: 35 confirmed, 63 only accepted, 0 failed" in result.output
    assert "are pointed at it for this command" in result.output
    # the targets still name their declared addresses: the next command, on other free
    # ports or on none, is about the same targets (as the README's quick start says)
    assert run("-C", str(REPO), "--state", state, "plan", "--detailed-exitcode").exit_code == 0
    planfile = str(tmp_path / "next.plan")
    planned = run("-C", str(REPO), "--state", state, "--with-sandbox", "--sandbox-port", "0", "plan", "-o", planfile)
    assert planned.exit_code == 0 and "No changes." in planned.output, planned.output
    applied = run("-C", str(REPO), "--state", state, "--with-sandbox", "--sandbox-port", "0", "apply", planfile)
    assert applied.exit_code == 0, applied.output


def test_a_target_served_elsewhere_names_its_declared_catalog():
    from reconciler.plan.binding import fingerprint, identity

    declared = Target(name="t", provider="meta_catalog", base_url="http://127.0.0.1:8701",
                      settings={"catalog_id": "1", "api_version": "v21.0"})
    moved = redirected(declared, {8701: "http://127.0.0.1:40002"})
    assert moved.base_url == "http://127.0.0.1:40002" and moved.declared_base_url == "http://127.0.0.1:8701"
    assert identity(moved) == identity(declared) and fingerprint(moved) == fingerprint(declared)
    assert redirected(moved, {8701: "http://127.0.0.1:40003"}).declared_base_url == "http://127.0.0.1:8701"


def test_no_test_takes_a_fixed_port():
    """A `reconciler sandbox` left running on 8700 (or a test beside this one) must not
    make a test fail: sandboxes in tests run on port 0 or on ports found free."""
    import ast
    from pathlib import Path

    problems = []
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "SandboxConfig":
                port = next((k.value for k in node.keywords if k.arg == "port"), None)
                if port is None and not any(k.arg is None for k in node.keywords):
                    problems.append(f"{where}: SandboxConfig() on the default port")
                elif isinstance(port, ast.Constant) and port.value != 0:
                    problems.append(f"{where}: SandboxConfig(port={port.value})")
            if isinstance(node, (ast.List, ast.Tuple)):
                strings = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if "--with-sandbox" in strings and "--sandbox-port" not in strings:
                    problems.append(f"{where}: --with-sandbox without --sandbox-port")
                if "--sandbox-port" in strings and strings[strings.index("--sandbox-port") + 1:][:1] not in ([], ["0"]):
                    problems.append(f"{where}: --sandbox-port on a fixed port")
    assert problems == []
