"""Manifests never vanish silently (issue 11 item 5): symlinked directories are followed
(loops reported), and a dangling link, an unreadable file or directory, or a manifest
that is not a regular file is an error naming its path, at validate and at plan.

Permission bits do not stop root: when the suite runs as root, the commands that must
meet an unreadable path run in a subprocess without the capabilities that override them.
"""
from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import sys

import pytest

from conftest import Workspace, product, target
from reconciler.state import State

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _without_permission_override() -> None:
    """In a child about to exec: drop the capabilities that let root ignore permission
    bits (from the bounding set, so the exec'd program never gets them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop the capability to override permissions")


def run(ws: Workspace, *args: str) -> tuple[int, str]:
    """Exit code and output of ``reconciler -C WS ARGS``, subject to permission bits even
    when the suite runs as root."""
    if os.geteuid() != 0:
        result = ws.run(*args)
        return result.exit_code, result.output
    done = subprocess.run([sys.executable, "-m", "reconciler", "-C", str(ws.root), *args],
                          preexec_fn=_without_permission_override, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})
    return done.returncode, done.stdout + done.stderr


def base(ws: Workspace) -> None:
    ws.write("00-targets.yaml", {"targets": {"shop": target("bloomreach")}})


def test_symlinked_directory_is_followed_in_sorted_path_order(ws):
    base(ws)
    elsewhere = ws.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "products.yaml").write_text("products:\n  - sku: LINKED-1\n  - sku: TWICE\n")
    (ws.manifests / "linked").symlink_to(elsewhere, target_is_directory=True)
    ws.write("m.jsonl", [product("M-1")])
    ws.write("z.yaml", {"products": [product("TWICE")]})
    code, out = run(ws, "validate")
    # found through the link, and before z.yaml: manifests/linked/... sorts first
    assert code == 1 and "Traceback" not in out
    assert "manifests/z.yaml:2: sku TWICE: duplicate sku, first defined at manifests/linked/products.yaml:3" in out
    ws.write("z.yaml", {"products": [product("Z-1")]})
    code, out = run(ws, "validate")
    assert (code, out) == (0, "Valid: 1 targets, 4 products.\n")
    code, out = run(ws, "plan")
    assert code == 0 and "+ product LINKED-1" in out and "Plan: 4 to create" in out


def test_symlink_loops_are_reported_not_followed_forever(ws):
    base(ws)
    (ws.manifests / "sub").mkdir()
    (ws.manifests / "sub" / "back").symlink_to("..", target_is_directory=True)
    (ws.manifests / "self").symlink_to("self")
    code, out = run(ws, "validate")
    assert code == 1 and "Traceback" not in out
    assert "manifests/self: symbolic link loop (the link leads to itself)" in out
    assert "manifests/sub/back: symbolic link loop: leads back to manifests" in out


def test_a_dangling_symlink_is_an_error(ws):
    base(ws)
    (ws.manifests / "gone.yaml").symlink_to("moved-away.yaml")
    code, out = run(ws, "validate")
    assert code == 1
    assert out == ("Error: 1 manifest error:\n"
                   "  manifests/gone.yaml: dangling symbolic link (to moved-away.yaml, which does not exist)\n")


@pytest.mark.parametrize("name", ["p.yaml", "p.json", "p.jsonl", "p.csv"])
def test_an_unreadable_manifest_is_an_error_in_every_format(ws, name):
    base(ws)
    content = "sku\nA-1\n" if name.endswith(".csv") else [product("A-1")] if name.endswith(".jsonl") \
        else {"products": [product("A-1")]}
    ws.write(name, content).chmod(0)
    for command in ("validate", "plan"):
        code, out = run(ws, command)
        assert (code, out) == (1, f"Error: 1 manifest error:\n  manifests/{name}: cannot read: Permission denied\n")


def test_an_unreadable_directory_is_an_error_and_plan_deletes_nothing(ws):
    base(ws)
    ws.write("a.yaml", {"products": [product("A-1")]})
    ws.write("secret/b.yaml", {"products": [product("B-1")]})
    state = State(ws.root / "state" / "reconciler.db")  # B-1 was applied: losing its file would delete it
    state.adopt("shop", [("product", "B-1", "B-1", {"title": "x"})])
    state.close()
    (ws.manifests / "secret").chmod(0)
    for command in ("validate", "plan"):
        code, out = run(ws, command)
        assert code == 1 and "delete" not in out
        assert out == "Error: 1 manifest error:\n  manifests/secret: cannot read this directory: Permission denied\n"


def test_a_manifest_that_is_not_a_regular_file_is_an_error_not_a_hang(ws):
    base(ws)
    os.mkfifo(ws.manifests / "pipe.yaml")  # opening it would block forever
    result = ws.run("validate")
    assert result.exit_code == 1
    assert "manifests/pipe.yaml: not a regular file (a manifest is a file)" in result.output
    assert stat.S_ISFIFO(os.stat(ws.manifests / "pipe.yaml").st_mode)


def test_every_unreachable_path_is_reported_at_once(ws):
    base(ws)
    (ws.manifests / "gone.json").symlink_to("nowhere.json")
    ws.write("locked/p.yaml", {"products": [product("A-1")]})
    (ws.manifests / "locked").chmod(0)
    ws.write("q.csv", "sku\nQ-1\n").chmod(0)
    code, out = run(ws, "validate")
    assert code == 1
    assert out.splitlines() == [
        "Error: 3 manifest errors:",
        "  manifests/gone.json: dangling symbolic link (to nowhere.json, which does not exist)",
        "  manifests/locked: cannot read this directory: Permission denied",
        "  manifests/q.csv: cannot read: Permission denied",
    ]
