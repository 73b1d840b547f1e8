"""The executor: carries a plan out against the destinations, recording every outcome.

One :class:`_TargetRun` per target, all targets concurrently on one asyncio loop, each
with its own ``httpx.AsyncClient``; a target that needs several rate windows starts
alone, the others once its first window is answered (:func:`_run_all`). Within a target:

* ``batching.pack`` turns the operations into requests (``limits`` lowered by the
  target's own); outcomes it yields (oversize items, local deletes) are recorded
  without a request;
* ``max_in_flight`` workers send them (that many workers, each one request at a time);
  every write first takes a slot of its rate scope's strict sliding window
  (:mod:`reconciler.apply.window`; targets on one Meta or Bloomreach catalog share
  one), whose history is loaded from and logged to the state so that consecutive
  applies share it;
* the provider decodes each answer into outcomes. ``applied``/``rejected``/``pending``
  are committed at once, one transaction per answer. ``retry`` goes back through
  ``pack`` after an exponential backoff with full jitter (at least the server's
  ``Retry-After``; ``rate_limited`` also pauses the whole target), at most
  ``max_attempts`` times per item, then the item fails with the last reason; a retry
  that only comes from other items' rejection in the same answer is sent again at once.
  ``split`` sends the operations again as two halves (a lone one is rejected);
* HTTP 429/5xx and transport errors (timeouts, dropped connections) are ``retry`` for
  the whole request (the provider sees the 429/5xx answers itself);
* ``pending`` outcomes are jobs, recorded in the state, then polled (not writes: no
  rate window) with a growing interval until ``decode_poll`` gives final outcomes,
  unless ``wait=False``; jobs left by an earlier apply are settled first;
* a ``ConfigError`` (credentials refused, bad settings) stops the target; the others
  go on.

Everything that reaches the reporter, the result or the state's failures is redacted
of the target's credentials.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import random
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Mapping, Sequence

import httpx
import orjson

from reconciler import credentials
from reconciler.apply.batching import pack
from reconciler.apply.http import open_client, send
from reconciler.apply.report import Reporter, default_reporter
from reconciler.apply.result import ApplyResult, Failure, TargetResult
from reconciler.apply.window import SlidingWindow
from reconciler.errors import ConfigError, StalePlanError
from reconciler.manifest.models import Target
from reconciler.plan.model import Change, Plan
from reconciler.providers import get_provider, limit_scope, limits_for
from reconciler.providers._common import retry_after
from reconciler.providers.base import Job, Limits, Operation, Outcome, Request
from reconciler.state.store import State


# Requests older than this (or than the target's rate window, if longer) are forgotten
# at the start of an apply: the longest documented window (Meta's) is an hour.
REQUEST_HISTORY_SECONDS = 3600.0


@dataclass(frozen=True)
class Tuning:
    """Knobs of the executor that the spec leaves to us (tests make them faster)."""

    max_attempts: int = 8            # sends of one item before it fails
    backoff_base: float = 0.5        # seconds; the n-th retry waits U(0, min(cap, base * 2**(n-1)))
    backoff_cap: float = 30.0
    poll_initial: float = 0.25       # first poll of a job after this, then * poll_factor
    poll_factor: float = 1.5
    poll_cap: float = 30.0
    poll_timeout: float = 3600.0     # a job still running after this is left pending
    poll_concurrency: int = 2        # status requests in flight per target
    default_in_flight: int = 4       # when the provider documents no limit
    connect_timeout: float = 10.0
    timeout: float = 120.0           # read/write/pool timeout of one request
    record_chunk: int = 5000         # local outcomes per transaction
    window_scale: float = 1.0        # multiplies rate windows: only for a time-scaled sandbox
    head_start: float = 3.0          # at most, for targets that need several rate windows (_run_all)

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``: full jitter over an exponential
        ceiling, never less than what the destination asked (``Retry-After``)."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return max(rng.uniform(0, ceiling), retry_after or 0.0)


class _Context:
    """What every target run of one apply (or settle) shares."""

    def __init__(self, state: State, reporter: Reporter, tuning: Tuning, environ: Mapping[str, str] | None,
                 apply_id: int | None, wait: bool, result: ApplyResult,
                 shared: "_SharedLimits | None" = None):
        self.state = state
        self.shared = shared
        self.reporter = reporter
        self.tuning = tuning
        self.environ = environ
        self.apply_id = apply_id
        self.wait = wait
        self.result = result
        self.db = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconciler-state")
        # Sends of a rate-limited target wait for their request to be logged; on the
        # state's own thread they would queue behind big batches of outcomes. A second
        # connection and thread: a log waits at most for the transaction under way.
        self.window_state = State(state.path) if state.persistent else state
        self.window_log = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconciler-window")

    def close(self) -> None:
        """Wait for writes under way (an interrupted apply completes them first)."""
        self.db.shutdown(wait=True)
        self.window_log.shutdown(wait=True)
        if self.window_state is not self.state:
            self.window_state.close()


class _TargetRun:
    def __init__(self, ctx: _Context, target: Target, changes: Sequence[Change],
                 jobs: Sequence[tuple[int, Job]] = (), resend: bool = True, poll_once: bool = False):
        self.ctx = ctx
        self.target = target
        self.name = target.name
        self.changes = changes
        self.old_jobs = list(jobs)
        self.resend = resend            # False for settle: retry outcomes fail instead
        self.poll_once = poll_once      # settle without waiting: one status call per job
        self.result: TargetResult = ctx.result.targets[target.name]
        self.ignore = tuple(target.ignore_fields)
        self.secrets: list[str] = []
        self.ready: deque[Request] = deque()
        self.packer = None
        self.local: list[Outcome] = []
        self.attempts: dict[tuple[str, str], int] = {}
        self.active = 0                 # sends, timers and polls under way
        self.aux: set[asyncio.Task] = set()
        self.fatal: BaseException | None = None
        self.event = asyncio.Event()
        self.rng = random.Random()
        self.limits = limits_for(target)
        self.long_pole = _needs_windows(self.limits, len(changes))
        self.answered = 0               # write requests answered (or failed)
        self.first_window = asyncio.Event()  # its first window's requests are answered, or it ended

    # -- helpers -------------------------------------------------------------------
    def redact(self, text: str | None) -> str:
        return credentials.redact(text, self.secrets)

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``fn(*args)`` as a task of this target (counted in ``active``; an error
        stops the target). The coroutine is made when the task starts: a task cancelled
        before then (an interrupt) leaves no coroutine never awaited."""
        self.active += 1

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:  # a ConfigError, a bug or an unexpected answer: stop this target
                self.fatal = exc
            finally:
                self.active -= 1
                self.event.set()

        task = asyncio.ensure_future(guarded())
        self.aux.add(task)
        task.add_done_callback(self.aux.discard)

    # -- the run -------------------------------------------------------------------
    async def run(self) -> None:
        started = time.monotonic()
        tuning = self.ctx.tuning
        try:
            cls = get_provider(self.target.provider)
            secrets = credentials.resolve(self.target, cls.auth_keys, self.ctx.environ)
            self.secrets = credentials.secrets_of(secrets)
            self.provider = cls(self.target.settings, secrets)
            shared = self.ctx.shared
            self.window = (shared and shared.windows.get(self.name)) or SlidingWindow(None, None)
            self.slots = (shared and shared.in_flight.get(self.name)) or contextlib.nullcontext()
            # No documented cap: enough in flight to fill a rate window at once.
            in_flight = self.limits.max_in_flight or max(tuning.default_in_flight,
                                                         self.limits.max_requests_per_window or 0)
            self.poll_slots = asyncio.Semaphore(tuning.poll_concurrency)
            connections = in_flight + tuning.poll_concurrency
            self.ctx.reporter.target_started(self.name, self.target.provider, self.result.total)
            async with open_client(self.target, tuning, connections) as client:
                self.client = client
                if self.old_jobs:
                    await self._settle_old()
                if self.changes:  # operations made as the packer needs them
                    ops = (change.operation() for change in self.changes)
                    self.packer = iter(pack(self.provider, ops, self.limits))
                await self._work(in_flight)
        except ConfigError as exc:
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
        self.ctx.reporter.target_finished(self.name, self.result)

    def _stop(self, exc: BaseException, internal: bool = False) -> None:
        message = self.redact(str(exc))
        if internal or not isinstance(exc, ConfigError):
            message = f"internal error ({type(exc).__name__}): {message}"
        self.result.error = message
        self.ctx.reporter.message(self.name, f"stopped: {message}")

    async def _settle_old(self) -> None:
        count = sum(len(job.operations) for _, job in self.old_jobs)
        self.ctx.reporter.message(self.name, f"settling {len(self.old_jobs)} asynchronous job(s) "
                                             f"({count} items) from an earlier apply")
        await asyncio.gather(*(self._poll(job_id, job) for job_id, job in self.old_jobs))

    async def _work(self, in_flight: int) -> None:
        # The first request goes alone: bad credentials or a wrong URL cost one request.
        self.probed = asyncio.Event()
        workers = [asyncio.ensure_future(self._worker(first=i == 0)) for i in range(in_flight)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        self._flush_local()
        if self.aux:  # records still being written
            await asyncio.gather(*list(self.aux), return_exceptions=True)
        if self.fatal is not None:
            raise self.fatal

    async def _worker(self, first: bool = False) -> None:
        if not first:
            await self.probed.wait()
        try:
            await self._work_loop()
        finally:
            self.probed.set()

    async def _work_loop(self) -> None:
        while True:
            if self.fatal is not None:
                return
            request = self._next()
            if self.local and (self.packer is None or len(self.local) >= self.ctx.tuning.record_chunk):
                self._flush_local()
                if request is None and self.packer is not None:
                    continue  # the packer has more
            if request is None:
                if self.active == 0 and not self.ready and self.packer is None:
                    self.event.set()
                    return
                self.event.clear()
                await self.event.wait()
                continue
            self.active += 1
            try:
                await self._send(request)
            except ConfigError as exc:
                self.fatal = exc
            finally:
                self.active -= 1
                self.probed.set()
                self.event.set()

    def _next(self) -> Request | None:
        if self.ready:
            return self.ready.popleft()
        while self.packer is not None:
            try:
                item = next(self.packer)
            except StopIteration:
                self.packer = None
                break
            if isinstance(item, Outcome):
                self.local.append(item)
                if len(self.local) >= self.ctx.tuning.record_chunk:
                    return None  # recorded by the caller first
                continue
            return item
        return None

    def _flush_local(self) -> None:
        if self.local:
            outcomes, self.local = self.local, []
            self._record(outcomes, local=True)

    # -- sending -------------------------------------------------------------------
    async def _send(self, request: Request) -> None:
        ops = request.operations
        waited = await self.window.acquire()
        try:
            if waited > 0.0005:
                self.result.wait_seconds += waited
                self.ctx.reporter.waiting(self.name, waited, "rate window")
            size = len(request.body or b"")
            if self.window.limit:  # committed before sending: a killed run still counts in the window
                log = functools.partial(self.ctx.window_state.log_request, self.name,
                                        request.endpoint or request.path, time.time(), None, len(ops), size)
                await asyncio.get_running_loop().run_in_executor(self.ctx.window_log, log)
            else:  # history only: no need to wait for it
                self.ctx.db.submit(self.ctx.state.log_request, self.name, request.endpoint or request.path,
                                   time.time(), None, len(ops), size)
            self.result.requests += 1
            self.result.items_sent += len(ops)
            self.ctx.reporter.request_sent(self.name, request.endpoint or request.path, len(ops))
            response = None
            try:
                async with self.slots:  # the in-flight cap shared with sibling targets, if any
                    response = await send(self.client, request)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {self.redact(str(exc)) or 'connection failed'}"
        finally:
            self.window.release(time.time())
            self.answered += 1
            if self.answered >= (self.window.limit or 0) or (self.packer is None and not self.ready):
                self.first_window.set()
        if response is None:
            outcomes = [Outcome(op, "retry", f"{self.target.provider}: no answer ({reason})") for op in ops]
            transient = True
        else:
            transient = response.status_code == 429 or response.status_code >= 500
            try:
                outcomes = self.provider.decode(request, response)
            except ConfigError:
                raise
            except Exception as exc:
                outcomes = [Outcome(op, "retry", f"{self.target.provider}: unreadable answer (HTTP "
                                                 f"{response.status_code}): {type(exc).__name__}: {exc}")
                            for op in ops]
                transient = True
        self._handle(ops, outcomes, transient)

    def _handle(self, ops: Sequence[Operation], outcomes: Sequence[Outcome], transient: bool,
                settled_job: int | None = None) -> None:
        final: list[Outcome] = []
        retry: list[Outcome] = []
        split: list[Outcome] = []
        seen: set[int] = set()
        for outcome in outcomes:
            seen.add(id(outcome.operation))
            status = outcome.status
            if status == "applied" or status == "rejected":
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
            if len(split_ops) == 1 or not self.resend:
                final.extend(Outcome(op, "rejected", reason) for op in split_ops)
            else:
                middle = len(split_ops) // 2
                self.result.split += 1
                self.ready.appendleft(self.provider.encode(split_ops[middle:]))
                self.ready.appendleft(self.provider.encode(split_ops[:middle]))
                self.event.set()

        if retry:
            if not self.resend:
                final.extend(Outcome(o.operation, "rejected",
                                     f"{o.reason or 'failed'} (the next apply sends it again)") for o in retry)
            else:
                final.extend(self._retry(retry, transient, any(o.status == "rejected" for o in final)))

        if final or settled_job is not None:
            # Committed on the state's thread while this worker sends the next request.
            self._record(final, settled_job=settled_job)

    def _retry(self, retry: list[Outcome], transient: bool, others_rejected: bool) -> list[Outcome]:
        """Schedule the retry outcomes again; returns those out of attempts, as rejected."""
        tuning = self.ctx.tuning
        retry_after = max((o.retry_after or 0.0 for o in retry), default=0.0)
        rate_limited = any(o.rate_limited for o in retry)
        reason = self.redact(retry[0].reason or "transient failure")
        if others_rejected and not transient and not rate_limited and not retry_after:
            # Refused only because of the items rejected beside them: send at once.
            return self._enqueue([o.operation for o in retry])
        failed, again, level = [], [], 1
        for outcome in retry:
            op = outcome.operation
            ident = (op.record, op.key)
            attempt = self.attempts.get(ident, 0) + 1
            self.attempts[ident] = attempt
            if attempt >= tuning.max_attempts:
                failed.append(Outcome(op, "rejected", f"{outcome.reason or reason} (gave up after {attempt} attempts)"))
            else:
                again.append(op)
                level = max(level, attempt)
        if again:
            delay = tuning.backoff(level, retry_after, self.rng)
            if rate_limited:
                self.window.pause(delay)  # the whole target waits, not only these items
            self.result.retried += len(again)
            self.ctx.reporter.retrying(self.name, len(again), reason, delay)
            self._spawn(self._later, delay, again)
        return failed

    async def _later(self, delay: float, ops: list[Operation]) -> None:
        await asyncio.sleep(delay)
        outcomes = self._enqueue(ops)
        if outcomes:
            self._record(outcomes)

    def _enqueue(self, ops: list[Operation]) -> list[Outcome]:
        """Pack ``ops`` again into requests ready to send; returns the outcomes
        ``pack`` decided without a request (to record)."""
        outcomes = []
        for item in pack(self.provider, ops, self.limits):
            if isinstance(item, Outcome):
                outcomes.append(item)
            else:
                self.ready.append(item)
        self.event.set()
        return outcomes

    # -- recording -----------------------------------------------------------------
    def _record(self, outcomes: list[Outcome], settled_job: int | None = None, local: bool = False) -> None:
        """Commit ``outcomes`` (and drop ``settled_job``) on the state's own thread, and
        count them. The write is submitted now, not when a task gets to run: from here
        on an interrupt still commits it (``_Context.close`` waits for that thread).
        SQLite works without the GIL, so writes overlap with the network; one thread
        commits them in the order they were asked for."""
        if self.secrets:
            outcomes = [replace(o, reason=self.redact(o.reason)) if o.reason and o.status == "rejected" else o
                        for o in outcomes]
        written = self.ctx.db.submit(self.ctx.state.record, self.name, outcomes, self.ctx.apply_id,
                                     ignore=self.ignore, settled_job=settled_job)
        applied = rejected = pending = 0
        jobs: dict[str, Job] = {}
        failures = self.ctx.result.failures
        for outcome in outcomes:
            status = outcome.status
            if status == "applied":
                applied += 1
            elif status == "rejected":
                rejected += 1
                op = outcome.operation
                failures.append(Failure(self.name, op.sku, op.record, op.action, outcome.reason or "refused", op.key))
            elif status == "pending":
                pending += 1
                jobs.setdefault(outcome.job.handle, outcome.job)
        result = self.result
        if local:
            result.local += applied
        else:
            result.applied += applied
        result.rejected += rejected
        result.pending += pending
        self._spawn(self._committed, written, jobs if self.ctx.wait else {})
        self.ctx.reporter.recorded(self.name, {
            "applied": 0 if local else applied, "local": applied if local else 0,
            "rejected": rejected, "pending": pending,
        })

    async def _committed(self, written: "concurrent.futures.Future[dict[str, int]]", jobs: dict[str, Job]) -> None:
        """Wait for a write (its error stops the target), then poll the jobs it added."""
        job_ids = await asyncio.wrap_future(written)
        for handle, job in jobs.items():
            self._spawn(self._poll, job_ids[handle], job)

    # -- polling -------------------------------------------------------------------
    async def _poll(self, job_id: int, job: Job) -> None:
        """Poll a job until it is final (or once, or until the timeout); record it."""
        tuning = self.ctx.tuning
        started = time.monotonic()
        delay = tuning.poll_initial
        failures = 0
        first = True
        while True:
            if not (first and self.poll_once):
                await asyncio.sleep(delay)
            first = False
            delay = min(delay * tuning.poll_factor, tuning.poll_cap)
            request = self.provider.poll_request(job)
            response = None
            async with self.poll_slots:
                try:
                    response = await send(self.client, request)
                except httpx.TransportError:
                    response = None
            self.result.polls += 1
            outcomes = None
            if response is None or response.status_code == 429 or response.status_code >= 500:
                failures += 1
                if response is not None:
                    delay = max(delay, retry_after(response) or 0.0)
            else:
                try:
                    outcomes = self.provider.decode_poll(job, response)
                except ConfigError:
                    raise
                except Exception:
                    failures += 1
                    outcomes = None
            if outcomes is not None:
                self.result.pending -= len(job.operations)
                self.ctx.reporter.recorded(self.name, {"pending": -len(job.operations)})
                self._handle(job.operations, outcomes, transient=False, settled_job=job_id)
                return
            if self.poll_once:
                return
            if time.monotonic() - started > tuning.poll_timeout or failures > 3 * tuning.max_attempts:
                self.ctx.reporter.message(
                    self.name, f"job {job.handle} ({len(job.operations)} items) is not finished; left "
                               "pending (`reconciler status` settles it later)")
                return


# -- running the loop ---------------------------------------------------------------
def _run(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine on a fresh loop; SIGINT and SIGTERM cancel it cleanly (tasks
    unwind at their next await, never inside a state transaction) and then surface
    as KeyboardInterrupt."""
    holder: dict[str, Any] = {}
    terminated = False
    previous = None
    with asyncio.Runner() as runner:
        def on_sigterm(signum, frame):
            nonlocal terminated
            terminated = True
            task = holder.get("task")
            if task is None or task.done():
                raise KeyboardInterrupt
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
                raise KeyboardInterrupt from None
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


class _SharedLimits:
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


def _needs_windows(limits: Limits, changes: int) -> bool:
    """Whether a target's changes need more than one rate window (at best: full
    requests); without an item limit, assume they do."""
    if not limits.max_requests_per_window:
        return False
    if not limits.max_items_per_request:
        return True
    return changes > limits.max_requests_per_window * limits.max_items_per_request


async def _run_all(runs: Sequence[_TargetRun], head_start: float) -> None:
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


def _check_fresh(plan: Plan, state: State) -> None:
    if plan.lineage == state.lineage and plan.serial == state.serial:
        return
    if plan.lineage is None and state.serial == 0:
        return  # made before any state existed; nothing was applied since
    if plan.lineage is not None and plan.lineage != state.lineage:
        raise StalePlanError(
            f"the plan was made from another state (lineage {plan.lineage}, this state is {state.lineage}); "
            "make a new plan")
    raise StalePlanError(
        f"the state changed since the plan was made (plan at serial {plan.serial}, state now at "
        f"{state.serial}); make a new plan")


def apply_plan(plan: Plan, targets: Mapping[str, Target], state: State, *, wait: bool = True,
               reporter: Reporter | None = None, environ: Mapping[str, str] | None = None,
               tuning: Tuning | None = None) -> ApplyResult:
    """Carry ``plan`` out. Holds the state's lock throughout; refuses a stale plan.
    ``targets`` holds at least the plan's targets; give all of the manifests' so that
    a rate window counts the recent requests of every target that shares it."""
    reporter = reporter if reporter is not None else default_reporter()
    tuning = tuning or Tuning()
    unknown = [name for name in plan.targets if name not in targets]
    if unknown:
        raise ConfigError(f"the plan names target(s) not in the manifests: {', '.join(unknown)}")
    with state.locked(f"reconciler apply (pid {os.getpid()})"):
        _check_fresh(plan, state)
        for row in state.applies():
            if row["status"] == "running":  # we hold the lock: its process died (kill -9)
                state.finish_apply(row["id"], "aborted", orjson.loads(row["counts"]) if row["counts"] else {})
        old_jobs: dict[str, list[tuple[int, Job]]] = {}
        for pending in state.pending_jobs():
            if pending.target in plan.targets:
                old_jobs.setdefault(pending.target, []).append((pending.id, pending.job))
        names = [name for name, tp in plan.targets.items() if tp.changes or name in old_jobs]
        result = ApplyResult()
        if not names:
            reporter.finished(result)
            return result
        for name in names:
            total = len(plan.targets[name].changes) + sum(len(j.operations) for _, j in old_jobs.get(name, ()))
            result.targets[name] = TargetResult(name, targets[name].provider, total=total,
                                                pending=sum(len(j.operations) for _, j in old_jobs.get(name, ())))
        for name in names:  # the request history is kept as long as a rate window needs it
            window = limits_for(targets[name]).window_seconds or 0.0
            state.prune_requests(name, time.time() - max(window, REQUEST_HISTORY_SECONDS))
        shared = _SharedLimits(names, targets, state, tuning.window_scale)
        apply_id = state.begin_apply(names)
        ctx = _Context(state, reporter, tuning, environ, apply_id, wait, result, shared)
        runs = [
            _TargetRun(ctx, targets[name], plan.targets[name].changes, jobs=old_jobs.get(name, ()),
                       poll_once=not wait)
            for name in names
        ]
        started = time.monotonic()
        status = "error"
        try:
            _run(lambda: _run_all(runs, tuning.head_start))
            status = "ok" if result.ok else "failed"
        except KeyboardInterrupt:
            status = "interrupted"
            result.interrupted = True
            for target in result.targets.values():
                target.interrupted = target.interrupted or target.not_sent > 0
            raise
        finally:
            ctx.close()
            result.seconds = time.monotonic() - started
            state.finish_apply(apply_id, status, result.counts())
            try:
                reporter.finished(result)
            except Exception:
                pass
        return result


def settle(state: State, targets: Mapping[str, Target], names: Sequence[str] | None = None, *,
           reporter: Reporter | None = None, environ: Mapping[str, str] | None = None,
           wait: bool = False, tuning: Tuning | None = None) -> ApplyResult:
    """Poll the outstanding asynchronous jobs (of ``names``, default all targets) and
    record the outcomes of those that finished. One status call per job, unless
    ``wait`` (then until every job is final). Sends no writes: an item whose job failed
    is recorded as failed, and the next apply proposes it again."""
    reporter = reporter if reporter is not None else default_reporter()
    tuning = tuning or Tuning()
    result = ApplyResult()
    with state.locked(f"reconciler status (pid {os.getpid()})"):
        by_target: dict[str, list[tuple[int, Job]]] = {}
        for pending in state.pending_jobs():
            if names is None or pending.target in names:
                by_target.setdefault(pending.target, []).append((pending.id, pending.job))
        runs = []
        ctx = _Context(state, reporter, tuning, environ, None, True, result)
        for name, jobs in by_target.items():
            count = sum(len(job.operations) for _, job in jobs)
            target = targets.get(name)
            provider = target.provider if target is not None else "?"
            result.targets[name] = TargetResult(name, provider, total=count, pending=count)
            if target is None:
                result.targets[name].error = (f"target {name} is not in the manifests; its {len(jobs)} "
                                              "pending job(s) cannot be polled")
                continue
            runs.append(_TargetRun(ctx, target, (), jobs=jobs, resend=False, poll_once=not wait))
        started = time.monotonic()
        try:
            if runs:
                _run(lambda: asyncio.gather(*(run.run() for run in runs)))
        except KeyboardInterrupt:
            result.interrupted = True
            raise
        finally:
            ctx.close()
            result.seconds = time.monotonic() - started
        reporter.finished(result)
    return result
