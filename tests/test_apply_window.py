"""Rate windows kept in the state (real clock, small windows), on each backend: shared
by every connection to the state, counting earlier runs, and the pause of a 429."""
from __future__ import annotations

import asyncio
import time

import pytest

from reconciler.apply.window import SharedWindow, Window

IN_FLIGHT_FOR = 30.0


def window_on(state, limit, seconds, scope="scope", target="t", in_flight_for=IN_FLIGHT_FOR, clock=time.time):
    """A window of ``scope`` kept in ``state`` (each call: another process's view)."""
    async def take(now):
        return state.take_slot(scope, target, limit, seconds, in_flight_for, now)
    return SharedWindow(limit, take, state.answer_slot, clock=clock)


def burst(windows, requests, latency=0.01):
    """Send ``requests`` through the ``windows`` (round robin); returns the sorted send
    and answer times."""
    sent, answered = [], []

    async def request(window):
        slot = await window.acquire()
        sent.append(time.time())
        await asyncio.sleep(latency)
        answered.append(time.time())
        window.release(slot, answered[-1])

    async def main():
        await asyncio.gather(*(request(windows[i % len(windows)]) for i in range(requests)))
    asyncio.run(main())
    return sorted(sent), sorted(answered)


def test_no_more_than_limit_in_any_window_counting_from_the_answers(state):
    sent, answered = burst([window_on(state, 3, 0.1)], 9)
    for i in range(len(sent) - 3):
        assert sent[i + 3] >= answered[i] + 0.1 - 1e-3
    assert sent[-1] - sent[0] >= 0.2  # three windows for nine requests


def test_two_connections_share_one_window(state):
    other = state.reopen()
    sent, answered = burst([window_on(state, 2, 0.15, target="a"), window_on(other, 2, 0.15, target="b")], 8)
    for i in range(len(sent) - 2):
        assert sent[i + 2] >= answered[i] + 0.15 - 1e-3
    assert {row for row in state.request_times(["a", "b"], 0)} and len(state.request_times(["a", "b"], 0)) == 8


def test_an_earlier_runs_requests_count(state):
    now = time.time()
    for ago in (0.05, 0.01):
        slot, _ = state.take_slot("scope", "t", 2, 0.2, IN_FLIGHT_FOR, now - ago)
        state.answer_slot(slot, now - ago)
    slot, wait = state.take_slot("scope", "t", 2, 0.2, IN_FLIGHT_FOR, now)
    assert slot is None and abs(wait - 0.15) < 1e-6  # the first of them leaves the window 0.15 s after `now`
    window = window_on(state, 2, 0.2)
    asyncio.run(window.acquire())
    assert time.time() >= now + 0.15


def test_a_request_never_answered_counts_until_a_window_after_its_deadline(state):
    """A dead run's request, or one cut off by an interrupt: the server may see it
    until its deadline (0.25 s after its send), and counts it a window (0.05 s) more."""
    sent = 1000.0
    state.take_slot("scope", "t", 1, 0.05, 0.25, sent)  # never answered
    slot, wait = state.take_slot("scope", "t", 1, 0.05, 0.25, sent + 0.2)
    assert slot is None and wait == 0.0  # held by a request in flight, for all it knows
    slot, wait = state.take_slot("scope", "t", 1, 0.05, 0.25, sent + 0.27)
    assert slot is None and abs(wait - 0.03) < 1e-6  # past its deadline: a window after it
    slot, _ = state.take_slot("scope", "t", 1, 0.05, 0.25, sent + 0.31)
    assert slot is not None


def test_an_answer_later_than_the_deadline_counts_from_the_answer(state):
    """A request that waited before it went (its send time is when its slot was taken)
    is answered past ``in_flight_for``: it still occupies the window a window after."""
    slot, _ = state.take_slot("scope", "t", 1, 0.05, 0.25, 1000.0)
    state.answer_slot(slot, 1000.4)
    slot, wait = state.take_slot("scope", "t", 1, 0.05, 0.25, 1000.42)
    assert slot is None and abs(wait - 0.03) < 1e-6
    assert state.take_slot("scope", "t", 1, 0.05, 0.25, 1000.46)[0] is not None


def test_a_slot_released_without_an_answer_stays_in_flight(state):
    """What a send cut off by an interrupt leaves: its slot, not answered."""
    window = window_on(state, 1, 0.05, in_flight_for=0.25, clock=lambda: 1000.0)
    slot = asyncio.run(window.acquire())
    window.release(slot, None)
    assert state.take_slot("scope", "t", 1, 0.05, 0.25, 1000.2) == (None, 0.0)
    assert state.take_slot("scope", "t", 1, 0.05, 0.25, 1000.31)[0] is not None


def test_pause_holds_every_request():
    async def main():
        window = Window()
        window.pause(0.1)
        paused_until = window.paused_until
        await window.acquire()
        return paused_until

    paused_until = asyncio.run(main())
    assert time.time() >= paused_until


def test_a_window_slot_writes_before_waiting_batches_of_outcomes():
    """On SQLite a slot's transaction and the outcomes' exclude each other: the slot takes
    the next turn, however many batches wait (SQLite's own busy handler made it wait
    behind them for up to 1.5 s)."""
    import threading

    from conftest import eventually
    from reconciler.apply.recording import WriteTurns

    turns, order, release = WriteTurns(), [], threading.Event()

    def batch(name, wait=None):
        return threading.Thread(target=turns.run, args=(False, lambda: (wait and wait.wait(), order.append(name))))
    threads = [batch("outcomes 1", release)]
    threads[0].start()
    eventually(lambda: turns.busy, "the first batch writing")
    threads += [batch("outcomes 2"), batch("outcomes 3")]
    for thread in threads[1:]:
        thread.start()
    window = threading.Thread(target=turns.run, args=(True, lambda: order.append("window slot")))
    window.start()
    eventually(lambda: turns.urgent == 1, "the slot waiting for its turn")
    release.set()
    for thread in [*threads, window]:
        thread.join(timeout=10)
    assert order[:2] == ["outcomes 1", "window slot"] and sorted(order[2:]) == ["outcomes 2", "outcomes 3"]


def test_batches_waiting_for_the_state_are_committed_together(state):
    """While the state's thread commits one batch of outcomes, the batches (and logged
    requests) that arrive wait and then go in one transaction: the state keeps up with
    answers that come faster than one commit each. Each batch's future gets its own
    jobs."""
    import threading

    from conftest import eventually
    from reconciler.apply.recording import StateWriter
    from reconciler.providers.base import Job, Operation, Outcome, Request

    writer, calls, release = StateWriter(state), [], threading.Event()
    record_batches = state.record_batches

    def held(batches, requests=()):
        calls.append(([b.target for b in batches], len(requests)))
        if len(calls) == 1:
            release.wait()
        return record_batches(batches, requests)

    state.record_batches = held
    ops = [Operation("create", "product", f"K{i}", f"S{i}", None, {"v": i}) for i in range(4)]
    try:
        first = writer.record("a", [Outcome(ops[0], "confirmed")], None, (), None)
        eventually(lambda: calls, "the first batch committing")
        later = [writer.record("b", [Outcome(ops[1], "confirmed")], None, (), None),
                 writer.record("c", [Outcome(ops[2], "pending", job=Job("h", (ops[2],)))], None, (), None)]
        writer.log_request("b", Request("POST", "/x", (ops[1],), b"{}"))
        release.set()
        assert first.result(timeout=10) == {}
        assert later[0].result(timeout=10) == {} and list(later[1].result(timeout=10)) == ["h"]
    finally:
        release.set()
        writer.close()
    assert calls == [(["a"], 0), (["b", "c"], 1)]
    assert sorted(state.targets()) == ["a", "b"] and [j.target for j in state.pending_jobs()] == ["c"]


def test_batches_committed_together_stop_at_a_big_batchs_worth_and_fail_alone(state):
    """The batches waiting for the state go together up to MOST_OUTCOMES_A_COMMIT
    outcomes (a window slot on SQLite waits for the transaction under way); and a
    batch that cannot be written fails alone, as in a transaction of its own: the
    others of its transaction are written, and its target's serial is bumped once."""
    import threading

    from conftest import eventually
    from reconciler.apply import recording
    from reconciler.apply.recording import StateWriter
    from reconciler.providers.base import Operation, Outcome

    writer, calls, release = StateWriter(state), [], threading.Event()
    record_batches = state.record_batches

    def held(batches, requests=()):
        calls.append([len(b.outcomes) for b in batches])
        if len(calls) == 1:
            release.wait()
        return record_batches(batches, requests)

    state.record_batches = held

    def batch(target, count, payload=None):
        return [Outcome(Operation("create", "product", f"{target}{i}", f"{target}{i}", None,
                                  payload or {"v": i}), "confirmed") for i in range(count)]
    most = recording.MOST_OUTCOMES_A_COMMIT
    try:
        first = writer.record("a", batch("a", 1), None, (), None)
        eventually(lambda: calls, "the first batch committing")
        waiting = [writer.record("b", batch("b", most - 1), None, (), None),
                   writer.record("c", batch("c", 2), None, (), None),
                   writer.record("d", batch("d", 1, {1: "a key that is not text"}), None, (), None),
                   writer.record("e", batch("e", 1), None, (), None)]
        release.set()
        first.result(timeout=30)
        assert waiting[0].result(timeout=30) == {} and waiting[1].result(timeout=30) == {}
        with pytest.raises(TypeError):  # orjson: a key that is not text
            waiting[2].result(timeout=30)
        assert waiting[3].result(timeout=30) == {}
    finally:
        release.set()
        writer.close()
    assert calls[:2] == [[1], [most - 1]]  # c would have gone over: the next transaction
    assert sorted(state.targets()) == ["a", "b", "c", "e"]
    assert state.target_serials(["c", "e"]) == {"c": 1, "e": 1}
