"""What a DONE Voucherify async action says of each product it was given.

The public documents give two shapes of ``result`` for ``PRODUCTS.METADATA_UPDATE``:

* the older one (documented until August 2024): ``{"results": [{"source_id", "found",
  "updated"}], "done_count"}``. A product is confirmed only by ``updated: true``;
  ``updated: false`` fails it, its ``found`` in the reason. The count confirms nothing:
  the documented example counts ``done_count: 2`` for two products ``updated: false``.
  An update whose product was not found (``found: false``) was created with the changed
  keys only, so it is not confirmed either.
* the current one: ``{"done_count", "failed_count", "reports", "reports_available_till",
  "errors": [{"message", "details", "key"}]}``: counts, errors that name no product, and
  the per-product ``found``/``updated`` columns only in a report file whose format is
  not documented. Every product is confirmed when none failed and each is counted done;
  every product fails when each is counted failed; otherwise the products the answer
  does not name are not confirmed: they fail, and the next plan proposes them again.

In either shape an error that names a product (``source_id`` or ``resource_id``, or an
``errors`` object keyed by source_id) fails that product. A product the answer does not
mention is never taken as updated.
"""
from __future__ import annotations

from typing import Any

import orjson

from reconciler.errors import UnexpectedAnswer
from reconciler.providers._common import is_count
from reconciler.providers.base import Job, Outcome

MESSAGES_SHOWN = 3  # distinct error messages quoted in one reason


def done_outcomes(job: Job, action: dict) -> list[Outcome]:
    """One outcome per operation of ``job``, from its DONE async action."""
    result = action.get("result")
    if not isinstance(result, dict):
        raise UnexpectedAnswer(f"voucherify's async action {job.handle} is DONE without a result object")
    named, unnamed = _errors(result.get("errors"), {op.key for op in job.operations})
    if isinstance(result.get("results"), list):
        return _from_results(job, result["results"], named)
    return _from_counts(job, action, result, named, unnamed)


def _from_results(job: Job, results: list, named: dict[str, str]) -> list[Outcome]:
    entries = {str(entry["source_id"]): entry for entry in results
               if isinstance(entry, dict) and entry.get("source_id") is not None}
    outcomes = []
    for op in job.operations:
        entry = entries.get(op.key)
        if op.key in named:
            outcomes.append(Outcome(op, "failed", named[op.key]))
        elif entry is None:
            outcomes.append(Outcome(op, "failed", f"not confirmed: the result of voucherify's async action "
                                                    f"{job.handle} does not list it"))
        elif entry.get("updated") is not True:
            outcomes.append(Outcome(op, "failed", f"voucherify did not update it (updated: {_json(entry.get('updated'))}, "
                                                    f"found: {_json(entry.get('found'))})"))
        elif op.action == "update" and entry.get("found") is False:
            outcomes.append(Outcome(op, "failed", "voucherify did not find the product (found: false) and created it "
                                                    "with the changed metadata keys only; `reconciler plan --refresh` "
                                                    "sends the others again"))
        else:
            outcomes.append(Outcome(op, "confirmed"))
    return outcomes


def _from_counts(job: Job, action: dict, result: dict, named: dict[str, str], unnamed: list[str]) -> list[Outcome]:
    ops = job.operations
    done, failed = result.get("done_count"), result.get("failed_count", 0)
    if not (is_count(done) and is_count(failed)):
        raise UnexpectedAnswer(f"voucherify's async action {job.handle} is DONE with a result that has neither "
                               f"per-product results nor counts: {_json(result)[:200]}")
    operation_failed = str(action.get("operation_status") or "").upper() == "FAILED"
    if failed == 0 and done == len(ops) and not named and not unnamed and not operation_failed:
        return [Outcome(op, "confirmed") for op in ops]
    messages = _summary([*named.values(), *unnamed])
    said = f": {messages}" if messages else ""
    if done == 0 and failed == len(ops):
        why = f"voucherify failed every product of async action {job.handle}{said}"
    elif len(named) == failed and not unnamed and done + failed == len(ops) and not operation_failed:
        return [Outcome(op, "failed", named[op.key]) if op.key in named else Outcome(op, "confirmed") for op in ops]
    else:
        why = (f"not confirmed: voucherify's async action {job.handle} counts {done} done and {failed} failed of "
               f"{len(ops)} products without naming which{said}")
    return [Outcome(op, "failed", named.get(op.key, why)) for op in ops]


def _errors(errors: Any, keys: set[str]) -> tuple[dict[str, str], list[str]]:
    """``({source_id: reason}`` of the errors naming one of ``keys``, ``[reasons]`` of the
    others``)``."""
    if isinstance(errors, dict):  # {source_id: message}
        errors = [{"source_id": key, "message": message} for key, message in errors.items()]
    if errors is None:
        return {}, []
    if not isinstance(errors, list):
        raise UnexpectedAnswer(f"voucherify's async action result has errors that are not a list: {_json(errors)[:200]}")
    named: dict[str, str] = {}
    unnamed: list[str] = []
    for error in errors:
        text = _text(error)
        key = None
        if isinstance(error, dict):
            key = next((str(error[f]) for f in ("source_id", "resource_id") if error.get(f) is not None), None)
        if key in keys:
            named[key] = f"{named[key]}; {text}" if key in named else text
        else:
            unnamed.append(text)
    return named, unnamed


def _text(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    parts = [str(error[f]) for f in ("message", "details") if error.get(f)]
    if error.get("key"):
        parts.append(f"({error['key']})")
    return " ".join(parts) or _json(error)


def _summary(messages: list[str]) -> str:
    distinct = list(dict.fromkeys(messages))
    more = len(distinct) - MESSAGES_SHOWN
    return "; ".join(distinct[:MESSAGES_SHOWN]) + (f" (and {more} more)" if more > 0 else "")


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()

