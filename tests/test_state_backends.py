"""Both backends as a team uses them: PostgreSQL schemas made on first write and never
by a reader, passwords never shown, RECONCILER_STATE from the environment, a killed
lock holder, and `state migrate` from SQLite to PostgreSQL and back with nothing lost."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import eventually, product, target
from reconciler.providers.base import Job, Operation, Outcome
from reconciler.state import Location, LockedError, State, locks
from reconciler.state.dialect import advisory_key
from reconciler.state.locks import WHOLE, new_holder, read_holders
from reconciler.state.transfer import COPIED, fingerprint

ROOT = Path(__file__).resolve().parents[1]


def schema_exists(url: str, schema: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def filled(location: Location) -> State:
    """A state with items on two targets, a failure, a pending job, a target's
    identity, an apply and request history: one of everything a migration must carry."""
    state = State(location)
    # meta's payloads are enough to make it a dictionary, bloom's are not (deflated alone)
    ops = [Operation("create", "product", f"K{i}", f"S{i}", None, {"v": i, "name": f"é {i}", "text": "a fine mug " * 9})
           for i in range(30)]
    state.record("meta", [Outcome(op, "confirmed", remote_id=f"r{op.key}") for op in ops[:20]])
    state.record("bloom", [Outcome(op, "confirmed") for op in ops[:10]] + [Outcome(ops[10], "failed", reason="no")])
    state.record("meta", [Outcome(op, "pending", job=Job("h-1", tuple(ops[20:25]))) for op in ops[20:25]])
    state.record_identity("meta", {"provider": "meta_catalog", "base_url": "http://127.0.0.1:9", "catalog_id": "1"})
    apply_id = state.begin_apply(["meta"])
    state.finish_apply(apply_id, "ok", {"confirmed": 20})
    for i in range(5):
        state.log_request("meta", "batch", time.time() - i, 200, 10, 1000)
    return state


def test_a_postgres_schema_is_made_on_first_write_and_never_by_a_reader(postgres):
    schema = "made_on_first_write"
    reader = State(postgres.url, create=False, schema=schema)
    assert (reader.persistent, reader.lineage, reader.targets()) == (False, None, {})
    assert not schema_exists(postgres.url, schema)
    writer = State(postgres.url, schema=schema)
    assert schema_exists(postgres.url, schema) and writer.lineage
    assert State(postgres.url, create=False, schema=schema).lineage == writer.lineage


def test_first_writers_at_once_make_one_schema_and_one_lineage(postgres):
    """Two applies of disjoint targets started together on a new schema: both used to
    race on CREATE SCHEMA and one failed on pg_namespace's unique index."""
    from concurrent.futures import ThreadPoolExecutor

    for _ in range(10):
        schema = f"first_{uuid.uuid4().hex[:8]}"

        def first_writer(_):
            state = State(postgres.url, schema=schema)
            try:
                return state.lineage
            finally:
                state.close()
        with ThreadPoolExecutor(4) as pool:
            lineages = set(pool.map(first_writer, range(4)))
        assert len(lineages) == 1 and None not in lineages


def test_a_foreign_postgres_schema_is_not_a_state(postgres):
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS shop; CREATE TABLE IF NOT EXISTS shop.orders (id int)")
    for create in (True, False):
        with pytest.raises(Exception, match="is not a reconciler state: it holds tables \\(orders\\)"):
            State(postgres.url, create=create, schema="shop")


def test_passwords_are_never_shown(ws, postgres):
    secret = "pa55-w0rd-never-shown"
    url = postgres.url.replace("reconciler@", f"reconciler:{secret}@")  # trust auth ignores it
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product("A")]})
    ws.use_state(Location(url=url, schema="secretive"))
    State(ws.state_location).record("vouch", [Outcome(Operation("create", "product", "A", "A", None, {"x": 1}),
                                                      "confirmed")])
    outputs = [ws.run("state", "list"), ws.run("plan"), ws.run("state", "list", "--format", "json")]
    wrong = url.replace("/postgres", "/no_such_database")
    outputs.append(ws.run("--state", wrong, "state", "list"))
    outputs.append(ws.run("--state", wrong.replace(str(postgres.port), "1"), "plan"))
    assert [r.exit_code for r in outputs] == [0, 0, 0, 1, 1]
    assert "no_such_database" in outputs[3].output and "reconciler:***@" in outputs[3].output
    for result in outputs:
        assert secret not in result.output, result.output
    with psycopg.connect(postgres.url) as conn:  # nor anything in the state
        for table in ("meta", "items", "applies", "locks", "requests"):
            assert secret not in str(conn.execute(f"SELECT * FROM secretive.{table}").fetchall())


def test_the_state_comes_from_the_environment(ws, postgres, monkeypatch):
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product("A")]})
    state = State(postgres.url, schema="from_env")
    state.record("vouch", [Outcome(Operation("create", "product", "A", "A", None, {"x": 1}), "confirmed")])
    monkeypatch.setenv("RECONCILER_STATE", postgres.url)
    monkeypatch.setenv("RECONCILER_STATE_SCHEMA", "from_env")
    listed = ws.run("state", "list")
    assert listed.exit_code == 0 and listed.stdout == "vouch\tproduct\tA\tA\t-\tconfirmed\n"
    assert not (ws.root / "state").exists()


HOLD = """
import sys, time
from reconciler.state import Location, State
location = Location.parse(sys.argv[1]) if sys.argv[1] != "pg" else Location(url=sys.argv[2], schema=sys.argv[3])
state = State(location)
with state.locked("reconciler apply (holder)", ["meta"]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_kill_9_of_a_holder_frees_its_lock(state_location, processes):
    State(state_location).close()
    where = [str(state_location.path)] if state_location.path else ["pg", state_location.url, state_location.schema]
    holder = processes.start([sys.executable, "-c", HOLD, *where], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "locked"
    state = State(state_location)
    with pytest.raises(LockedError, match="reconciler apply \\(holder\\)"):
        with state.locked("second", ["meta"]):
            pass
    with state.locked("other target", ["bloom"]):  # a disjoint target is free all along
        pass
    holder.kill()
    holder.wait()

    def free() -> bool:  # PostgreSQL ends the session as soon as it notices the dead client
        try:
            with state.locked("after the kill", ["meta"]):
                return True
        except LockedError:
            return False
    eventually(free, "the killed holder's lock going", timeout=10)


def test_migrate_sqlite_to_postgres_and_back_keeps_everything(ws, postgres, tmp_path):
    original = filled(ws.state_location)
    prints = {t.name: fingerprint(original, t) for t in COPIED}
    assert prints["dictionaries"].rows == 1
    lineage, serials = original.lineage, original.target_serials()
    original.close()
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})

    to_pg = ws.run("state", "migrate", "--to", postgres.url, "--to-schema", "migrated")
    assert to_pg.exit_code == 0, to_pg.output
    assert "20 items" not in to_pg.output and "30 items" in to_pg.output and "verified" in to_pg.output
    back_path = tmp_path / "back.db"
    pg = Location(url=postgres.url, schema="migrated")
    back = ws.use_state(pg).run("state", "migrate", "--to", str(back_path))
    assert back.exit_code == 0, back.output
    for location in (pg, Location(path=back_path)):
        copy = State(location, create=False)
        assert {t.name: fingerprint(copy, t) for t in COPIED} == prints
        assert (copy.lineage, copy.target_serials()) == (lineage, serials)
        assert len(copy.pending_jobs()) == 1 and len(copy.request_times("meta", 0)) == 5
        copy.close()
    again = ws.run("state", "migrate", "--to", str(back_path))
    assert again.exit_code == 1 and "already holds a state" in again.output


def test_migrate_refuses_while_the_state_is_locked(ws, postgres):
    state = filled(ws.state_location)
    with state.reopen().locked("reconciler apply (pid 9)", ["meta"]):
        result = ws.run("state", "migrate", "--to", postgres.url, "--to-schema", "never_copied")
    assert result.exit_code == 1 and "target meta is locked by reconciler apply (pid 9)" in result.output
    assert not schema_exists(postgres.url, "never_copied")  # nothing made before both locks were held
    assert os.path.exists(ws.state_location.path)


# -- naming a PostgreSQL lock's holder, whatever the moment ----------------------------------
def hold_keys(location: Location, scope: str) -> psycopg.Connection:
    """A session holding ``scope``'s advisory keys as a holder does before its row exists."""
    session = psycopg.connect(location.url, autocommit=True, application_name="slow-holder")
    for key, function in ((advisory_key(location.schema, WHOLE), "pg_advisory_lock_shared"),
                          (advisory_key(location.schema, scope), "pg_advisory_lock")):
        session.execute(f"SELECT {function}(%s)", (key,))
    return session


@pytest.fixture
def pg_state(postgres):
    location = Location(url=postgres.url, schema=f"lock_{uuid.uuid4().hex[:10]}")
    state = State(location)
    yield state
    state.close()
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{location.schema}" CASCADE')


def after_first_read(monkeypatch, action) -> None:
    """Run ``action`` once a refused attempt has read the lock rows for the first time."""
    calls = []

    def reading(conn):
        rows = read_holders(conn)
        if not calls:
            calls.append(action())
        return rows
    monkeypatch.setattr(locks, "read_holders", reading)


def test_a_holder_between_its_lock_and_its_row_is_named(pg_state, monkeypatch):
    session = hold_keys(pg_state.location, "meta")
    holder = new_holder(["meta"], "reconciler apply (slow)", "2025-01-01T00:00:00+00:00",
                        session.execute("SELECT pg_backend_pid()").fetchone()[0])

    def write_row():
        with pg_state.transaction() as conn:
            conn.execute(f"INSERT INTO locks ({locks.COLUMNS}) VALUES (?,?,?,?,?,?,?)", locks._row(holder[0]))
    after_first_read(monkeypatch, write_row)
    try:
        with pytest.raises(LockedError) as refused:
            with pg_state.locked("second", ["meta"]):
                pass
        assert refused.value.holders == holder
        assert f"reconciler apply (slow) (pid {os.getpid()} on " in str(refused.value)
    finally:
        session.close()


def test_a_lock_released_while_a_refused_attempt_looks_is_taken(pg_state, monkeypatch):
    session = hold_keys(pg_state.location, "meta")
    after_first_read(monkeypatch, session.close)
    with pg_state.locked("second", ["meta"]):
        assert [h.command for h, _ in pg_state.holders()] == ["second"]


def test_a_session_holding_the_lock_without_a_row_is_named_from_postgres(pg_state):
    session = hold_keys(pg_state.location, "meta")
    try:
        pid = session.execute("SELECT pg_backend_pid()").fetchone()[0]
        with pytest.raises(LockedError) as refused:
            with pg_state.locked("second", ["meta"]):
                pass
        message = str(refused.value)
        assert f"a PostgreSQL session of slow-holder (backend pid {pid}, from 127.0.0.1)" in message, message
        assert "pid 0" not in message and "on ?" not in message
    finally:
        session.close()


def test_a_big_batch_of_one_key_twice_keeps_the_last_on_both_backends(state, monkeypatch):
    """A batch over COPY_ROWS goes through COPY on PostgreSQL; what it leaves is what one
    statement a row leaves on SQLite: every row, and of a key written twice, the last."""
    from reconciler.state import dialect

    copied = []
    original = dialect.Postgres._insert_by_copy
    monkeypatch.setattr(dialect.Postgres, "_insert_by_copy", lambda self, rows, table, *rest: (
        copied.append(table), original(self, rows, table, *rest))[1])
    ops = [Operation("create", "product", f"K{i:03d}", f"S{i}", None, {"v": i, "name": f"é {i}"})
           for i in range(dialect.COPY_ROWS * 2)]
    again = Operation("update", "product", "K007", "S7", ops[7].after, {"v": "last", "name": "x\tb\\n"})
    state.record("t", [Outcome(op, "accepted") for op in ops] + [Outcome(again, "accepted")], apply_id=1)
    assert state.item("t", "product", "K007").payload == {"v": "last", "name": "x\tb\\n"}
    assert state.item("t", "product", "K100").payload == {"v": 100, "name": "é 100"}
    assert len(state.hashes("t")) == len(ops) and len(state.accepted()) == len(ops)
    assert copied == (["items", "accepted"] if state.location.is_postgres else [])
    state.record("t", [Outcome(op, "confirmed") for op in ops])  # again, over rows now there
    assert len(state.hashes("t")) == len(ops) and state.accepted() == []


def test_a_big_batch_after_one_rolled_back_is_written(state):
    """The first big batch makes PostgreSQL's staging table inside its transaction: a
    rollback takes the table away, and the next big batch must make it again."""
    from reconciler.state import dialect

    ops = [Operation("create", "product", f"K{i:03d}", f"S{i}", None, {"v": i}) for i in range(dialect.COPY_ROWS)]
    with pytest.raises(RuntimeError):
        with state.transaction() as conn:
            conn.executemany("INSERT INTO failures (apply_id, target, record, key, sku, action, reason, at) "
                             "VALUES (?,?,?,?,?,?,?,?)", [(1, "t", "product", op.key, op.sku, "create", "no", 0)
                                                          for op in ops])
            raise RuntimeError("rolled back")
    state.record("t", [Outcome(op, "failed", reason="refused") for op in ops])  # a big batch of failures again
    assert [f["reason"] for f in state.failures("t")] == ["refused"] * len(ops)


def test_batches_recorded_together_leave_what_one_at_a_time_would(state):
    """An apply's state thread commits every batch waiting for it in one transaction,
    with the requests it logged: each batch keeps its own jobs, an item named again by
    a later batch ends as that batch leaves it, and the request history (more rows
    than COPY_ROWS, ids made by the database) gets every request."""
    from reconciler.state import dialect
    from reconciler.state.store import OutcomeBatch

    ops = [Operation("create", "product", f"K{i:03d}", f"S{i}", None, {"v": i}) for i in range(6)]
    meta_job, other_job = Job("h1", tuple(ops[:2])), Job("h2", tuple(ops[2:3]))
    batches = [
        OutcomeBatch("a", [Outcome(ops[0], "pending", job=meta_job), Outcome(ops[1], "pending", job=meta_job)], 1),
        OutcomeBatch("b", [Outcome(ops[3], "confirmed"), Outcome(ops[4], "failed", reason="no")], 1),
        OutcomeBatch("b", [Outcome(ops[3], "failed", reason="refused later")], 1),  # named again
        OutcomeBatch("a", [Outcome(ops[2], "pending", job=other_job)], 1, settled_job=None),
        OutcomeBatch("b", [Outcome(ops[4], "confirmed"), Outcome(ops[5], "accepted")], 1),
    ]
    requests = [("b", "batch", 1000.0 + i, None, 1, 10) for i in range(dialect.COPY_ROWS + 1)]
    job_ids = state.record_batches(batches, requests)
    assert [list(ids) for ids in job_ids] == [["h1"], [], [], ["h2"], []]
    pending = {job.job.handle: (job.id, [op.key for op in job.job.operations]) for job in state.pending_jobs("a")}
    assert pending == {"h1": (job_ids[0]["h1"], ["K000", "K001"]), "h2": (job_ids[3]["h2"], ["K002"])}
    assert {f["key"]: f["reason"] for f in state.failures("b")} == {"K003": "refused later"}
    assert state.item("b", "product", "K003").last_outcome == "failed"
    assert state.item("b", "product", "K004").last_outcome == "confirmed"
    assert [a["key"] for a in state.accepted("b")] == ["K005"]
    assert len(state.request_times("b", 0)) == len(requests)
    assert state.target_serials(["a", "b"]) == {"a": 1, "b": 1}
