"""A strict sliding window over the write requests of one target.

At most ``limit`` requests in any ``window`` seconds, counted the way a server counts
them: a request occupies the window from the moment it is sent until ``window``
seconds after its answer came back (the server saw it somewhere in between, so this is
the strict reading), and a request still in flight occupies it all along. A deque of
times, not a leaky bucket: a burst of ``limit`` requests is allowed, the next one
waits for the oldest to leave the window.

Times are wall clock (``time.time()``), the clock of the persisted request history, so
that a window is shared across runs: the history loaded at start counts like requests
of this run (each shifted by a margin, since only its send time was logged).

:class:`WaitClock` measures how long requests waited for a window: the wall time during
which at least one did (the workers of a target wait at once, and so may the targets
of an apply).
"""
from __future__ import annotations

import asyncio
import bisect
import time
from typing import Callable, Iterable


class SlidingWindow:
    def __init__(self, limit: int | None, window: float | None, history: Iterable[float] = (),
                 clock: Callable[[], float] = time.time, history_margin: float | None = None):
        self.limit = limit if limit and window else None
        self.window = float(window or 0.0)
        self.clock = clock
        margin = history_margin if history_margin is not None else min(0.05 * self.window, 30.0)
        self.times: list[float] = sorted(t + margin for t in history)  # release times
        self.open = 0            # sent, not answered yet
        self.paused_until = 0.0  # the destination said we went too fast
        self._changed = asyncio.Event()

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a 429 with Retry-After)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self._changed.set()

    def _expire(self, now: float) -> None:
        cut = bisect.bisect_right(self.times, now - self.window)
        if cut:
            del self.times[:cut]

    def delay(self) -> float | None:
        """Seconds until a request may be sent (0: now; None: when one in flight ends)."""
        now = self.clock()
        if self.paused_until > now:
            return self.paused_until - now
        if self.limit is None:
            return 0.0
        self._expire(now)
        if len(self.times) + self.open < self.limit:
            return 0.0
        if self.times:
            return max(self.times[0] + self.window - now, 0.0) + 1e-4
        return None

    async def acquire(self, on_wait: Callable[[float | None], None] | None = None) -> float:
        """Wait for a slot and take it; returns the seconds waited. ``on_wait(delay)``
        is called before each sleep with the result of :meth:`delay`."""
        started = self.clock()
        while True:
            wait = self.delay()
            if wait == 0.0:
                self.open += 1
                return self.clock() - started
            if on_wait is not None:
                on_wait(wait)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    def release(self, at: float | None = None) -> None:
        """The request taken with :meth:`acquire` got its answer (or failed) at ``at``."""
        self.open -= 1
        if self.limit is not None:
            bisect.insort(self.times, self.clock() if at is None else at)
        self._changed.set()


class WaitClock:
    """Wall time during which at least one waiter waits: overlapping waits count once
    (adding them up would count the same seconds once per waiter). A clock with a
    ``parent`` (a target's, in the apply's) waits in it while it waits itself."""

    def __init__(self, parent: "WaitClock | None" = None, clock: Callable[[], float] = time.monotonic):
        self.parent = parent
        self.clock = clock
        self.waiting = 0
        self.since = 0.0
        self.seconds = 0.0

    def start(self, now: float | None = None) -> bool:
        """One more waiter; True when it is the first (a wait begins)."""
        self.waiting += 1
        if self.waiting > 1:
            return False
        self.since = self.clock() if now is None else now
        if self.parent is not None:
            self.parent.start(self.since)  # the same instant: a parent's wait is never the shorter
        return True

    def stop(self, now: float | None = None) -> float | None:
        """One waiter less; the seconds of the wait when it was the last, else None."""
        self.waiting -= 1
        if self.waiting:
            return None
        now = self.clock() if now is None else now
        span = now - self.since
        self.seconds += span
        if self.parent is not None:
            self.parent.stop(now)
        return span
