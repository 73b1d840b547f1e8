"""Rate windows kept in the state (real clock, small windows), on each backend: shared
by every connection to the state, counting earlier runs, and the pause of a 429."""
from __future__ import annotations

import asyncio
import time

from reconciler.apply.window import SharedWindow, Window

IN_FLIGHT_FOR = 30.0


def window_on(state, limit, seconds, scope="scope", target="t"):
    """A window of ``scope`` kept in ``state`` (each call: another process's view)."""
    async def take(now):
        return state.take_slot(scope, target, limit, seconds, IN_FLIGHT_FOR, now)
    return SharedWindow(limit, seconds, take, state.answer_slot)


def burst(windows, requests, latency=0.01):
    """Send ``requests`` through the ``windows`` (round robin); returns the sorted send
    and answer times."""
    sent, answered = [], []

    async def request(window):
        await window.acquire()
        sent.append(time.time())
        await asyncio.sleep(latency)
        answered.append(time.time())
        window.release(answered[-1])

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
    window = window_on(state, 2, 0.2)
    waited = asyncio.run(window.acquire())
    assert 0.1 <= waited <= 0.4  # the first of them leaves the window 0.15 s after `now`


def test_a_dead_runs_unanswered_request_counts_until_it_would_have_timed_out(state):
    now = time.time()
    state.take_slot("scope", "t", 1, 0.05, 0.25, now - 0.2)  # never answered
    slot, wait = state.take_slot("scope", "t", 1, 0.05, 0.25, now)
    assert slot is None and wait == 0.0  # held by a request in flight, for all it knows
    slot, _ = state.take_slot("scope", "t", 1, 0.05, 0.25, now + 0.1)
    assert slot is not None


def test_pause_holds_every_request():
    async def main():
        window = Window()
        window.pause(0.1)
        started = time.monotonic()
        await window.acquire()
        return time.monotonic() - started

    assert asyncio.run(main()) >= 0.09
