"""Scheduling: the targets of one apply run concurrently on one asyncio loop, within
the limits they share.

* :class:`Context`: what every target run of one apply (or settle) shares;
* :class:`SharedLimits`: one rate window and one in-flight cap per limit scope
  (targets on one Meta or Bloomreach catalog share them), with the strictest of their
  limits and the recent requests of every target in the scope;
* :func:`run_all`: the targets that need several rate windows start first and alone,
  the others once the leaders' first window is answered (at most ``head_start``);
* :func:`run_loop`: a fresh loop on which SIGINT and SIGTERM cancel the apply cleanly.
"""
from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Sequence

import httpx

from reconciler.apply.recording import StateWriter
from reconciler.apply.report import Reporter
from reconciler.apply.result import ApplyResult
from reconciler.apply.tuning import Tuning
from reconciler.apply.window import SlidingWindow, WaitClock
from reconciler.errors import Terminated
from reconciler.manifest.models import Target
from reconciler.providers import limit_scope, limits_for
from reconciler.providers.base import Limits
from reconciler.state.store import State

if TYPE_CHECKING:
    from reconciler.apply.target import TargetRun


class SharedLimits:
    """The rate windows and in-flight caps of an apply's targets, by target name: one
    of each per limit scope (:func:`~reconciler.providers.limit_scope`), shared by the
    targets in it, with the strictest of their limits. A window's history holds the
    recent requests of every target of the manifests in its scope, so a target
    applied alone still counts its siblings'."""

    def __init__(self, names: Sequence[str], targets: Mapping[str, Target], state: State, scale: float):
        self.windows: dict[str, SlidingWindow] = {}
        self.in_flight: dict[str, asyncio.Semaphore] = {}
        scopes: dict[tuple, list[str]] = {}
        for name, target in targets.items():
            scopes.setdefault(limit_scope(target), []).append(name)
        for members in scopes.values():
            applied = [name for name in members if name in names]
            limits = [limits_for(targets[name]) for name in applied]
            windowed = [lim for lim in limits if lim.max_requests_per_window and lim.window_seconds]
            if windowed:
                seconds = max(lim.window_seconds for lim in windowed) * scale
                window = SlidingWindow(min(lim.max_requests_per_window for lim in windowed), seconds,
                                       state.request_times(members, time.time() - seconds))
                self.windows.update(dict.fromkeys(applied, window))
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
    as KeyboardInterrupt (SIGTERM as its subclass Terminated: exit code 143)."""
    holder: dict[str, Any] = {}
    terminated = False
    previous = None
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

        async def main() -> Any:
            holder["task"] = asyncio.current_task()
            return await make()

        try:
            return runner.run(main())
        except asyncio.CancelledError:
            if terminated:
                raise Terminated from None
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
