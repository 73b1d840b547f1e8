"""The strict sliding window on its own (real clock, small windows)."""
from __future__ import annotations

import asyncio
import time

from reconciler.apply.window import SlidingWindow


def test_no_more_than_limit_in_any_window_counting_from_the_answers():
    async def main():
        window = SlidingWindow(3, 0.1)
        sent, answered = [], []

        async def request():
            await window.acquire()
            sent.append(time.time())
            await asyncio.sleep(0.01)
            answered.append(time.time())
            window.release(answered[-1])

        await asyncio.gather(*(request() for _ in range(9)))
        return sorted(sent), sorted(answered)

    sent, answered = asyncio.run(main())
    for i in range(len(sent) - 3):
        assert sent[i + 3] >= answered[i] + 0.1 - 1e-6
    assert sent[-1] - sent[0] >= 0.2  # three windows for nine requests


def test_history_from_an_earlier_run_counts():
    async def main():
        now = time.time()
        window = SlidingWindow(2, 0.2, history=[now - 0.05, now - 0.01], history_margin=0.0)
        waited = await window.acquire()
        window.release()
        return waited

    assert 0.14 <= asyncio.run(main()) <= 0.3


def test_pause_holds_every_request():
    async def main():
        window = SlidingWindow(None, None)
        window.pause(0.1)
        started = time.monotonic()
        await window.acquire()
        return time.monotonic() - started

    assert asyncio.run(main()) >= 0.09
