"""Sending a target's operations again: after a transient failure, within the
retry policy (:mod:`reconciler.apply.retry`: the attempts of each item, the backoff,
``Retry-After``, the target's retry budget; a rate-limited answer pauses the whole
target), or at once when only other items of their request were refused. What goes
again is packed into requests anew (:func:`reconciler.apply.batching.pack`) and
queued before the packer's next.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from reconciler.apply import existence
from reconciler.apply.batching import pack
from reconciler.apply.recording import record
from reconciler.providers.base import Operation, Outcome

if TYPE_CHECKING:
    from reconciler.apply.target import TargetRun


def retry_writes(run: "TargetRun", retry: list[Outcome], transient: bool, others_failed: bool) -> list[Outcome]:
    """Send the operations of ``retry`` outcomes again after the policy's backoff (a
    rate-limited answer pauses the whole target); returns those out of attempts, as
    failed. A retry that only comes from other items' refusal in the same answer
    (``others_failed``, nothing transient) is sent again at once."""
    policy = run.budget.policy
    retry_after = max((o.retry_after or 0.0 for o in retry), default=0.0)
    rate_limited = any(o.rate_limited for o in retry)
    reason = run.redact(retry[0].reason or "transient failure")
    if others_failed and not transient and not rate_limited and not retry_after:
        return enqueue(run, [o.operation for o in retry])
    failed, again, level = [], [], 1
    for outcome in retry:
        op = outcome.operation
        ident = (op.record, op.key)
        attempt = run.attempts.get(ident, 0) + 1
        run.attempts[ident] = attempt
        if policy.exhausted(attempt):
            run.budget.give_up()  # a target failing as a whole stops: one message, not one per item
            failed.append(Outcome(op, "failed", f"{outcome.reason or reason} (gave up after {attempt} attempts)"))
        else:
            again.append(op)
            level = max(level, attempt)
    if again:
        delay = run.budget.delay(level, retry_after, run.rng)
        if rate_limited:
            run.window.pause(delay)  # the whole target waits, not only these items
        run.result.retried += len(again)
        run.ctx.reporter.retrying(run.name, len(again), reason, delay)
        run.spawn(_later, run, delay, again)
    return failed


async def _later(run: "TargetRun", delay: float, ops: list[Operation]) -> None:
    await asyncio.sleep(delay)
    outcomes = enqueue(run, ops)
    if outcomes:
        record(run, outcomes)


def enqueue(run: "TargetRun", ops: list[Operation], checked: bool = False) -> list[Outcome]:
    """Pack ``ops`` again into requests ready to send (deletes the provider reads before
    sending again are read first, unless ``checked``: :mod:`reconciler.apply.existence`);
    returns the outcomes ``pack`` decided without a request (to record)."""
    outcomes = []
    for item in pack(run.provider, ops if checked else existence.divert(run, ops, resend=True), run.limits):
        if isinstance(item, Outcome):
            outcomes.append(item)
        else:
            run.ready.append(item)
    run.event.set()
    return outcomes
