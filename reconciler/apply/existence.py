"""Deletes that read first: where a provider's write would create a missing item (an
upsert), or where a delete sent again would be refused for an item it already deleted
without the answer saying so (:meth:`Provider.read_before_delete`), such a delete reads
its item (``read_item_request``) before it is packed. An item that reads as absent is
recorded as deleted, without a write; a present one is packed and sent like any other
operation; one that cannot be read (the retry policy's attempts spent) fails with the
reason, and the next plan proposes it again.

These reads take no slot of the write window; they go ``Tuning.poll_concurrency`` at a
time, as status calls do, by chunks of ``Tuning.record_chunk`` deletes. (An item
deleted by someone else between its read and the write is still created: the API
offers no conditional write.)
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Iterable, Iterator

from reconciler.apply import requeue
from reconciler.apply.http import read
from reconciler.apply.recording import record
from reconciler.providers.base import Operation, Outcome, ReadError

if TYPE_CHECKING:
    from reconciler.apply.target import TargetRun


def divert(run: "TargetRun", ops: Iterable[Operation], resend: bool = False) -> Iterator[Operation]:
    """``ops`` (sent again, if ``resend``) without the deletes that must read first,
    which a task of ``run`` reads."""
    provider = run.provider
    checks = []
    for op in ops:
        if op.action == "delete" and provider.read_before_delete(op, resend):
            checks.append(op)
        else:
            yield op
    if checks:
        if not resend:
            run.ctx.reporter.message(run.name, f"reading {len(checks)} item(s) before deleting them "
                                               f"({provider.name} would create a missing one)")
        run.spawn(_check, run, checks)


async def _check(run: "TargetRun", ops: list[Operation]) -> None:
    chunk = run.ctx.tuning.record_chunk
    for start in range(0, len(ops), chunk):
        part = ops[start:start + chunk]
        found = await asyncio.gather(*(_read(run, op) for op in part))
        outcomes = [answer for answer in found if isinstance(answer, Outcome)]
        outcomes += requeue.enqueue(run, [op for op, answer in zip(part, found) if answer is True], checked=True)
        if outcomes:
            record(run, outcomes)


async def _read(run: "TargetRun", op: Operation) -> Outcome | bool:
    """True when the item is there (to be sent), else the delete's outcome."""
    provider = run.provider
    async with run.poll_slots:
        try:
            item = await read(run.client, provider.read_item_request(op.record, op.key), provider,
                              provider.decode_read_item, run.tuning, run.budget, run.rng)
        except ReadError as exc:
            return Outcome(op, "failed", f"could not read it before deleting it: {run.redact(str(exc))}")
    if item is None:
        return Outcome(op, "confirmed", f"already absent: {provider.name} has no such item")
    return True
