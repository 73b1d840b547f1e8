"""An apply and a settle as a whole: the state's lock, the checks before anything is
sent, the apply's row in the state, one :class:`~reconciler.apply.target.TargetRun`
per target (run by :mod:`reconciler.apply.scheduling`), and the result.

* ``apply_plan`` refuses a stale plan, and a target the manifests point at another
  catalog than the one its items were confirmed at (it records the identity of a
  target it writes to first), marks an apply whose process died as aborted, settles
  the jobs earlier applies left pending, forgets request history older than any rate
  window needs, and records how the apply ended (ok, failed, interrupted);
* ``settle`` only polls pending jobs: no writes.

Both take ``transport=`` (an ``httpx.AsyncBaseTransport``, e.g. ``httpx.MockTransport``)
in place of the network.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Mapping, Sequence

import httpx
import orjson

from reconciler.apply.recording import StateWriter
from reconciler.apply.report import Reporter, default_reporter
from reconciler.apply.result import ApplyResult, TargetResult
from reconciler.apply.scheduling import Context, SharedLimits, run_all, run_loop
from reconciler.apply.target import TargetRun
from reconciler.apply.tuning import Tuning
from reconciler.errors import ConfigError, StateError
from reconciler.manifest.models import Target
from reconciler.plan.binding import record_identities
from reconciler.plan.model import Plan
from reconciler.plan.verify import check_fresh
from reconciler.providers import limits_for
from reconciler.providers.base import Job
from reconciler.state.store import State

# Requests older than this (or than the target's rate window and request deadline, if longer) are
# forgotten at the start of an apply: the longest documented window (Meta's) is an hour.
REQUEST_HISTORY_SECONDS = 3600.0


def apply_plan(plan: Plan, targets: Mapping[str, Target], state: State, *, wait: bool = True,
               reporter: Reporter | None = None, environ: Mapping[str, str] | None = None,
               tuning: Tuning | None = None, transport: httpx.AsyncBaseTransport | None = None,
               lock_timeout: float = 0.0, credentials: Mapping[str, Mapping[str, str]] | None = None) -> ApplyResult:
    """Carry ``plan`` out. Holds the lock of the plan's targets throughout (waiting up
    to ``lock_timeout`` seconds for it); refuses a stale plan. ``targets`` holds at
    least the plan's targets; give all of the manifests' so that a rate window counts
    the recent requests of every target that shares it. ``credentials``: targets' auth
    values resolved already (:func:`reconciler.credentials.resolve_all`), by name; a
    target not in it resolves its own from ``environ``."""
    reporter = reporter if reporter is not None else default_reporter()
    tuning = tuning or Tuning()
    unknown = [name for name in plan.targets if name not in targets]
    if unknown:
        raise ConfigError(f"the plan names target(s) not in the manifests: {', '.join(unknown)}")
    with state.locked(f"reconciler apply (pid {os.getpid()})", list(plan.targets) or None, lock_timeout):
        check_fresh(plan, state, list(plan.targets))
        for row in state.applies():
            # We hold the lock of these targets: an apply of one of them still "running" died (kill -9)
            if row["status"] == "running" and set(orjson.loads(row["targets"])) & set(plan.targets):
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
        record_identities(state, {name: targets[name] for name in names})
        for name in names:
            total = len(plan.targets[name].changes) + sum(len(j.operations) for _, j in old_jobs.get(name, ()))
            result.targets[name] = TargetResult(name, targets[name].provider, total=total,
                                                pending=sum(len(j.operations) for _, j in old_jobs.get(name, ())))
        for name in names:  # the request history is kept as long as a rate window needs it
            # (one never answered occupies its window until a window after its deadline)
            window = limits_for(targets[name]).window_seconds or 0.0
            deadline = tuning.for_target(targets[name]).request_timeout_seconds
            state.prune_requests(name, time.time() - max(window + deadline, REQUEST_HISTORY_SECONDS))
        apply_id = state.begin_apply(names)
        writer = StateWriter(state)
        shared = SharedLimits(names, targets, writer, tuning)
        ctx = Context(writer, reporter, tuning, environ, apply_id, wait, result, shared, transport)
        runs = [
            TargetRun(ctx, targets[name], plan.targets[name].changes, jobs=old_jobs.get(name, ()),
                      poll_once=not wait, auth=(credentials or {}).get(name))
            for name in names
        ]
        started = time.monotonic()
        status = "error"
        try:
            run_loop(lambda: run_all(runs, tuning.head_start))
            status = "ok" if result.ok else "failed"
        except KeyboardInterrupt:
            status = "interrupted"
            _interrupted(result)
            raise
        finally:
            try:
                writer.close()  # waits for the writes under way even through another Ctrl-C, then raises it
            except KeyboardInterrupt:
                status = "interrupted"
                _interrupted(result)
                raise
            finally:  # once the state's threads ended: nothing is committed after the row or the lock
                result.seconds = time.monotonic() - started
                result.wait_seconds = ctx.waits.seconds
                _finish(state, apply_id, status, result, reporter)
        return result


def _interrupted(result: ApplyResult) -> None:
    result.interrupted = True
    for target in result.targets.values():
        target.interrupted = target.interrupted or target.not_sent > 0


def _finish(state: State, apply_id: int, status: str, result: ApplyResult, reporter: Reporter) -> None:
    """Record how the apply ended, then show the summary (a full disk: the summary is
    still shown, then the error)."""
    unrecorded = None
    try:
        state.finish_apply(apply_id, status, result.counts())
    except StateError as exc:
        unrecorded = exc
    try:
        reporter.finished(result)
    except Exception:
        pass
    if unrecorded is not None:
        raise unrecorded


def settle(state: State, targets: Mapping[str, Target], names: Sequence[str] | None = None, *,
           reporter: Reporter | None = None, environ: Mapping[str, str] | None = None,
           wait: bool = False, tuning: Tuning | None = None,
           transport: httpx.AsyncBaseTransport | None = None, lock_timeout: float = 0.0) -> ApplyResult:
    """Poll the outstanding asynchronous jobs (of ``names``, default all targets) and
    record the outcomes of those that finished. One answered status call per job (a
    failed one is tried again by the retry policy), unless ``wait`` (then until every
    job is final). Sends no writes: an item whose job failed
    is recorded as failed, and the next apply proposes it again."""
    reporter = reporter if reporter is not None else default_reporter()
    tuning = tuning or Tuning()
    result = ApplyResult()
    locked = list(names) if names is not None else list(targets)
    with state.locked(f"reconciler status (pid {os.getpid()})", locked or None, lock_timeout):
        by_target: dict[str, list[tuple[int, Job]]] = {}
        for pending in state.pending_jobs():
            if names is None or pending.target in names:
                by_target.setdefault(pending.target, []).append((pending.id, pending.job))
        runs = []
        writer = StateWriter(state)
        ctx = Context(writer, reporter, tuning, environ, None, True, result, transport=transport)
        for name, jobs in by_target.items():
            count = sum(len(job.operations) for _, job in jobs)
            target = targets.get(name)
            provider = target.provider if target is not None else "?"
            result.targets[name] = TargetResult(name, provider, total=count, pending=count)
            if target is None:
                result.targets[name].error = (f"target {name} is not in the manifests; its {len(jobs)} "
                                              "pending job(s) cannot be polled")
                continue
            runs.append(TargetRun(ctx, target, (), jobs=jobs, resend=False, poll_once=not wait))
        started = time.monotonic()
        try:
            if runs:
                run_loop(lambda: asyncio.gather(*(run.run() for run in runs)))
        except KeyboardInterrupt:
            result.interrupted = True
            raise
        finally:
            writer.close()
            result.seconds = time.monotonic() - started
        reporter.finished(result)
    return result
