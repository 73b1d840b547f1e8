"""Recording: what the destinations confirmed goes to the state, on the state's own
thread, and into the counts and failures of the result.

Every State call of a run is here (:class:`StateWriter`), except those of the apply as
a whole (the lock, the apply's row, the request history's pruning:
:mod:`reconciler.apply.session`) and the loading of a shared rate window's history
(:mod:`reconciler.apply.scheduling`).
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from reconciler.apply.polling import poll
from reconciler.apply.result import Failure
from reconciler.providers.base import Job, Outcome, Request
from reconciler.state.dialect import SQLite
from reconciler.state.store import OutcomeBatch, State

T = TypeVar("T")

if TYPE_CHECKING:
    from reconciler.apply.target import TargetRun


class WriteTurns:
    """Write transactions of one SQLite state from this apply's two threads, one at a
    time, a rate window's before any batch of outcomes. SQLite has one writer at a
    time and its busy handler is not fair: a slot's short transaction, retrying with
    growing sleeps while batches of outcomes commit back to back, waited up to 1.5 s
    (and each window generation after it paid that again)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.busy = False
        self.urgent = 0  # window transactions waiting for their turn

    def run(self, urgent: bool, call: Callable[[], T]) -> T:
        with self.changed:
            self.urgent += urgent
            try:
                while self.busy or (not urgent and self.urgent):
                    self.changed.wait()
            finally:
                self.urgent -= urgent
            self.busy = True
        try:
            return call()
        finally:
            with self.changed:
                self.busy = False
                self.changed.notify_all()


# The most outcomes one transaction of the state's thread takes from its queue (more
# when one batch is larger): a big batch's worth. On SQLite a rate window's slot waits
# for the transaction under way, and a longer one delayed whole window generations.
MOST_OUTCOMES_A_COMMIT = 5_000


class StateWriter:
    """The state's threads, shared by the targets of one apply. SQLite works without
    the GIL, so writes overlap with the network; one thread commits outcomes in the
    order they were asked for, all the batches waiting when it gets to them in one
    transaction (while the state keeps up, a batch a transaction; when answers come
    faster than it commits, it commits more of them at once instead of falling
    further behind: a commit and a statement a table cost a PostgreSQL round trip
    each). Rate-window slots (taken before a send) go through a second connection and
    thread, so that they never queue behind big batches of outcomes (on SQLite, whose
    writers exclude each other, they take their turn first: :class:`WriteTurns`)."""

    def __init__(self, state: State):
        self.state = state
        self.outcomes = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconciler-state")
        self.window_state = state.reopen()
        self.window_log = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconciler-window")
        self.turns = WriteTurns() if isinstance(state.conn, SQLite) else None
        self.uncounted: dict[concurrent.futures.Future, Counted] = {}  # writes submitted, not counted yet
        # what the state's thread has to write: batches of outcomes with their futures,
        # and requests to log (State.record_batches' ``requests``)
        self.batches: collections.deque[tuple[OutcomeBatch, concurrent.futures.Future]] = collections.deque()
        self.requests: collections.deque[tuple] = collections.deque()

    def _write(self, pool: concurrent.futures.ThreadPoolExecutor, urgent: bool, call: Callable[..., T], *args,
               **kwargs) -> "concurrent.futures.Future[T]":
        call = functools.partial(call, *args, **kwargs)
        if self.turns is not None:
            call = functools.partial(self.turns.run, urgent, call)
        return pool.submit(call)

    def record(self, target: str, outcomes: Sequence[Outcome], apply_id: int | None, ignore: Sequence[str],
               settled_job: int | None) -> "concurrent.futures.Future[dict[str, int]]":
        """Commit ``outcomes`` (and drop ``settled_job``); the future gives the ids of
        the jobs the outcomes added, by handle."""
        written: concurrent.futures.Future[dict[str, int]] = concurrent.futures.Future()
        self.batches.append((OutcomeBatch(target, outcomes, apply_id, ignore, settled_job), written))
        self._write(self.outcomes, False, self._record_queued)
        return written

    def log_request(self, target: str, request: Request) -> None:
        """Log a write request outside any rate window in the request history."""
        self.requests.append((target, request.endpoint or request.path, time.time(), None,
                              len(request.operations), len(request.body or b"")))
        self._write(self.outcomes, False, self._record_queued)

    def _record_queued(self) -> None:
        """On the state's thread: commit the batches and requests queued by now (those
        a call before took are gone: then nothing), batches up to
        MOST_OUTCOMES_A_COMMIT outcomes (one larger batch alone)."""
        taken, count = [], 0
        while self.batches and not (taken and count + len(self.batches[0][0].outcomes) > MOST_OUTCOMES_A_COMMIT):
            taken.append(self.batches.popleft())
            count += len(taken[-1][0].outcomes)
        requests = [self.requests.popleft() for _ in range(len(self.requests))]
        if not taken and not requests:
            return
        try:
            job_ids = self.state.record_batches([batch for batch, _ in taken], requests)
        except Exception as exc:
            if len(taken) + bool(requests) == 1:
                for _, written in taken:
                    written.set_exception(exc)
            else:
                self._record_one_at_a_time(taken, requests)
            return
        except BaseException as exc:  # no future left waiting for ever
            for _, written in taken:
                written.set_exception(exc)
            raise
        for (_, written), ids in zip(taken, job_ids):
            written.set_result(ids)

    def _record_one_at_a_time(self, taken: list[tuple[OutcomeBatch, concurrent.futures.Future]],
                              requests: list[tuple]) -> None:
        """After a transaction of several batches failed: each again in its own, so that
        only what cannot be written fails (a full disk fails them all again)."""
        for batch, written in taken:
            try:
                written.set_result(self.state.record_batches([batch])[0])
            except Exception as exc:
                written.set_exception(exc)
        try:
            self.state.record_batches((), requests)
        except Exception:
            pass  # the history of requests outside rate windows: nothing waits for it

    async def take_slot(self, *args) -> tuple[int | None, float]:
        """:meth:`State.take_slot`, on the window's own connection and thread: a send
        waits at most for the transaction under way, never behind big batches of
        outcomes."""
        return await asyncio.wrap_future(self._write(self.window_log, True, self.window_state.take_slot, *args))

    def answer_slot(self, request_id: int, at: float) -> None:
        self._write(self.window_log, True, self.window_state.answer_slot, request_id, at)

    async def recorded(self, run: "TargetRun") -> None:
        """Wait for the writes of ``run``'s outcomes still under way (those of a target
        that stopped: their tasks were cancelled) and count those committed, so that
        what the target's line says is what the state holds."""
        for written, count in list(self.uncounted.items()):
            if count.run is run:
                try:
                    await _written(written)
                except Exception:
                    continue  # not recorded: not counted (a target stopped already)
                if self.uncounted.pop(written, None) is not None:
                    count.add()

    def close(self) -> None:
        """Wait for writes under way (an interrupted apply completes them first) and
        count those committed that no task was left to count. A Ctrl-C during the wait
        does not cut it short: the apply's row and its lock must outlast the commits
        still running on the threads. It is raised once they ended and were counted."""
        interrupted: KeyboardInterrupt | None = None
        for pool in (self.outcomes, self.window_log):
            # A fence, not the pool's shutdown: a thread's join interrupted by Ctrl-C
            # takes the thread for ended (a second join returns at once); a future's
            # wait is taken up again. One thread a pool: the fence comes after every
            # write submitted before it.
            fence = pool.submit(lambda: None)
            while True:
                try:
                    fence.result()
                    break
                except KeyboardInterrupt as exc:  # another Ctrl-C: keep waiting, then say it
                    interrupted = exc
            pool.shutdown(wait=False)
        for written, count in list(self.uncounted.items()):
            if written.exception() is None:
                count.add(report=False)  # the progress display has ended with the loop
        self.uncounted.clear()
        if self.window_state is not self.state:
            self.window_state.close()
        if interrupted is not None:
            raise interrupted


def record(run: "TargetRun", outcomes: list[Outcome], settled_job: int | None = None, local: bool = False) -> None:
    """Commit ``outcomes`` of ``run``'s target (and drop ``settled_job``), and once
    committed count them and poll the jobs they add. The write is submitted now, not
    when a task gets to run: from here on an interrupt still commits it (the apply
    waits for the state's thread, then counts what was committed). Only what the state
    recorded is counted: a write that fails (a full disk) counts nothing."""
    ctx = run.ctx
    if run.secrets:
        outcomes = [replace(o, reason=run.redact(o.reason)) if o.reason and o.status == "failed" else o
                    for o in outcomes]
    written = ctx.writer.record(run.name, outcomes, ctx.apply_id, run.ignore, settled_job)
    count = Counted(run, outcomes, local)
    ctx.writer.uncounted[written] = count
    run.spawn(_committed, run, written, count)


class Counted:
    """The counts of one batch of outcomes, added to the result once, when committed."""

    def __init__(self, run: "TargetRun", outcomes: list[Outcome], local: bool):
        self.run, self.outcomes, self.local = run, outcomes, local
        self.jobs: dict[str, Job] = {}

    def add(self, report: bool = True) -> None:
        run = self.run
        counts = dict.fromkeys(("confirmed", "accepted", "failed", "pending", "local"), 0)
        failures = run.ctx.result.failures
        for outcome in self.outcomes:
            status = outcome.status
            counts[status] += 1
            if status == "failed":
                op = outcome.operation
                failures.append(Failure(run.name, op.sku, op.record, op.action, outcome.reason or "refused", op.key))
            elif status == "pending":
                self.jobs.setdefault(outcome.job.handle, outcome.job)
        if self.local:  # recorded without a request: nothing was confirmed
            counts["local"], counts["confirmed"] = counts["confirmed"], 0
        result = run.result
        for name, count in counts.items():
            setattr(result, name, getattr(result, name) + count)
        if report:
            run.ctx.reporter.recorded(run.name, counts)


def _written(written: "concurrent.futures.Future[T]") -> "asyncio.Future[T]":
    """Await ``written`` (a write on the state's thread) from the loop. Shielded:
    cancelling the task that awaits (an interrupt, a stopped target) must not cancel a
    write still queued. The write's error is marked as seen: a task cancelled before
    its write failed (a target stopped by the failure of another) never sees it."""
    waiting = asyncio.wrap_future(written)
    # A task cancelled before its write ended no longer follows it (shield lets go)
    waiting.add_done_callback(lambda done: done.cancelled() or done.exception())
    return asyncio.shield(waiting)


async def _committed(run: "TargetRun", written: "concurrent.futures.Future[dict[str, int]]", count: Counted) -> None:
    """Wait for a write (its error stops the target), count it, then poll the jobs it added."""
    job_ids = await _written(written)
    if run.ctx.writer.uncounted.pop(written, None) is None:
        return
    count.add()
    if run.ctx.wait:
        for handle, job in count.jobs.items():
            run.spawn(poll, run, job_ids[handle], job)
