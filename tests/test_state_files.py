"""The state file treated as a careless or hostile user would (issue 11): read-only
files and directories, a full disk, unwritable paths, failed commands that must leave
the state exactly as it was, a target no longer declared, and `status` moving a plan
out of date. Over the real CLI."""
from __future__ import annotations

import gc
import hashlib
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from conftest import eventually, product, sandbox_fixture, target, with_check_digit
from reconciler.errors import StateError
from reconciler.providers.base import Operation, Outcome
from reconciler.state import State

sandbox = sandbox_fixture(async_delay=0.05, latency=0.001)
ROOT = os.geteuid() == 0


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def applied(key: str, payload: dict) -> Outcome:
    return Outcome(Operation("create", "product", key, key, None, payload), "confirmed")


@contextmanager
def mounted(folder: Path, options: str):
    """``folder`` as a fresh tmpfs mounted with ``options``; skipped where a test
    cannot mount (not root, or no permission)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                  capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@contextmanager
def read_only(folder: Path):
    """``folder`` (with its files) made read-only for everyone, root included: a
    read-only tmpfs holding a copy when root, permission bits otherwise."""
    if ROOT:
        copy = folder.with_name(folder.name + "-copy")
        shutil.copytree(folder, copy)
        with mounted(folder, "size=16m"):
            shutil.copytree(copy, folder, dirs_exist_ok=True)
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
            yield
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for path in modes:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


@pytest.fixture
def vouch_ws(ws, sandbox):
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify", sandbox.urls["voucherify"])}})
    ws.write("p.yaml", {"products": [product("A"), product("B")]})
    state = State(ws.root / "state" / "reconciler.db")
    state.record("vouch", [applied("A", {"source_id": "A", "metadata": {"origin": "old"}})])
    state.close()
    return ws


def test_read_only_commands_work_on_a_read_only_state_and_write_nothing(vouch_ws, tmp_path):
    ws = vouch_ws
    out = tmp_path / "plan.out"
    before = snapshot(ws.root / "state")
    with read_only(ws.root / "state"):
        plan = ws.run("plan", "-o", str(out))
        assert plan.exit_code == 0, plan.output
        assert "Plan: 1 to create, 1 to update, 0 to delete." in plan.output
        assert ws.run("show", str(out)).exit_code == 0
        assert ws.run("validate").exit_code == 0
        listed = ws.run("state", "list")
        assert listed.exit_code == 0 and listed.stdout.startswith("vouch\tproduct\tA")
        assert ws.run("state", "show", "A").exit_code == 0
        drift = ws.run("drift")
        assert drift.exit_code == 2 and "1 missing remotely" in drift.output, drift.output
        rm = ws.run("state", "rm", "A")
        assert rm.exit_code == 1 and rm.output.startswith("Error: ") and "Traceback" not in rm.output
    assert snapshot(ws.root / "state") == before


def test_a_full_disk_is_one_clear_error_and_leaves_the_lock_takeable(tmp_path):
    with mounted(tmp_path / "small", "size=400k") as small:
        state = State(small / "reconciler.db")
        with pytest.raises(StateError, match="cannot write the state .*(disk is full|No space left)"):
            with state.locked("reconciler apply", ["t"]):
                for batch in range(200):
                    state.record("t", [applied(f"{batch}-{i}", {"v": "x" * 400}) for i in range(50)])
        recorded = len(state.hashes("t"))
        state.close()
        again = State(small / "reconciler.db", create=False)
        assert len(again.hashes("t")) == recorded > 0  # every committed batch, nothing half-written
        assert again.holders() == []  # the lock released, even on a full disk
        again.close()


def test_plan_into_a_missing_directory_is_one_clear_error(vouch_ws):
    result = vouch_ws.run("plan", "-o", str(vouch_ws.root / "nowhere" / "plan.out"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: cannot write the plan to {vouch_ws.root / 'nowhere' / 'plan.out'}: the directory "
        f"{vouch_ws.root / 'nowhere'} does not exist"]


def test_an_unwritable_state_path_is_one_clear_error(ws, tmp_path):
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify", auth={"app_id": "a", "app_token": "b"})}})
    ws.write("p.yaml", {"products": [product("A")]})
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = ws.run("--state", str(blocker / "state.db"), "apply", "--auto-approve")
    assert result.exit_code == 1 and "Error: cannot create the state" in result.output
    assert "Traceback" not in result.output


def test_a_failed_apply_leaves_no_state_behind(ws, monkeypatch):
    monkeypatch.delenv("VOUCH_TOKEN", raising=False)
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify", auth={"app_id": "a", "app_token": "${VOUCH_TOKEN}"})}})
    ws.write("p.yaml", {"products": [product("A")]})
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 1 and "VOUCH_TOKEN" in result.output
    assert not (ws.root / "state").exists()


def test_a_failed_apply_leaves_the_state_exactly_as_it_was(vouch_ws, monkeypatch):
    ws = vouch_ws
    monkeypatch.delenv("VOUCH_TOKEN", raising=False)
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify", auth={"app_id": "a", "app_token": "${VOUCH_TOKEN}"})}})
    before = snapshot(ws.root / "state")
    plan_file = ws.root / "plan.out"
    assert ws.run("plan", "-o", str(plan_file)).exit_code == 0
    for args in (["apply", "--auto-approve"], ["apply", str(plan_file)]):
        result = ws.run(*args)
        assert result.exit_code == 1 and "VOUCH_TOKEN" in result.output
    assert snapshot(ws.root / "state") == before


def test_a_target_no_longer_declared_is_reported_and_never_deleted(vouch_ws):
    ws = vouch_ws
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    plan = ws.run("plan")
    assert plan.exit_code == 0
    warning = ("Target vouch is not declared in the manifests, but the state holds 1 of its items: they are left "
               "as they are, never deleted by omission (`reconciler state rm -t vouch --all` forgets them).")
    assert warning in plan.stdout and "The destinations match the manifests" not in plan.stdout
    as_json = ws.run("plan", "--format", "json")
    assert orjson.loads(as_json.stdout)["orphaned_targets"] == {"vouch": 1} and warning in as_json.stderr
    assert "vouch" not in orjson.loads(as_json.stdout)["targets"]
    assert warning in ws.run("plan", "--format", "markdown").stdout
    assert ws.run("state", "rm", "-t", "vouch", "--all").exit_code == 0
    assert "not declared" not in ws.run("plan").output


def test_status_makes_a_saved_plan_stale(ws, sandbox):
    sandbox.reset()
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog", sandbox.urls["meta_catalog"])}})
    ws.write("p.yaml", {"products": [product(f"P{i}") for i in range(5)]})
    assert ws.run("apply", "--auto-approve", "--no-wait").exit_code == 0
    out = ws.root / "plan.out"
    assert ws.run("plan", "-o", str(out)).exit_code == 0
    state = State(ws.root / "state" / "reconciler.db", create=False)
    serials = state.target_serials()
    state.close()
    eventually(lambda: "No pending jobs" in ws.run("status").output, "status settling the job")
    state = State(ws.root / "state" / "reconciler.db", create=False)
    assert state.target_serials()["meta"] == serials["meta"] + 1
    state.close()
    writes = len([e for e in sandbox.log if e["method"] == "POST"])
    refused = ws.run("apply", str(out))
    assert refused.exit_code == 1 and "changed since the plan was made" in refused.output
    assert len([e for e in sandbox.log if e["method"] == "POST"]) == writes


def test_a_disk_that_fills_during_apply_counts_only_what_was_recorded(ws, sandbox, tmp_path, caplog):

    sandbox.reset()
    ws.write("t.yaml", {"targets": {"vend": target("venddor", sandbox.urls["venddor"])}})
    ws.write("p.yaml", {"products": [product(f"P{i:04d}", gtin=with_check_digit(f"789100{i:06d}"),
                                             description="d" * 600) for i in range(1500)]})
    with mounted(tmp_path / "small", "size=360k") as small:
        result = ws.run("--state", str(small / "reconciler.db"), "apply", "--auto-approve")
        assert result.exit_code == 1
        assert "cannot write the state" in result.output and "Traceback" not in result.output
        assert re.search(r"database or disk is full|No space left", result.output), result.output
        said = [int(n) for n in re.findall(r"(\d+) confirmed", result.output)]  # the target's line, the total
        state = State(small / "reconciler.db", create=False)
        assert said == [len(state.hashes("vend"))] * 2 and said[0] < 1500  # both count what the state holds
        gc.collect()  # the writes that failed together: no error left unseen
        assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
        assert state.holders() == []  # the lock released, even on a full disk
        state.close()
