"""The run of one target: its operations packed into requests, sent within the
target's limits, and every answer turned into outcomes.

* ``batching.pack`` turns the operations into requests (the provider's limits
  lowered by the target's own), sent by the target's workers
  (:mod:`reconciler.apply.workers`); deletes a provider must read first are read
  before they are packed (:mod:`reconciler.apply.existence`);
* every write first takes a slot of its rate scope's strict sliding window, kept in
  the state (:mod:`reconciler.apply.window`), so that every process and consecutive
  applies share it;
* the answer goes through the engine's HTTP rules (:func:`reconciler.apply.http.exchange`),
  then the provider decodes it into outcomes (:meth:`TargetRun.handle`): ``confirmed``,
  ``accepted``, ``failed`` and ``pending`` are recorded at once (:mod:`reconciler.apply.recording`;
  jobs are then polled, :mod:`reconciler.apply.polling`), ``retry`` is sent again
  (:mod:`reconciler.apply.requeue`), ``split`` sends the operations again as two
  halves (a lone one fails; past ``Tuning.split_requests`` bisected requests, a
  target's refusals as a whole fail: they are not one item's);
* a ``ConfigError`` (credentials refused, bad settings) or a ``DestinationError`` (a
  redirect, an answer too large, a TLS failure: :mod:`reconciler.apply.http`; a wait
  too long or the retry budget spent: :mod:`reconciler.apply.retry`) stops the target
  with one message; the others go on. Whatever reaches the reporter, the result or the
  state's failures is redacted of the target's credentials.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import deque
from dataclasses import replace
from typing import Any, Awaitable, Callable, Iterator, Mapping, Sequence

from reconciler import credentials
from reconciler.apply.batching import pack
from reconciler.apply.existence import divert
from reconciler.apply.http import Failed, decoded, exchange, open_client
from reconciler.apply.polling import settle_earlier
from reconciler.apply.recording import record
from reconciler.apply.requeue import retry_writes
from reconciler.apply.result import TargetResult
from reconciler.apply.retry import RetryBudget
from reconciler.apply.scheduling import Context, needs_windows
from reconciler.apply.window import WaitClock, Window
from reconciler.apply.workers import work
from reconciler.errors import ConfigError, DestinationError, ReconcilerError
from reconciler.manifest.models import Target
from reconciler.plan.model import Changes
from reconciler.providers import get_provider, limits_for
from reconciler.providers.base import Job, Operation, Outcome, Request

FINAL = frozenset({"confirmed", "accepted", "failed"})  # recorded as they are


class TargetRun:
    """One target's part of an apply (or a settle: ``resend`` false, only jobs)."""

    def __init__(self, ctx: Context, target: Target, changes: Changes | tuple[()],
                 jobs: Sequence[tuple[int, Job]] = (), resend: bool = True, poll_once: bool = False,
                 auth: Mapping[str, str] | None = None):
        self.ctx = ctx
        self.target = target
        self.name = target.name
        self.changes = changes
        self.old_jobs = list(jobs)
        self.resend = resend            # False for settle: retry outcomes fail instead
        self.poll_once = poll_once      # settle without waiting: one status call per job
        self.result: TargetResult = ctx.result.targets[target.name]
        self.ignore = tuple(target.ignore_fields)
        self.auth = auth                # its credentials if resolved already (else resolved by run)
        self.secrets: list[str] = []
        self.ready: deque[Request] = deque()
        self.packer: Iterator[Request | Outcome] | None = None
        self.local: list[Outcome] = []
        self.attempts: dict[tuple[str, str], int] = {}
        self.active = 0                 # sends, timers and polls under way
        self.aux: set[asyncio.Task] = set()
        self.fatal: BaseException | None = None
        self.event = asyncio.Event()
        self.rng = random.Random()
        self.tuning = ctx.tuning.for_target(target)  # its request deadline, answer size and retry budget
        self.budget = RetryBudget(self.tuning.retry, target.provider)
        self.limits = limits_for(target)
        self.long_pole = needs_windows(self.limits, len(changes))
        self.answered = 0               # write requests answered (or failed)
        self.first_window = asyncio.Event()  # its first window's requests are answered, or it ended
        self.waits = WaitClock(ctx.waits)   # requests held back by the rate window (or a pause)
        self.said_until: float | None = None  # the next slot last told to the reporter

    def redact(self, text: str | None) -> str:
        return credentials.redact(text, self.secrets)

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``fn(*args)`` as a task of this target (counted in ``active``; an error
        stops the target). The coroutine is made when the task starts: a task cancelled
        before then (an interrupt) leaves no coroutine never awaited."""
        self.active += 1

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:  # a ConfigError, a bug or an unexpected answer: stop this target
                self.halt(exc)
            finally:
                self.active -= 1
                self.event.set()

        task = asyncio.ensure_future(guarded())
        self.aux.add(task)
        task.add_done_callback(self.aux.discard)

    def halt(self, exc: BaseException) -> None:
        """Stop this target's work, ``exc`` being why (:func:`~reconciler.apply.workers.work`
        raises it): the workers send nothing more, its retry timers and polls are
        cancelled (a record write still queued is not: its task's wait is shielded)."""
        self.fatal = exc
        current = asyncio.current_task()
        for task in list(self.aux):
            if task is not current:
                task.cancel()
        self.event.set()

    async def run(self) -> None:
        started = time.monotonic()
        tuning = self.ctx.tuning
        try:
            cls = get_provider(self.target.provider)
            secrets = self.auth
            if secrets is None:
                secrets = credentials.resolve(self.target, cls.auth_keys, self.ctx.environ)
            self.secrets = credentials.secrets_of(secrets)
            self.provider = cls(self.target.settings, secrets)
            shared = self.ctx.shared
            self.window = (shared and shared.windows.get(self.name)) or Window()
            self.slots = (shared and shared.in_flight.get(self.name)) or contextlib.nullcontext()
            # No documented cap: enough in flight to fill a rate window at once.
            in_flight = self.limits.max_in_flight or max(tuning.default_in_flight,
                                                         self.limits.max_requests_per_window or 0)
            self.poll_slots = asyncio.Semaphore(tuning.poll_concurrency)
            connections = in_flight + tuning.poll_concurrency
            self.ctx.reporter.target_started(self.name, self.target.provider, self.result.total)
            async with open_client(self.target, self.tuning, connections, self.ctx.transport) as client:
                self.client = client
                if self.old_jobs:
                    await settle_earlier(self)
                if self.changes:  # operations made as the packer needs them
                    ops = divert(self, self.changes.operations())
                    self.packer = iter(pack(self.provider, ops, self.limits))
                await work(self, in_flight)
        except ReconcilerError as exc:  # said as it is: not an internal error
            self._stop(exc)
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.result.interrupted = True
            raise
        except Exception as exc:
            self._stop(exc, internal=True)
        finally:
            self.first_window.set()
            for task in list(self.aux):
                task.cancel()
            self.result.seconds = time.monotonic() - started
        await self.ctx.writer.recorded(self)  # a stopped target's outcomes still being written
        self.ctx.reporter.target_finished(self.name, self.result)

    def _stop(self, exc: BaseException, internal: bool = False) -> None:
        message = self.redact(str(exc))
        if internal or not isinstance(exc, ReconcilerError):
            message = f"internal error ({type(exc).__name__}): {message}"
        self.result.error = message
        # a destination's own words say what to do: "<target>: <provider> asks to wait N s; run again later"
        self.ctx.reporter.message(self.name, message if isinstance(exc, DestinationError) else f"stopped: {message}")

    # -- sending and what comes back ----------------------------------------------------
    async def send(self, request: Request) -> None:
        """Send one write request and handle what comes back."""
        ops = request.operations
        # The in-flight cap shared with sibling targets (if any) first: a window's slot
        # is taken as the request goes, its send time the one the window counts from.
        async with self.slots:
            slot = await self._slot()
            answered_at: float | None = None  # none: cut off, the server may see it later
            try:
                if not self.window.limit:  # a window's slot, taken before the send, is its log
                    self.ctx.writer.log_request(self.name, request)
                self.result.requests += 1
                self.result.items_sent += len(ops)
                self.ctx.reporter.request_sent(self.name, request.endpoint or request.path, len(ops))
                try:
                    answer = await exchange(self.client, request, self.provider, self.tuning)
                except ReconcilerError:  # an answer that stops the target (credentials refused...)
                    answered_at = time.time()
                    raise
                answered_at = time.time()
            finally:
                self.window.release(slot, answered_at)
                self.answered += 1
                if self.answered >= (self.window.limit or 0) or (self.packer is None and not self.ready):
                    self.first_window.set()
        if not isinstance(answer, Failed):
            answer = decoded(functools.partial(self.provider.decode, request), answer, self.provider)
        transient = isinstance(answer, Failed)
        if transient:
            outcomes = [Outcome(op, "retry", answer.reason, retry_after=answer.retry_after,
                                rate_limited=answer.rate_limited) for op in ops]
        else:
            outcomes = answer
        retried = [o for o in outcomes if o.status == "retry"]
        if retried and len(retried) == len(outcomes):  # no item got anywhere: a failed attempt
            self.budget.failed(self.redact(retried[0].reason), max(o.retry_after or 0.0 for o in retried))
        else:
            self.budget.answered()
        self.handle(ops, outcomes, transient)

    async def _slot(self) -> int | None:
        """Take a slot of the rate window (returned, None without a limit). While this target's requests wait for one, the
        reporter hears why and until when (again when the next slot moves), and the
        wait counts once however many requests wait."""
        waiting = False

        def held(delay: float | None) -> None:
            nonlocal waiting
            first = not waiting and self.waits.start()
            waiting = True
            until = None if delay is None else time.time() + delay
            moved = until is not None and (self.said_until is None or abs(until - self.said_until) >= 1.0)
            if first or moved:
                self.said_until = until
                paused = self.window.paused_until > time.time()
                why = f"the pause {self.target.provider} asked for" if paused else f"{self.target.provider}'s window"
                self.ctx.reporter.waiting(self.name, until, why)

        try:
            return await self.window.acquire(held)
        finally:
            span = self.waits.stop() if waiting else None
            if span is not None:
                self.result.wait_seconds += span
                self.said_until = None
                self.ctx.reporter.waited(self.name, span)

    def handle(self, ops: Sequence[Operation], outcomes: Sequence[Outcome], transient: bool,
               settled_job: int | None = None) -> None:
        """Record the final outcomes of ``ops`` (and drop ``settled_job``), split what
        the destination refused as a whole, send again what is to be retried."""
        final: list[Outcome] = []
        retry: list[Outcome] = []
        split: list[Outcome] = []
        seen: set[int] = set()
        for outcome in outcomes:
            seen.add(id(outcome.operation))
            status = outcome.status
            if status in FINAL:
                final.append(outcome)
            elif status == "pending":
                if outcome.job is None:
                    retry.append(replace(outcome, status="retry", reason="pending without a job to poll"))
                else:
                    final.append(outcome)
            elif status == "split":
                split.append(outcome)
            else:
                retry.append(outcome)
        if len(seen) < len(ops):
            retry.extend(Outcome(op, "retry", f"{self.target.provider} gave no outcome for it")
                         for op in ops if id(op) not in seen)

        if split:
            split_ops = [o.operation for o in split]
            reason = split[0].reason or "refused as a whole"
            spent = 2 * self.result.split
            if len(split_ops) == 1 or not self.resend:
                final.extend(Outcome(op, "failed", reason) for op in split_ops)
            elif spent >= self.ctx.tuning.split_requests:
                final.extend(Outcome(op, "failed", f"{reason} (not bisected further: {spent} requests spent "
                                                   "bisecting found no single item at fault)") for op in split_ops)
            else:
                middle = len(split_ops) // 2
                self.result.split += 1
                self.ready.appendleft(self.provider.encode(split_ops[middle:]))
                self.ready.appendleft(self.provider.encode(split_ops[:middle]))
                self.event.set()

        if retry:
            if not self.resend:
                final.extend(Outcome(o.operation, "failed",
                                     f"{o.reason or 'failed'} (the next apply sends it again)") for o in retry)
            else:
                final.extend(retry_writes(self, retry, transient, any(o.status == "failed" for o in final)))

        if final or settled_job is not None:
            # Committed on the state's thread while this worker sends the next request.
            record(self, final, settled_job=settled_job)
