"""The workers of one target: ``max_in_flight`` of them, each sending one request at a
time, taken from the requests ready to send again (retries, split halves) first, then
from the packer (:func:`reconciler.apply.batching.pack`), which makes them as they are
needed. The first request goes alone: bad credentials or a wrong URL cost one request.
Outcomes the packer decides without a request (local deletes, oversize items) are
recorded by chunks of ``Tuning.record_chunk``.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from reconciler.apply.recording import record
from reconciler.errors import ReconcilerError
from reconciler.providers.base import Outcome, Request

if TYPE_CHECKING:
    from reconciler.apply.target import TargetRun


async def work(run: "TargetRun", in_flight: int) -> None:
    """Send every request of ``run`` with ``in_flight`` workers, and wait for what they
    started (retries, polls, records); raises what stopped the target."""
    run.probed = asyncio.Event()
    workers = [asyncio.ensure_future(_worker(run, first=i == 0)) for i in range(in_flight)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    _flush_local(run)
    if run.fatal is not None:  # retries that requests in flight when it stopped started
        run.halt(run.fatal)
    if run.aux:  # records still being written
        await asyncio.gather(*list(run.aux), return_exceptions=True)
    if run.fatal is not None:
        raise run.fatal


async def _worker(run: "TargetRun", first: bool) -> None:
    if not first:
        await run.probed.wait()
    try:
        await _work_loop(run)
    finally:
        run.probed.set()


async def _work_loop(run: "TargetRun") -> None:
    while True:
        if run.fatal is not None:
            return
        request = _next(run)
        if run.local and (run.packer is None or len(run.local) >= run.ctx.tuning.record_chunk):
            _flush_local(run)
            if request is None and run.packer is not None:
                continue  # the packer has more
        if request is None:
            if run.active == 0 and not run.ready and run.packer is None:
                run.event.set()
                return
            run.event.clear()
            await run.event.wait()
            continue
        run.active += 1
        try:
            await run.send(request)
        except ReconcilerError as exc:  # refused credentials, the retry budget spent...: the target stops
            run.halt(exc)
        finally:
            run.active -= 1
            run.probed.set()
            run.event.set()


def _next(run: "TargetRun") -> Request | None:
    if run.ready:
        return run.ready.popleft()
    while run.packer is not None:
        try:
            item = next(run.packer)
        except StopIteration:
            run.packer = None
            break
        if isinstance(item, Outcome):
            run.local.append(item)
            if len(run.local) >= run.ctx.tuning.record_chunk:
                return None  # recorded by the caller first
            continue
        return item
    return None


def _flush_local(run: "TargetRun") -> None:
    if run.local:
        outcomes, run.local = run.local, []
        record(run, outcomes, local=True)
