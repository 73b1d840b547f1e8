"""Polling: the asynchronous jobs of a target (accepted, not confirmed yet) are asked
for their status until they are final, then their outcomes are handled like those of
a write.

Status calls are not writes: they take no slot of the rate window, at most
``Tuning.poll_concurrency`` at a time per target. A job is polled after
``poll_initial`` seconds, then at an interval growing by ``poll_factor`` up to
``poll_cap``. A status call that fails (no answer, a 429, a 5xx, an answer the
provider cannot read) is retried by the retry policy, within the target's retry
budget (:mod:`reconciler.apply.retry`): never sooner than its backoff and
``Retry-After``, and a job whose status could not be read ``max_attempts`` times in a
row is left pending, as is one still running after ``poll_timeout``: ``reconciler
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
    polls = [asyncio.ensure_future(poll(run, job_id, job)) for job_id, job in run.old_jobs]
    try:
        await asyncio.gather(*polls)
    finally:  # one that stops the target stops the others
        for task in polls:
            task.cancel()


async def poll(run: "TargetRun", job_id: int, job: Job) -> None:
    """Poll ``job`` until it is final (or, for ``run.poll_once``, until one status call
    is answered) and hand its outcomes to the run; leave it pending past the timeout or
    the attempts."""
    tuning = run.tuning
    budget = run.budget
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
            answer = await exchange(run.client, run.provider.poll_request(job), run.provider, tuning)
        run.result.polls += 1
        if not isinstance(answer, Failed):
            answer = decoded(functools.partial(run.provider.decode_poll, job), answer, run.provider)
        if isinstance(answer, Failed):
            failed += 1
            reason = run.redact(answer.reason)
            backoff = budget.next_delay(failed, reason, answer.retry_after, run.rng)
            if backoff is None:
                run.ctx.reporter.message(
                    run.name, f"the status of job {job.handle} ({len(job.operations)} items) could not be read "
                              f"in {failed} attempts ({reason}); left pending "
                              "(`reconciler status` settles it later)")
                return
            delay = max(interval, backoff)
            if answer.rate_limited:
                run.window.pause(delay)
            continue
        failed = 0
        budget.answered()
        if answer is not None:  # the job is final: these are its outcomes
            run.result.pending -= len(job.operations)
            run.ctx.reporter.recorded(run.name, {"pending": -len(job.operations)})
            run.handle(job.operations, answer, transient=False, settled_job=job_id)
            return
        if run.poll_once:
            return
        if time.monotonic() - started > tuning.poll_timeout:
            run.ctx.reporter.message(
                run.name, f"job {job.handle} ({len(job.operations)} items) is not finished; left "
                          "pending (`reconciler status` settles it later)")
            return
