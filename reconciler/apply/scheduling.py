"""Scheduling: the targets of one apply run concurrently on one asyncio loop, within
the limits they share.

* :class:`Context`: what every target run of one apply (or settle) shares;
* :class:`SharedLimits`: one rate window and one in-flight cap per limit scope
  (targets on one Meta or Bloomreach catalog share them), with the strictest of their
  limits; the window kept in the state, shared with every other process;
* :func:`run_all`: the targets that need several rate windows start first and alone,
  the others once the leaders' first window is answered (at most ``head_start``);
* :func:`run_loop`: a fresh loop on which SIGINT, SIGTERM and a KeyboardInterrupt
  raised in a task cancel the apply cleanly.
"""
from __future__ import annotations

import asyncio
import functools
import signal
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Sequence

import httpx
import orjson

from reconciler.apply.recording import StateWriter
from reconciler.apply.report import Reporter
from reconciler.apply.result import ApplyResult
from reconciler.apply.tuning import Tuning
from reconciler.apply.window import SharedWindow, WaitClock, Window
from reconciler.errors import Terminated
from reconciler.manifest.models import Target
from reconciler.providers import limit_scope, limits_for
from reconciler.providers.base import Limits

if TYPE_CHECKING:
    from reconciler.apply.target import TargetRun


class SharedLimits:
    """The rate windows and in-flight caps of an apply's targets, by target name: one
    of each per limit scope (:func:`~reconciler.providers.limit_scope`), shared by the
    targets in it, with the strictest of their limits. A window is kept in the state
    (:class:`~reconciler.apply.window.SharedWindow`), so it counts the requests of every
    process and run in its scope, whichever targets they applied."""

    def __init__(self, names: Sequence[str], targets: Mapping[str, Target], writer: StateWriter, tuning: Tuning):
        self.windows: dict[str, Window] = {}
        self.in_flight: dict[str, asyncio.Semaphore] = {}
        scopes: dict[tuple, list[str]] = {}
        for name, target in targets.items():
            scopes.setdefault(limit_scope(target), []).append(name)
        for scope, members in scopes.items():
            applied = [name for name in members if name in names]
            limits = [limits_for(targets[name]) for name in applied]
            windowed = [lim for lim in limits if lim.max_requests_per_window and lim.window_seconds]
            if windowed:
                seconds = max(lim.window_seconds for lim in windowed) * tuning.window_scale
                limit = min(lim.max_requests_per_window for lim in windowed)
                key = orjson.dumps(list(scope)).decode()
                # the longest a request of the scope can be in flight: its deadline, connection included
                in_flight_for = max(tuning.for_target(targets[name]).request_timeout_seconds for name in members)
                for name in applied:
                    self.windows[name] = SharedWindow(
                        limit, functools.partial(writer.take_slot, key, name, limit, seconds, in_flight_for),
                        writer.answer_slot)
            capped = [lim.max_in_flight for lim in limits if lim.max_in_flight]
            if len(applied) > 1 and capped:  # a lone target's workers are its cap
                self.in_flight.update(dict.fromkeys(applied, asyncio.Semaphore(min(capped))))


@dataclass
class Context:
    """What every target run of one apply (or settle) shares."""

    writer: StateWriter
    reporter: Reporter
    tuning: Tuning
    environ: Mapping[str, str] | None
    apply_id: int | None              # the apply's row in the state (None: a settle)
    wait: bool                        # poll new jobs until they are final
    result: ApplyResult
    shared: SharedLimits | None = None
    transport: httpx.AsyncBaseTransport | None = None
    waits: WaitClock = field(default_factory=WaitClock)  # any target waiting for a window


def needs_windows(limits: Limits, changes: int) -> bool:
    """Whether a target's changes need more than one rate window (at best: full
    requests); without an item limit, assume they do."""
    if not limits.max_requests_per_window:
        return False
    if not limits.max_items_per_request:
        return True
    return changes > limits.max_requests_per_window * limits.max_items_per_request


async def run_all(runs: Sequence["TargetRun"], head_start: float) -> None:
    """Run the targets concurrently, those that need several rate windows first and
    alone until their first window's requests are answered (at most ``head_start``
    seconds).

    Such a target is the long pole of most applies, and its every later window
    opens a window's length after the answers of the one before: a delay in its first
    answers (its server and this client busy with the other targets' first big
    batches) is paid again by each window that follows. The others, bound by
    throughput alone, lose only the head start."""
    leaders = [run for run in runs if run.long_pole]
    followers = [run for run in runs if not run.long_pole]
    lead = asyncio.gather(*(run.run() for run in leaders))
    if leaders and followers:
        first_windows = asyncio.gather(*(run.first_window.wait() for run in leaders))
        try:
            await asyncio.wait_for(first_windows, head_start)
        except asyncio.TimeoutError:
            pass  # wait_for cancelled the waits; the leaders go on
        except BaseException:  # interrupted during the head start
            lead.cancel()
            raise
    await asyncio.gather(lead, *(run.run() for run in followers))


def run_loop(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine on a fresh loop; SIGINT and SIGTERM cancel it cleanly (tasks
    unwind at their next await, never inside a state transaction) and then surface
    as KeyboardInterrupt (SIGTERM as its subclass Terminated: exit code 143).

    A KeyboardInterrupt raised inside one of its tasks (a reporter's callback, a
    second Ctrl-C) interrupts it the same way: left to propagate, it would stop the
    loop with the other tasks half-way (rate-window slots unreleased, clients left
    open, tasks destroyed pending) and be re-raised by every task awaiting that one."""
    holder: dict[str, Any] = {}
    terminated = interrupted = False
    previous = None

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task = holder.get("task")
        if task is not None and not task.done():
            task.cancel()

    async def interruptible(coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except KeyboardInterrupt:
            interrupt()
            raise asyncio.CancelledError from None

    def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task:
        task = asyncio.Task(interruptible(coro), loop=loop, **kwargs)
        # A task cancelled before it started never ran ``coro``: closed, not "never awaited"
        task.add_done_callback(lambda _: coro.close())
        return task

    with asyncio.Runner() as runner:
        def on_sigterm(signum, frame):
            nonlocal terminated
            terminated = True
            task = holder.get("task")
            if task is None or task.done():
                raise Terminated
            runner.get_loop().call_soon_threadsafe(task.cancel)

        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, on_sigterm)
        runner.get_loop().set_task_factory(task_factory)

        async def main() -> Any:
            holder["task"] = asyncio.current_task()
            return await make()

        try:
            result = runner.run(main())
        except asyncio.CancelledError:
            if terminated:
                raise Terminated from None
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    if interrupted:  # raised in a task as the runner closed, after the coroutine's end
        raise Terminated if terminated else KeyboardInterrupt
    return result
