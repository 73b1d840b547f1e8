"""The state store: opening (what is and is not a state), migrations, recording rules,
serials, locks, and `reconciler state`."""
from __future__ import annotations

import hashlib
import socket
import sqlite3

import orjson
import pytest

from conftest import product, sandbox_fixture, target
from reconciler.errors import StateError
from reconciler.providers.base import Job, Operation, Outcome
from reconciler.state import SCHEMA_VERSION, LockedError, State
from reconciler.state import schema
from reconciler.state.dialect import connect
from reconciler.state.locks import lock_strategy, new_holder
from reconciler.state.schema import LEGACY
from reconciler.state.store import SET_META, payload_digest

sandbox = sandbox_fixture(async_delay=0.02, latency=0.001)


@pytest.fixture
def bws(ws, state_location):
    """A workspace whose CLI runs use a state on each backend."""
    return ws.use_state(state_location)


def op(action="create", key="A", before=None, after=None, record="product"):
    return Operation(action, record, key, key, before, after if after is not None or action == "delete" else {"v": 1})


def files_of(folder):
    """Every file under ``folder`` with the digest of its bytes and its mtime."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir()) if p.is_file()}


def old_database(path, version=1):
    """A SQLite state as reconciler made it at schema ``version`` (1 to 3)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for step in LEGACY[:version]:
        step(conn)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?), ('lineage', 'L-1'), ('serial', '4')", (str(version),))
    digest = payload_digest({"v": 1})
    conn.execute("INSERT INTO items VALUES ('t', 'product', 'A', 'A', '{\"v\": 1}', ?, NULL, 'create', 'applied', 'now')",
                 (digest.hex() if version < 3 else digest,))
    conn.execute("COMMIT")
    conn.close()


# -- what is and is not a state ------------------------------------------------------------
def test_migrates_an_old_database_keeping_its_items(tmp_path):
    path = tmp_path / "old.db"
    old_database(path, version=1)
    state = State(path)
    assert state.schema_version == SCHEMA_VERSION > 1
    assert (state.lineage, state.serial) == ("L-1", 4)
    assert state.target_serials() == {"t": 4}  # per-target serials start at the state's
    item = state.item("t", "product", "A")
    assert (item.payload, item.last_outcome) == ({"v": 1}, "confirmed")  # 'applied' said in the new words
    assert state.hashes("t") == {("product", "A"): payload_digest({"v": 1})}  # plans as unchanged
    state.begin_apply(["t"])  # tables of later versions exist
    assert state.serial == 5 and state.target_serials(["t", "u"]) == {"t": 5, "u": 0}


def test_a_migrated_schema_is_the_schema_of_a_new_state(tmp_path):
    old_database(tmp_path / "old.db", version=2)
    State(tmp_path / "old.db").close()
    State(tmp_path / "new.db").close()

    def shape(path):
        conn = sqlite3.connect(path)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted((c[1], c[2].upper(), c[5]) for c in conn.execute(f"PRAGMA table_info({t})")) for t in tables}

    def indexes(path):
        conn = sqlite3.connect(path)
        return sorted(conn.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'"))

    # Files made before version 4 declared items.hash TEXT: version 7 rebuilt items.
    assert shape(tmp_path / "old.db") == shape(tmp_path / "new.db")
    assert indexes(tmp_path / "old.db") == indexes(tmp_path / "new.db")


def test_a_reader_upgrades_an_old_state_in_memory_only(tmp_path):
    path = tmp_path / "old.db"
    old_database(path, version=3)
    before = files_of(tmp_path)
    state = State(path, create=False)
    assert state.schema_version == SCHEMA_VERSION and state.hashes("t")
    state.close()
    assert files_of(tmp_path) == before


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "new.db"
    with State(path).transaction() as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="newer than this reconciler knows"):
        State(path)


def _edited(sql, of_a_state=True):
    """A maker of a file: a new state (or an empty database) changed by ``sql``."""
    def make(path):
        if of_a_state:
            State(path).close()
        conn = sqlite3.connect(path)
        conn.execute(sql)
        conn.commit()
        conn.close()
    return make


def _truncated(path):
    state = State(path)
    state.record("t", [Outcome(op(key=str(i), after={"v": "x" * 500}), "confirmed") for i in range(200)])
    state.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3 + 100])


@pytest.mark.parametrize("make, says", [
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: p.write_bytes(bytes(range(256)) * 40), "file is not a database"),
    (lambda p: p.write_text("name,price\nA,1\n"), "file is not a database"),
    (_edited("CREATE TABLE customers (id INTEGER)", of_a_state=False), "no reconciler meta table"),
    (_edited("DELETE FROM meta WHERE key = 'schema_version'"), "no schema_version"),
    (_edited("UPDATE meta SET value = 'x1' WHERE key = 'schema_version'"), "unknown schema_version 'x1'"),
])
@pytest.mark.parametrize("create", [True, False])
def test_what_is_not_a_state_is_refused_and_left_as_it_is(tmp_path, make, says, create):
    path = tmp_path / "reconciler.db"
    make(path)
    before = files_of(tmp_path)
    with pytest.raises(StateError, match=f"is not a reconciler state: .*{says}"):
        State(path, create=create)
    assert files_of(tmp_path) == before


def test_a_truncated_state_is_an_error_not_a_traceback(tmp_path):
    path = tmp_path / "reconciler.db"
    _truncated(path)
    with pytest.raises(StateError, match="reconciler.db"):
        state = State(path, create=False)
        list(state.items())


def test_a_reader_never_writes(tmp_path):
    path = tmp_path / "reconciler.db"
    state = State(path)
    state.record("t", [Outcome(op(), "confirmed")])
    state.close()
    before = files_of(tmp_path)
    reader = State(path, create=False)
    assert reader.hashes("t") and reader.serial == 1
    with pytest.raises(StateError, match="read-only"):
        reader.record("t", [Outcome(op(key="B"), "confirmed")])
    with pytest.raises(StateError, match="read-only"):
        reader.locked("x").__enter__()
    reader.close()
    assert files_of(tmp_path) == before  # no -wal, no -shm, not a byte changed


def test_a_missing_state_reads_as_empty_and_is_not_created(tmp_path):
    state = State(tmp_path / "state" / "reconciler.db", create=False)
    assert (state.lineage, state.serial, state.targets(), state.persistent) == (None, 0, {}, False)
    assert not (tmp_path / "state").exists()


def test_a_new_state_appears_whole(tmp_path):
    path = tmp_path / "deep" / "state" / "reconciler.db"
    state = State(path)
    assert state.lineage and state.serial == 0
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["reconciler.db"]


# -- recording -----------------------------------------------------------------------------
def test_only_confirmed_outcomes_change_items(state):
    state.record("t", [Outcome(op(key="A"), "confirmed", remote_id="r1"), Outcome(op(key="B"), "failed", reason="bad"),
                       Outcome(op(key="C"), "retry"), Outcome(op(key="D"), "split")])
    assert set(state.hashes("t")) == {("product", "A")}
    assert state.item("t", "product", "A").remote_id == "r1"
    assert [(f["key"], f["reason"]) for f in state.failures()] == [("B", "bad")]
    # An update that fails keeps the old payload; a later success clears the failure.
    state.record("t", [Outcome(op("update", "A", {"v": 1}, {"v": 2}), "failed", reason="nope")])
    assert state.item("t", "product", "A").payload == {"v": 1}
    assert state.item("t", "product", "A").last_outcome == "failed"
    state.record("t", [Outcome(op("create", "B"), "confirmed")])
    assert [(f["key"], f["reason"]) for f in state.failures()] == [("A", "nope")]
    state.record("t", [Outcome(op("delete", "A", {"v": 1}), "confirmed")])
    assert set(state.hashes("t")) == {("product", "B")}


def test_pending_jobs_round_trip_and_settle(state):
    ops = (op(key="A"), op(key="B"))
    job = Job("h-1", ops)
    state.record("t", [Outcome(o, "pending", job=job) for o in ops])
    assert state.hashes("t") == {}
    [pending] = state.pending_jobs("t")
    assert pending.job == job
    state.record("t", [Outcome(o, "confirmed") for o in pending.job.operations], settled_job=pending.id)
    assert state.pending_jobs() == [] and len(state.hashes("t")) == 2


def test_request_history_survives_reopening(state):
    state.log_request("meta", "batch", 1000.0, 200, 10, 100)
    state.log_request("meta", "batch", 2000.0, 200, 10, 100)
    assert state.reopen().request_times("meta", 1500.0) == [2000.0]


# -- serials -------------------------------------------------------------------------------
def test_every_change_bumps_its_targets_serial_once_per_lock(state):
    with state.locked("one command", ["a"]):
        state.record("a", [Outcome(op(key="1"), "confirmed")])
        state.record("a", [Outcome(op(key="2"), "confirmed")])
    assert state.target_serials(["a", "b"]) == {"a": 1, "b": 0} and state.serial == 1
    with state.locked("another", ["a"]):
        state.record("a", [Outcome(op(key="1"), "failed", reason="no")])  # a failure is a change too
    with state.locked("status"):
        state.record("b", [Outcome(op(key="1"), "confirmed")])
    with state.locked("nothing changed", ["a"]):
        state.record("a", [Outcome(op(key="3"), "retry")])
    assert state.target_serials(["a", "b"]) == {"a": 2, "b": 1} and state.serial == 3
    state.remove_sku("1", "b")
    state.adopt("c", [("product", "X", "X", {"v": 1})])
    assert state.target_serials(["a", "b", "c"]) == {"a": 2, "b": 2, "c": 1} and state.serial == 5


# -- locks ---------------------------------------------------------------------------------
def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(state):
    other = state.reopen()
    with state.locked("first"):
        with pytest.raises(LockedError, match=r"the whole state is locked by first \(pid \d+ on .*lock id \w+\)"):
            with other.locked("second", ["t"]):
                pass
    with state.transaction() as conn:
        conn.execute("INSERT INTO locks VALUES ('*', 'ghost1', 'ghost', 999999999, ?, 'then', NULL)",
                     (socket.gethostname(),))
    with other.locked("second"):
        assert [h.command for h, _ in other.holders()] == ["second"]


def test_disjoint_targets_lock_at_once_and_the_whole_state_waits_for_both(state):
    other = state.reopen()
    with state.locked("apply a", ["a"]), other.locked("apply b", ["b"]):
        with pytest.raises(LockedError, match="target a is locked by apply a"):
            with state.reopen().locked("apply a again", ["a", "c"]):
                pass
        with pytest.raises(LockedError) as refused:
            with state.reopen().locked("migrate"):
                pass
        assert {h.command for h in refused.value.holders} == {"apply a", "apply b"}
    with state.locked("migrate"):
        pass


def test_a_holder_on_another_host_is_never_judged_dead(state):
    holder = state.reopen()
    with holder.locked("reconciler apply", ["t"]):
        with state.transaction() as conn:  # as if it ran elsewhere, under this process's pid
            conn.execute("UPDATE locks SET host = 'elsewhere'")
        with pytest.raises(LockedError, match="on elsewhere"):
            with state.locked("here", ["t"]):
                pass
        # SQLite cannot check another host's pid; PostgreSQL sees the session alive
        with pytest.raises(StateError, match="(?s)(held from host elsewhere|its holder is alive).*--force"):
            state.unlock()
        [(found, _)] = state.holders()
        assert [h.lock_id for h in state.unlock(found.lock_id)] == [found.lock_id]
        with state.locked("here", ["t"]):
            pass


def test_a_lock_timeout_waits_then_names_the_holder(state):
    with state.locked("holder", ["t"]):
        with pytest.raises(LockedError, match="holder"):
            with state.reopen().locked("waiter", ["t"], timeout=0.3):
                pass


# -- the CLI -------------------------------------------------------------------------------
def vouch_state(ws, skus=("A",)):
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product(s) for s in skus]})
    state = State(ws.state_location)
    state.record("vouch", [Outcome(op(key=s, after={"source_id": s, "metadata": {"k": 1}}), "confirmed") for s in skus])
    return state


def test_state_list_and_show(bws):
    ws = bws
    state = vouch_state(ws, ("A", "B"))
    listed = ws.run("state", "list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["vouch\tproduct\tA\tA\t-\tconfirmed", "vouch\tproduct\tB\tB\t-\tconfirmed"]
    assert f"lineage {state.lineage}" in listed.stderr
    data = orjson.loads(ws.run("state", "list", "--format", "json").stdout)
    assert (data["lineage"], data["serial"], data["targets"]) == (state.lineage, 1, {"vouch": {"serial": 1, "items": 2}})
    assert [i["sku"] for i in data["items"]] == ["A", "B"] and data["items"][0]["last_outcome"] == "confirmed"
    assert orjson.loads(ws.run("state", "list", "--format", "json", "-t", "other").stdout)["items"] == []
    shown = ws.run("state", "show", "A")
    assert '"source_id": "A"' in shown.output
    assert ws.run("state", "show", "Z").exit_code == 1


def test_state_rm_keeps_a_backup_that_restore_puts_back(bws):
    ws = bws
    state = vouch_state(ws, ("A", "B"))
    before = list(state.items())
    serial = state.target_serials()["vouch"]
    removed = ws.run("state", "rm", "A")
    assert removed.exit_code == 0, removed.output
    backup = removed.stdout.split("To undo: reconciler state restore ")[1].strip()
    assert state.target_serials()["vouch"] == serial + 1 and set(state.hashes("vouch")) == {("product", "B")}
    assert "sku 'A' is not in the state" in ws.run("state", "rm", "A").output
    assert ws.run("state", "restore", backup).exit_code == 0
    assert list(state.items()) == before and state.target_serials()["vouch"] == serial + 2


def test_state_rm_all_forgets_a_target(bws):
    ws = bws
    state = vouch_state(ws, ("A", "B"))
    assert ws.run("state", "rm", "--all").exit_code == 2  # needs -t
    result = ws.run("state", "rm", "-t", "vouch", "--all", "--backup", str(ws.root / "b.jsonl"))
    assert result.exit_code == 0 and "Removed 2 record(s) of every item of target vouch" in result.stdout
    assert state.targets() == {} and len((ws.root / "b.jsonl").read_text().splitlines()) == 2


def test_state_rm_respects_a_live_lock(bws):
    ws = bws
    state = vouch_state(ws)
    with state.reopen().locked("reconciler apply (pid 1)", ["vouch"]):
        result = ws.run("state", "rm", "A")
    assert result.exit_code == 1 and "target vouch is locked by reconciler apply" in result.output
    assert set(state.hashes("vouch")) == {("product", "A")}


def test_state_rm_without_a_state_creates_none(bws):
    ws = bws
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify")}})
    result = ws.run("state", "rm", "A")
    assert result.exit_code == 1 and "there is no state" in result.output
    assert not State(ws.state_location, create=False).persistent
    assert not (ws.root / "state").exists()


def test_state_unlock_refuses_a_live_holder_unless_forced_by_id(bws):
    ws = bws
    state = vouch_state(ws)
    with state.reopen().locked("reconciler apply (pid 7)", ["vouch"]):
        [(holder, alive)] = state.holders()
        [listed] = orjson.loads(ws.run("state", "list", "--format", "json").stdout)["locks"]
        assert (listed["lock_id"], listed["scope"], listed["alive"]) == (holder.lock_id, "vouch", True)
        refused = ws.run("state", "unlock")
        assert refused.exit_code == 1 and alive
        for part in ("target vouch is locked by reconciler apply (pid 7)", f"pid {holder.pid} on {holder.host}",
                     f"since {holder.acquired_at}", f"--force {holder.lock_id}"):
            assert part in refused.output
        assert ws.run("state", "unlock", "--force", "nope").exit_code == 1
        forced = ws.run("state", "unlock", "--force", holder.lock_id)
        assert forced.exit_code == 0 and "Removed the lock on target vouch" in forced.output
        assert state.holders() == []
        with state.locked("the next one", ["vouch"]):
            pass


def test_state_unlock_removes_a_dead_holders_lock(bws):
    ws = bws
    state = vouch_state(ws)
    with state.transaction() as conn:
        conn.execute("INSERT INTO locks VALUES ('vouch', 'dead1', 'reconciler apply', 999999999, ?, 'then', NULL)",
                     (socket.gethostname(),))
    assert "Removed the lock on target vouch" in ws.run("state", "unlock").output
    assert "not locked" in ws.run("state", "unlock").output


def test_the_state_page_is_true():
    from pathlib import Path

    import click

    from reconciler.cli import cli
    from reconciler.state import locks, schema

    page = (Path(__file__).resolve().parents[1] / "docs" / "state.md").read_text()
    group = cli.commands["state"]
    assert isinstance(group, click.Group)
    for name in group.commands:
        assert f"state {name}" in page, name
    assert f"{locks.RESERVE // 1024} KiB" in page
    assert f"version {schema.BASELINE_VERSION} (the" in page and "`RECONCILER_STATE_SCHEMA`" in page


# -- upgrading an older state ------------------------------------------------------------------
# An item row as versions 1 to 6 wrote it.
OLD_ITEM = ("INSERT INTO items (target, record, key, sku, payload, hash, remote_id, last_action, last_outcome, "
            "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)")


def old_state(location, version):
    """A state as reconciler made it at schema ``version`` (the baseline or later), on
    either backend: target vouch with item A, recorded in the words of then."""
    conn = connect(location, read_only=False)
    with conn.transaction():
        schema.build(conn, version)
        conn.executemany(SET_META, [("schema_version", str(version)), ("lineage", "L-old"), ("serial", "3")])
        conn.execute("INSERT INTO targets (name, serial) VALUES ('vouch', 3)")
        conn.execute(OLD_ITEM, ("vouch", "product", "A", "A", '{"source_id":"A"}', payload_digest({"source_id": "A"}),
                                None, "create", "applied" if version < 6 else "confirmed", "then"))
    return conn



def stored_version(conn) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


@pytest.mark.parametrize("version", range(schema.BASELINE_VERSION, SCHEMA_VERSION))
def test_a_command_that_writes_upgrades_an_old_state_under_the_whole_state_lock(bws, sandbox, version):
    ws = bws
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify", sandbox.urls["voucherify"])}})
    ws.write("p.yaml", {"products": [product("A"), product("B")]})
    conn = old_state(ws.state_location, version)
    # readers read it through an upgraded copy and leave it as it was
    listed = ws.run("state", "list")
    assert (listed.exit_code, listed.stdout) == (0, "vouch\tproduct\tA\tA\t-\tconfirmed\n"), listed.output
    assert ws.run("plan").exit_code == 0
    assert stored_version(conn) == version
    # a writer upgrades it holding the whole state: refused while an (older) apply holds a target
    holding = lock_strategy(conn)
    holders = new_holder(["vouch"], "reconciler apply (an older one)", "then", holding.session_id())
    assert holding.try_acquire(holders) == []
    refused = ws.run("status")
    assert refused.exit_code == 1, refused.output
    assert "cannot lock the whole state to upgrade its schema" in refused.output
    assert "target vouch is locked by reconciler apply (an older one)" in refused.output
    assert stored_version(conn) == version
    holding.release(holders)
    applied = ws.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert stored_version(conn) == SCHEMA_VERSION
    conn.close()
    state = State(ws.state_location, create=False)
    assert state.lineage == "L-old" and state.target_serials() == {"vouch": 4}
    assert {i.sku: i.last_outcome for i in state.items()} == {"A": "confirmed", "B": "confirmed"}
    state.close()
    assert ws.run("plan", "--detailed-exitcode").exit_code == 0
