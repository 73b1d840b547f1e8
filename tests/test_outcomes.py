"""The outcome vocabulary in the state (issue 10 item 1): ``confirmed`` (the destination
said it applied the item), ``accepted`` (it only acknowledged receipt), ``failed``,
``pending``; states written before say it in these words after their migration, on
both backends."""
from __future__ import annotations

from reconciler.providers.base import Job, Operation, Outcome
from reconciler.state import State, payload_digest, schema
from reconciler.state.dialect import connect
from reconciler.state.schema import SCHEMA_VERSION
from reconciler.state.store import SET_META
from test_state import OLD_ITEM


def op(action="create", key="A", before=None, after=None) -> Operation:
    return Operation(action, "product", key, key, before, after if after is not None or action == "delete" else {"v": 1})


def test_each_outcome_in_the_state(state):
    state.record("t", [Outcome(op(key="C"), "confirmed"), Outcome(op(key="A"), "accepted"),
                       Outcome(op("delete", "D", before={"v": 0}), "accepted"),
                       Outcome(op(key="F"), "failed", reason="refused"),
                       Outcome(op(key="P"), "pending", job=Job("h1", (op(key="P"),)))], apply_id=None)
    outcomes = {item.key: item.last_outcome for item in state.items("t")}
    assert outcomes == {"C": "confirmed", "A": "accepted"}  # a failed create has no row; a delete none left
    assert [(a["key"], a["action"]) for a in state.accepted("t")] == [("A", "create"), ("D", "delete")]
    assert [f["key"] for f in state.failures("t")] == ["F"]
    assert [j.job.handle for j in state.pending_jobs("t")] == ["h1"]
    # confirmed later (an apply, or status --verify): no longer only accepted
    state.record("t", [Outcome(op("update", "A", {"v": 1}, {"v": 2}), "confirmed")])
    assert [a["key"] for a in state.accepted("t")] == ["D"] and state.item("t", "product", "A").last_outcome == "confirmed"
    # an update that fails keeps the row's payload and says so
    state.record("t", [Outcome(op("update", "C", {"v": 1}, {"v": 3}), "failed", reason="no")])
    item = state.item("t", "product", "C")
    assert (item.payload, item.last_outcome) == ({"v": 1}, "failed")
    # forgetting an item forgets that it was only accepted
    state.remove([i for i in state.items("t")])
    state.record("t", [Outcome(op(key="Z"), "accepted")])
    state.remove(list(state.items("t")))
    assert [a["key"] for a in state.accepted("t")] == ["D"]  # a delete has no item row to forget


def test_a_version_5_state_says_its_outcomes_in_the_new_words(state_location):
    conn = connect(state_location, read_only=False)
    with conn.transaction():  # as version 5 wrote it
        schema.build(conn, 5)
        conn.executemany(SET_META, [("schema_version", "5"), ("lineage", "L-5"), ("serial", "1")])
        conn.executemany(OLD_ITEM, [("t", "product", k, k, '{"v":1}', payload_digest({"v": 1}), None, "create", said,
                                     "2026-01-02T03:04:05+00:00") for k, said in (("A", "applied"), ("B", "rejected"))])
    conn.close()
    state = State(state_location)
    assert state.schema_version == SCHEMA_VERSION
    assert {i.key: i.last_outcome for i in state.items("t")} == {"A": "confirmed", "B": "failed"}
    state.record("t", [Outcome(op(key="C"), "accepted")])
    assert [a["key"] for a in state.accepted()] == ["C"]
    state.close()
