"""Rate windows over the write requests of a limit scope, shared by every process.

A strict sliding window: at most ``limit`` requests in any ``window`` seconds,
counted the way a server counts them: a request occupies the window from the moment
it is sent until ``window`` seconds after its answer came back (the server saw it
somewhere in between, so this is the strict reading), and a request still in flight
occupies it all along. A request that got no answer (cut off by an interrupt or its
target stopping, or sent by a run that died) may still reach the server until its
deadline: it occupies the window until ``window`` seconds after that. A burst of
``limit`` requests is allowed; the next one waits for the oldest to leave the window.

The window lives in the state, not in the process (:meth:`State.take_slot
<reconciler.state.store.State.take_slot>`): taking a slot is one transaction that
counts the scope's requests and adds one, serialised across processes and machines
(``BEGIN IMMEDIATE`` on SQLite, a transaction advisory lock on PostgreSQL). So two
runners applying two targets of one Meta catalog together stay within its 100 calls
an hour, and consecutive applies count each other's calls. Times are wall clock
(``time.time()``), the clock every process shares.

:class:`WaitClock` measures how long requests waited for a window: the wall time during
which at least one did (the workers of a target wait at once, and so may the targets
of an apply).

:class:`Window` is what a target without a rate limit has: nothing to count, only
the pause a 429 asks for.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

# While every slot is taken by requests still in flight, look again this often (a
# request of another process may be answered at any moment).
IN_FLIGHT_POLL = 0.05

OnWait = Callable[[float | None], None]


class Window:
    """No limit: only a pause when the destination says we went too fast."""

    limit: int | None = None

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.paused_until = 0.0
        self._changed = asyncio.Event()

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a 429 with Retry-After)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self._changed.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` or until something changed here."""
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _unpaused(self, on_wait: OnWait | None) -> None:
        while self.paused_until > self.clock():
            if on_wait is not None:
                on_wait(self.paused_until - self.clock())
            await self._sleep(self.paused_until - self.clock())

    async def acquire(self, on_wait: OnWait | None = None) -> int | None:
        """Wait until a request may be sent; returns its slot (None: a window without
        a limit has none). ``on_wait(delay)`` is called before each sleep with the
        seconds until a slot may free (None: when a request in flight is answered)."""
        await self._unpaused(on_wait)
        return None

    def release(self, slot: int | None, answered: float | None) -> None:
        """The request of ``slot`` (from :meth:`acquire`) got its answer, or failed,
        at ``answered``; None: it was cut off without one."""


TakeSlot = Callable[[float], Awaitable[tuple[int | None, float]]]
AnswerSlot = Callable[[int, float], None]


class SharedWindow(Window):
    """A strict sliding window of ``limit`` requests kept in the state: ``take(now)``
    takes a slot there (its request id, or how long to wait; the window's length is
    ``take``'s) and ``answer(request_id, at)`` records when its answer came. A slot
    released without an answer stays in flight there (until its deadline, then a window
    more)."""

    def __init__(self, limit: int, take: TakeSlot, answer: AnswerSlot, clock: Callable[[], float] = time.time):
        super().__init__(clock)
        self.limit = limit
        self._take = take
        self._answer = answer

    async def acquire(self, on_wait: OnWait | None = None) -> int | None:
        while True:
            await self._unpaused(on_wait)
            slot, wait = await self._take(self.clock())
            if slot is not None:
                return slot
            if on_wait is not None:
                on_wait(wait if wait > 0 else None)
            await self._sleep(wait if wait > 0 else IN_FLIGHT_POLL)

    def release(self, slot: int | None, answered: float | None) -> None:
        if slot is not None and answered is not None:
            self._answer(slot, answered)
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
