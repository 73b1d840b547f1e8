"""Polling: the asynchronous jobs of a target (accepted, not confirmed yet) are asked
for their status until they are final, then their outcomes are handled like those of
a write.

Status calls are not writes: they take no slot of the rate window, at most
``Tuning.poll_concurrency`` at a time per target. A job is polled after
``poll_initial`` seconds, then at an interval growing by ``poll_factor`` up to
``poll_cap``. A status call that fails (no answer, a 429, a 5xx, an answer the
provider cannot read) is retried by the retry policy: never sooner than its backoff
and ``Retry-After``, and a job whose status could not be read ``max_attempts`` times
in a row is left pending, as is one still running after ``poll_timeout``: ``reconciler
status`` settles it later. A job is never sent again because its status call failed.
"""
from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING

from reconciler.apply.http import Failed, decoded, exchange
from reconciler.providers.base import Job

if TYPE_CHECKING:
    from reconciler.apply.target import TargetRun


async def settle_earlier(run: "TargetRun") -> None:
    """Poll the jobs an earlier apply left pending."""
    count = sum(len(job.operations) for _, job in run.old_jobs)
    run.ctx.reporter.message(run.name, f"settling {len(run.old_jobs)} asynchronous job(s) "
                                       f"({count} items) from an earlier apply")
    await asyncio.gather(*(poll(run, job_id, job) for job_id, job in run.old_jobs))


async def poll(run: "TargetRun", job_id: int, job: Job) -> None:
    """Poll ``job`` until it is final (or once, for ``run.poll_once``) and hand its
    outcomes to the run; leave it pending past the timeout or the attempts."""
    tuning = run.ctx.tuning
    policy = tuning.retry
    started = time.monotonic()
    interval = delay = tuning.poll_initial
    failed = 0  # status calls in a row that failed
    first = True
    while True:
        if not (first and run.poll_once):
            await asyncio.sleep(delay)
        first = False
        interval = delay = min(interval * tuning.poll_factor, tuning.poll_cap)
        async with run.poll_slots:
            answer = await exchange(run.client, run.provider.poll_request(job), run.provider)
        run.result.polls += 1
        outcomes = None
        if not isinstance(answer, Failed):
            answer = decoded(functools.partial(run.provider.decode_poll, job), answer, run.provider)
        if isinstance(answer, Failed):
            failed += 1
            delay = max(interval, policy.delay(failed, answer.retry_after, run.rng))
            if answer.rate_limited:
                run.window.pause(delay)
        else:
            failed = 0
            outcomes = answer
        if outcomes is not None:
            run.result.pending -= len(job.operations)
            run.ctx.reporter.recorded(run.name, {"pending": -len(job.operations)})
            run.handle(job.operations, outcomes, transient=False, settled_job=job_id)
            return
        if run.poll_once:
            return
        if policy.exhausted(failed):
            run.ctx.reporter.message(
                run.name, f"the status of job {job.handle} ({len(job.operations)} items) could not be read "
                          f"in {failed} attempts ({run.redact(answer.reason)}); left pending "
                          "(`reconciler status` settles it later)")
            return
        if time.monotonic() - started > tuning.poll_timeout:
            run.ctx.reporter.message(
                run.name, f"job {job.handle} ({len(job.operations)} items) is not finished; left "
                          "pending (`reconciler status` settles it later)")
            return
