"""What a Meta batch says of each of its lines: ``check_batch_request_status``.

The status is asked for with ``load_ids_of_invalid_requests=true`` and the fields named
(:data:`STATUS_FIELDS`). Its ``errors`` is "a list of sample errors (does not include
all errors)": not paged, with no cursor; the complete list of the lines that were not
saved is ``ids_of_invalid_requests`` (retailer ids), filled only on request. So an
operation of a finished batch fails when that list names it or an error of the sample
does (by ``id``, or by ``line``, its position in the call's ``requests``, when the job
knows the positions sent), with the sample's messages where it has them.

Every error Meta counts (``errors_total_count``) must be accounted for: by a sampled
error naming an operation, or one for each failed operation without one. Should the
count be larger, the operations named nowhere are not confirmed: they fail too, and the
next plan proposes them again. Whether Meta counts errors or lines is not documented: an
item with two errors makes the rest of its batch unconfirmed unless the sample shows
both.

A delete that failed without its message, or is not confirmed, is sent again instead:
sent again, a delete reads its item first (``Reads.read_before_delete``), so one
that was deleted after all (a first attempt whose answer was lost, refused the second
time as "does not exist") is recorded as done, and only a present one is sent.
"""
from __future__ import annotations

from typing import Any

from reconciler.errors import UnexpectedAnswer
from reconciler.providers._common import is_count, outcomes, refusal
from reconciler.providers.base import Job, Outcome

STATUS_FIELDS = ("handle", "status", "errors", "errors_total_count", "warnings", "warnings_total_count",
                 "ids_of_invalid_requests")
RUNNING = frozenset({"scheduled", "dispatched", "started"})
FINAL = frozenset({"finished", "error", "canceled", "cancelled"})


def entry_of(body: Any, handle: str) -> dict[str, Any]:
    """The one status object of a ``{"data": [{...}]}`` answer."""
    data = body.get("data") if isinstance(body, dict) else None
    entry = next((d for d in data if isinstance(d, dict) and d.get("handle") in (None, handle)), None) \
        if isinstance(data, list) else None
    if entry is None or not isinstance(entry.get("status"), str):
        raise UnexpectedAnswer(f"unexpected answer from meta_catalog to the status of batch {handle}: {str(body)[:200]}")
    return entry


def outcomes_of(job: Job, entry: dict[str, Any]) -> list[Outcome] | None:
    """The operations' outcomes once the batch is final, None while it runs."""
    status = entry["status"].lower()
    if status in RUNNING:
        return None
    if status not in FINAL:
        raise UnexpectedAnswer(f"meta_catalog batch {job.handle} has an unknown status {entry['status']!r}")
    if status != "finished":  # "some of the requests might not have finished successfully"
        return outcomes(job.operations, "retry", f"meta_catalog batch {job.handle} ended with status {status!r}")
    return _finished(job, entry)


def _finished(job: Job, entry: dict[str, Any]) -> list[Outcome]:
    ops = job.operations
    errors, total, invalid = entry.get("errors") or [], entry.get("errors_total_count"), entry.get("ids_of_invalid_requests")
    if not isinstance(errors, list) or not is_count(total) or not isinstance(invalid, (list, type(None))):
        raise UnexpectedAnswer(f"meta_catalog batch {job.handle} finished without errors, errors_total_count and "
                               f"ids_of_invalid_requests in their documented types: {str(entry)[:200]}")
    by_key = {op.key: index for index, op in enumerate(ops)}
    by_line = {line: index for index, line in enumerate(job.lines)} if job.lines is not None else {}
    reasons: dict[int, list[str]] = {}
    for error in errors:
        error = error if isinstance(error, dict) else {"message": str(error)}
        index = by_key.get(str(error.get("id"))) if error.get("id") is not None else None
        if index is None and is_count(error.get("line")):
            index = by_line.get(error["line"])
        if index is not None:
            reasons.setdefault(index, []).append(str(error.get("message") or "refused"))
    for retailer_id in invalid or ():
        index = by_key.get(str(retailer_id))
        if index is not None:
            reasons.setdefault(index, [])
    accounted = sum(max(1, len(messages)) for messages in reasons.values())
    unnamed = None
    if total > accounted:
        listed = "was not returned" if not invalid else f"names {len(invalid)}"
        unnamed = (f"not confirmed: meta_catalog counts {total} errors in batch {job.handle} and names the items of "
                   f"{accounted} (ids_of_invalid_requests {listed}); this one may be among the others")
    result = []
    for index, op in enumerate(ops):
        if reasons.get(index):
            result.append(refusal(op, "; ".join(reasons[index])))
            continue
        why = unnamed
        if index in reasons:
            why = "refused by meta_catalog (in ids_of_invalid_requests; its error is not in the sample of errors)"
        if why is None:
            result.append(Outcome(op, "confirmed"))
        elif op.action == "delete":  # sent again, it reads the item first (Reads.read_before_delete)
            result.append(Outcome(op, "retry", why))
        else:
            result.append(Outcome(op, "failed", why))
    return result
