"""The state store: migrations, recording rules, lock, and `reconciler state`."""
from __future__ import annotations

import sqlite3

import pytest

from conftest import product, target
from reconciler.errors import StateError
from reconciler.providers.base import Job, Operation, Outcome
from reconciler.state import SCHEMA_VERSION, State
from reconciler.state.migrations import MIGRATIONS
from reconciler.state.store import payload_digest


def op(action="create", key="A", before=None, after=None, record="product"):
    return Operation(action, record, key, key, before, after if after is not None or action == "delete" else {"v": 1})


def test_migrates_an_old_database_keeping_its_items(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    MIGRATIONS[0](conn)  # a database made by the first schema version
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('lineage', 'L-1'), ('serial', '4')")
    old_digest = payload_digest({"v": 1}).hex()  # version 1 kept digests as hex text
    conn.execute("INSERT INTO items VALUES ('t', 'product', 'A', 'A', '{\"v\": 1}', ?, NULL, 'create', 'applied', 'now')",
                 (old_digest,))
    conn.execute("COMMIT")
    conn.close()
    state = State(path)
    assert state.schema_version == SCHEMA_VERSION > 1
    assert (state.lineage, state.serial) == ("L-1", 4)
    assert state.item("t", "product", "A").payload == {"v": 1}
    assert state.hashes("t") == {("product", "A"): payload_digest({"v": 1})}  # plans as unchanged
    state.begin_apply(["t"])  # tables of later versions exist
    assert state.serial == 5


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "new.db"
    State(path).conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="newer than this reconciler knows"):
        State(path)


def test_only_confirmed_outcomes_change_items(tmp_path):
    state = State(tmp_path / "s.db")
    state.record("t", [Outcome(op(key="A"), "applied", remote_id="r1"), Outcome(op(key="B"), "rejected", reason="bad"),
                       Outcome(op(key="C"), "retry"), Outcome(op(key="D"), "split")])
    assert set(state.hashes("t")) == {("product", "A")}
    assert state.item("t", "product", "A").remote_id == "r1"
    assert [(f["key"], f["reason"]) for f in state.failures()] == [("B", "bad")]
    # An update that fails keeps the old payload; a later success clears the failure.
    state.record("t", [Outcome(op("update", "A", {"v": 1}, {"v": 2}), "rejected", reason="nope")])
    assert state.item("t", "product", "A").payload == {"v": 1}
    assert state.item("t", "product", "A").last_outcome == "rejected"
    state.record("t", [Outcome(op("create", "B"), "applied")])
    assert [(f["key"], f["reason"]) for f in state.failures()] == [("A", "nope")]
    state.record("t", [Outcome(op("delete", "A", {"v": 1}), "applied")])
    assert set(state.hashes("t")) == {("product", "B")}


def test_pending_jobs_round_trip_and_settle(tmp_path):
    state = State(tmp_path / "s.db")
    ops = (op(key="A"), op(key="B"))
    job = Job("h-1", ops)
    state.record("t", [Outcome(o, "pending", job=job) for o in ops])
    assert state.hashes("t") == {}
    [pending] = state.pending_jobs("t")
    assert pending.job == job
    state.record("t", [Outcome(o, "applied") for o in pending.job.operations], settled_job=pending.id)
    assert state.pending_jobs() == [] and len(state.hashes("t")) == 2


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    state = State(tmp_path / "s.db")
    other = State(tmp_path / "s.db")
    with state.locked("first"):
        with pytest.raises(StateError, match="locked by first"):
            with other.locked("second"):
                pass
    state.conn.execute("INSERT INTO lock VALUES (1, 'ghost', 999999999, ?, 'then')", (__import__("socket").gethostname(),))
    with other.locked("second"):
        pass


def test_request_history_survives_reopening(tmp_path):
    state = State(tmp_path / "s.db")
    state.log_request("meta", "batch", 1000.0, 200, 10, 100)
    state.log_request("meta", "batch", 2000.0, 200, 10, 100)
    assert State(tmp_path / "s.db").request_times("meta", 1500.0) == [2000.0]


def test_state_commands(ws):
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product("A"), product("B")]})
    state = State(ws.root / "state" / "reconciler.db")
    state.record("vouch", [Outcome(op(key="A", after={"source_id": "A", "metadata": {"k": 1}}), "applied")])
    listed = ws.run("state", "list")
    assert listed.exit_code == 0 and "vouch\tproduct\tA\tA\t-\tapplied" in listed.output
    shown = ws.run("state", "show", "A")
    assert '"source_id": "A"' in shown.output
    assert ws.run("state", "show", "Z").exit_code == 1
    serial = state.serial
    assert ws.run("state", "rm", "A").exit_code == 0
    assert state.serial == serial + 1 and state.hashes("vouch") == {}
    assert "sku 'A' is not in the state" in ws.run("state", "rm", "A").output


def test_state_unlock(ws):
    state = State(ws.root / "state" / "reconciler.db")
    state.conn.execute("INSERT INTO lock VALUES (1, 'someone', 1, 'elsewhere', 'then')")
    assert "Lock removed." in ws.run("state", "unlock").output
    assert "not locked" in ws.run("state", "unlock").output
