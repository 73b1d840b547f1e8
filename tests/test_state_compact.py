"""The compact state (schema version 7, issue 14 item 3), on both backends: payloads
deflated with versioned dictionaries of their target and record kind, sku kept only
when it is not the key, the last write as one code, times as seconds; a version 6
state upgraded keeping every item, payload and job, and read the same as before."""
from __future__ import annotations

import time

import orjson
import pytest

from reconciler.providers.base import Job, Operation, Outcome
from reconciler.state import SCHEMA_VERSION, State, payload_digest, schema
from reconciler.state.dialect import connect
from reconciler.state.payloads import DICTIONARY_SIZE, MIN_SAMPLE, Payloads
from reconciler.state.store import SET_META
from test_state import OLD_ITEM


def product(i: int, words: str = "a fine mug") -> dict:
    return {"title": f"Mug {i}", "url": f"https://shop.example.com/p/M-{i:05d}", "price": i % 97 + 0.5,
            "description": f"{words} " * (i % 5 + 1), "tags": ["kitchen", "export"]}


def created(key: str, payload: dict, sku: str | None = None, record: str = "product") -> Operation:
    return Operation("create", record, key, sku or key, None, payload)


def rows_of(location, sql: str) -> list[tuple]:
    conn = connect(location, read_only=True)
    try:
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in conn.execute(sql)]
    finally:
        conn.close()


def readable(state: State) -> list[tuple]:
    """Every item as reading it shows it."""
    return [(i.target, i.record, i.key, i.sku, i.payload, i.hash, i.remote_id, i.last_action, i.last_outcome,
             i.updated_at) for i in state.items()]


def test_payloads_keep_each_dictionary_they_were_made_with(state):
    """A kind's first payloads (too few) are deflated alone; a batch big enough makes
    dictionary 1, a batch twice its size dictionary 2; rows of every one read back."""
    few = [created(f"A{i}", product(i)) for i in range(3)]
    state.record("shop", [Outcome(op, "confirmed") for op in few])
    some = [created(f"B{i:03d}", product(i)) for i in range(20)]   # > MIN_SAMPLE bytes, < DICTIONARY_SIZE
    state.record("shop", [Outcome(op, "confirmed") for op in some])
    many = [created(f"C{i:04d}", product(i, "a much longer description of a mug")) for i in range(400)]
    state.record("shop", [Outcome(op, "confirmed") for op in many])
    state.record("shop", [Outcome(created("T", {"v": 1}), "confirmed")])  # too short to deflate
    sizes = rows_of(state.location, "SELECT record, id, length(data) FROM dictionaries ORDER BY id")
    assert [(record, number) for record, number, _ in sizes] == [("product", 1), ("product", 2)]
    assert MIN_SAMPLE <= sizes[0][2] < DICTIONARY_SIZE == sizes[1][2]
    used = dict(rows_of(state.location, "SELECT key, dictionary FROM items"))
    assert {used[f"A{i}"] for i in range(3)} == {0} and used["B000"] == 1 and used["C0000"] == 2
    assert used["T"] is None
    stored = dict(rows_of(state.location, "SELECT key, payload FROM items"))
    assert stored["T"] == b'{"v":1}' and len(stored["C0399"]) < len(orjson.dumps(many[-1].after)) / 3
    reader = State(state.location, create=False)
    for op in few + some + many:
        assert reader.item("shop", "product", op.key).payload == op.after
    reader.close()
    # a later write of a row made with dictionary 1 uses the newest
    state.record("shop", [Outcome(Operation("update", "product", "B000", "B000", product(0), product(1)), "confirmed")])
    assert rows_of(state.location, "SELECT dictionary FROM items WHERE key = 'B000'") == [(2,)]
    assert state.item("shop", "product", "B000").payload == product(1)


def test_each_record_kind_has_its_own_dictionaries(state):
    ops = [created(f"K{i}", product(i), record="product") for i in range(50)]
    ops += [created(f"K{i}", {"sku": f"K{i}", "price": i, "available": True, "stock": i * 3}, record="inventory")
            for i in range(200)]
    state.record("shop", [Outcome(op, "confirmed") for op in ops])
    assert rows_of(state.location, "SELECT record, id FROM dictionaries ORDER BY record") == [
        ("inventory", 1), ("product", 1)]
    assert {(i.record, i.key): i.payload for i in state.items("shop")} == {(op.record, op.key): op.after for op in ops}


def test_a_dictionary_of_a_rolled_back_write_is_forgotten(state):
    """Numbers are reused after a rollback: what was read of the lost one must not be."""
    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        with state.transaction() as conn:
            state.payloads.pack(conn, "shop", "product", [orjson.dumps(product(i, "lost words")) for i in range(60)])
            raise Refused
    ops = [created(f"K{i}", product(i, "other words entirely")) for i in range(60)]
    state.record("shop", [Outcome(op, "confirmed") for op in ops])
    assert rows_of(state.location, "SELECT id FROM dictionaries") == [(1,)]
    assert {i.key: i.payload for i in state.items("shop")} == {op.key: op.after for op in ops}


def test_sku_is_stored_only_when_it_is_not_the_key(state):
    """`state show SKU` finds an item keyed by its sku (sku null, no index entry) and
    one keyed by something else (indexed), at every target and record kind."""
    state.record("vtex", [Outcome(created("S-1", {"p": 1}), "confirmed"),
                          Outcome(created("S-1", {"q": 1}, record="inventory"), "confirmed"),
                          Outcome(created("S-2", {"p": 2}), "confirmed")])
    state.record("vend", [Outcome(created("7890000000017", {"g": 1}, sku="S-1"), "confirmed"),
                          Outcome(created("7890000000024", {"g": 2}, sku="S-2"), "confirmed")])
    state.record("zeta", [Outcome(created("S-3", {"z": 1}), "confirmed")])
    assert sorted(rows_of(state.location, "SELECT key, sku FROM items WHERE target = 'vend'")) == [
        ("7890000000017", "S-1"), ("7890000000024", "S-2")]
    assert rows_of(state.location, "SELECT count(*) FROM items WHERE sku IS NOT NULL") == [(2,)]
    found = [(i.target, i.record, i.key, i.sku, i.payload) for i in state.items_of_sku("S-1")]
    assert found == [("vend", "product", "7890000000017", "S-1", {"g": 1}),
                     ("vtex", "inventory", "S-1", "S-1", {"q": 1}), ("vtex", "product", "S-1", "S-1", {"p": 1})]
    assert [i.target for i in state.items_of_sku("S-3")] == ["zeta"] and state.items_of_sku("S-9") == []
    assert state.remove_sku("S-1") == 3 and state.items_of_sku("S-1") == []


def test_times_and_outcomes_read_as_the_words_and_text_they_were(state):
    state.record("t", [Outcome(created("A", {"v": 1}), "confirmed"), Outcome(created("B", {"v": 2}), "accepted")])
    state.record("t", [Outcome(Operation("update", "product", "A", "A", {"v": 1}, {"v": 3}), "failed", reason="no")])
    state.adopt("t", [("product", "C", "C", {"v": 4})])
    items = {i.key: i for i in state.items("t")}
    assert {k: (i.last_action, i.last_outcome) for k, i in items.items()} == {
        "A": ("create", "failed"), "B": ("create", "accepted"), "C": ("import", "confirmed")}
    stamp = items["A"].updated_at
    assert stamp.endswith("+00:00") and abs(time.time() - _epoch(stamp)) < 3600
    # forgetting and restoring an item (what `state rm` and `state restore` do) keeps it exactly
    state.remove([items["B"]])
    state.restore([items["B"]])
    assert state.item("t", "product", "B") == items["B"]


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


# -- from version 6 --------------------------------------------------------------------------
def version_6_state(location) -> list[tuple]:
    """A state as version 6 wrote it: items on three targets (one keyed by another
    word than the sku, one with enough payloads for a dictionary), a failure, an
    accepted item, a pending job, an apply and request history. Returns its items as
    version 6 read them."""
    items = [("vtex", record, f"S-{i:04d}", f"S-{i:04d}", product(i) if record == "product" else {"price": i},
              None, "create", "confirmed", f"2026-05-0{i % 9 + 1}T10:{i % 60:02d}:00+00:00")
             for i in range(300) for record in ("product", "inventory")]
    items += [("vend", "product", f"789{i:010d}", f"S-{i:04d}", {"gtin": i, "title": f"é {i}"}, f"r{i}", "update",
               "accepted", "2026-06-01T00:00:00+00:00") for i in range(5)]
    items += [("meta", "product", "S-0001", "S-0001", {"title": "x"}, None, "import", "failed", None),
              ("meta", "product", "S-0002", "S-0002", {}, None, None, None, "2026-06-01T00:00:00+00:00")]
    conn = connect(location, read_only=False)
    with conn.transaction():
        schema.build(conn, 6)
        conn.executemany(SET_META, [("schema_version", "6"), ("lineage", "L-6"), ("serial", "9")])
        conn.executemany("INSERT INTO targets (name, serial) VALUES (?, ?)", [("vtex", 7), ("vend", 8), ("meta", 9)])
        conn.executemany(OLD_ITEM, [(t, r, k, s, orjson.dumps(p, option=orjson.OPT_SORT_KEYS).decode(),
                                     payload_digest(p), *rest) for t, r, k, s, p, *rest in items])
        conn.execute("INSERT INTO failures (apply_id, target, record, key, sku, action, reason, at) "
                     "VALUES (1, 'meta', 'product', 'S-0001', 'S-0001', 'update', 'refused', 'then')")
        conn.execute("INSERT INTO accepted (apply_id, target, record, key, sku, action, at) "
                     "VALUES (1, 'vend', 'product', '7890000000001', 'S-0001', 'update', 'then')")
        job = [{"action": "create", "record": "product", "key": "S-9", "sku": "S-9", "before": None,
                "after": {"v": 9}, "remote_id": None}]
        conn.execute("INSERT INTO jobs (target, handle, operations, created_at, apply_id) VALUES (?,?,?,?,?)",
                     ("meta", "h-9", orjson.dumps(job).decode(), "then", 1))
        conn.execute("INSERT INTO applies (started_at, serial, targets, status) VALUES ('then', 9, '[\"meta\"]', 'ok')")
        conn.execute("INSERT INTO requests (target, endpoint, sent_at, status, items, bytes) "
                     "VALUES ('meta', 'batch', 1.5, 200, 2, 100)")
    conn.close()
    return sorted((t, r, k, s, p, payload_digest(p), *rest) for t, r, k, s, p, *rest in items)


def test_a_version_6_state_keeps_every_item_payload_and_job(state_location):
    expected = version_6_state(state_location)

    def same(state: State) -> None:
        assert state.schema_version == SCHEMA_VERSION
        assert sorted(readable(state)) == expected
        assert (state.lineage, state.serial, state.target_serials()) == ("L-6", 9, {"vtex": 7, "vend": 8, "meta": 9})
        assert [(j.target, j.job.handle, j.job.operations[0].after) for j in state.pending_jobs()] == [
            ("meta", "h-9", {"v": 9})]
        assert [f["reason"] for f in state.failures()] == ["refused"]
        assert [a["key"] for a in state.accepted()] == ["7890000000001"]
        assert state.request_times("meta", 0) == [1.5] and len(state.applies()) == 1
        assert [i.key for i in state.items_of_sku("S-0001")] == ["S-0001", "7890000000001", "S-0001", "S-0001"]
        assert state.hashes("vend") == {("product", k): d for t, _, k, _, _, d, *_ in expected if t == "vend"}

    reader = State(state_location, create=False)  # read through a copy upgraded in memory
    same(reader)
    reader.close()
    assert rows_of(state_location, "SELECT value FROM meta WHERE key = 'schema_version'") == [("6",)]
    writer = State(state_location)  # upgrades it, under the whole-state lock
    same(writer)
    writer.close()
    assert rows_of(state_location, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert rows_of(state_location, "SELECT target, record, id FROM dictionaries ORDER BY 1, 2") == [
        ("vtex", "inventory", 1), ("vtex", "product", 1)]
    assert rows_of(state_location, "SELECT count(*) FROM items WHERE sku IS NOT NULL") == [(5,)]
    if state_location.path is not None:  # the old rows' pages went back to the file system
        assert rows_of(state_location, "PRAGMA freelist_count") == [(0,)]
    same(State(state_location, create=False))


def test_a_pack_is_undone_by_unpack_for_any_payload():
    """Bytes of every kind, short and long, with and without a dictionary."""
    from hypothesis import given, settings, strategies as st

    payloads, conn = Payloads(), State.empty().conn

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(max_size=600), min_size=1, max_size=40))
    def round_trip(bodies):
        for data, (stored, dictionary) in zip(bodies, payloads.pack(conn, "t", "product", bodies)):
            assert payloads.unpack(conn, "t", "product", stored, dictionary) == data

    round_trip()


def test_payloads_written_with_a_32_kib_window_still_read(state):
    """Rows written before payloads took a 16 KiB window (with the dictionary their row
    names) read as they were, a long one with matches further back than 16 KiB too."""
    import os
    import zlib

    bodies = [orjson.dumps({"title": f"Product {i}", "brand": "Acme", "n": i}) for i in range(400)]
    state.record("t", [Outcome(Operation("create", "product", f"K{i}", f"K{i}", None, orjson.loads(b)), "confirmed")
                       for i, b in enumerate(bodies)])
    number = state.conn.execute("SELECT max(id) FROM dictionaries").fetchone()[0]
    zdict = state.payloads.dictionary(state.conn, "t", "product", number)
    body = orjson.dumps({"title": "Older", "description": os.urandom(20_000).hex()})
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    data = deflate.compress(body) + deflate.flush()
    with pytest.raises(zlib.error):  # what a 16 KiB window cannot read
        zlib.decompressobj(-14, zdict=zdict).decompress(data)
    with state.transaction() as conn:
        conn.execute("UPDATE items SET payload = ?, dictionary = ? WHERE key = 'K7'", (data, number))
    assert state.item("t", "product", "K7").payload == orjson.loads(body)
