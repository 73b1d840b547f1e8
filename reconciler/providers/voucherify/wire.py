"""Voucherify: one metadata object applied to many products, asynchronously.

* ``POST /v1/products/metadata/async`` with ``{"source_ids": [...], "metadata":
  {...}}``: every listed product receives the same metadata (missing products are
  upserted). So the metadata *change* of an operation is its group key: operations
  with identical changes share a request, which gives the fewest requests.
* The change sent for an operation: a create sends every key of ``after.metadata``; an
  update sends the changed and added keys with their new values and each removed key
  as ``null``; a delete sends every key of ``before.metadata`` as ``null`` (the API
  cannot remove keys, only set them to null).
* Auth headers ``X-App-Id`` / ``X-App-Token``.
* A delete reads the product first (``GET /v1/products/{source_id}``, see
  ``reads.Reads.read_before_delete``): the metadata endpoint upserts, so nulling the keys
  of a product that no longer exists would create it. A product that is not there
  (or holds no metadata) is deleted already, without a write.
* 202 ``{"async_action_id": "aa_..."}`` → ``pending`` on that job;
  ``GET /v1/async-actions/{id}`` reports ``status`` ENQUEUED / IN_PROGRESS (still
  running), DONE (each product's outcome from ``result``, in either documented shape:
  :mod:`reconciler.providers.voucherify.results`) or FAILED (all sent again).
* 413 (body over 10,485,760 bytes) → ``split``. 401/403, 429 (with ``Retry-After``) and
  5xx, of writes and status calls alike, are the engine's (:mod:`reconciler.apply.http`):
  a failed status call is polled again, never sent again.
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

import httpx

from reconciler.errors import UnexpectedAnswer
from reconciler.mapping import canonical
from reconciler.providers._common import (
    JSON_HEADERS, UNEXPECTED_EXCERPT, body_excerpt, diff_fields, dumps, json_body, outcomes, split_or_fail,
    unexpected,
)
from reconciler.providers.base import Job, Operation, Outcome, Provider, Request
from reconciler.providers.voucherify.results import done_outcomes

RUNNING = ("ENQUEUED", "IN_PROGRESS")  # the documented statuses of an action not done yet


def metadata_change(op: Operation) -> dict[str, Any]:
    """The metadata object sent for one operation."""
    if op.action == "create":
        return dict((op.after or {}).get("metadata") or {})
    if op.action == "delete":
        return dict.fromkeys((op.before or {}).get("metadata") or {})
    before = (op.before or {}).get("metadata") or {}
    after = (op.after or {}).get("metadata") or {}
    changed, removed = diff_fields(before, after)
    for key in removed:
        changed[key] = None
    return changed


class Wire(Provider):
    """Voucherify requests and answers (the declared data is in the package)."""

    def _headers(self, body: bool = True) -> dict[str, str]:
        headers = dict(JSON_HEADERS) if body else {"Accept": "application/json"}
        headers["X-App-Id"] = self.credentials.get("app_id", "")
        headers["X-App-Token"] = self.credentials.get("app_token", "")
        return headers

    # -- writing ---------------------------------------------------------------
    def group_key(self, op: Operation) -> Hashable:
        return canonical(metadata_change(op))

    def item_size(self, op: Operation) -> int:
        return len(dumps(op.key))

    def encode(self, ops: Sequence[Operation]) -> Request:
        if not ops:
            raise ValueError("encode needs at least one operation")
        metadata = metadata_change(ops[0])
        body = {"source_ids": [op.key for op in ops], "metadata": metadata}
        return Request(method="POST", path="/v1/products/metadata/async", operations=tuple(ops),
                       body=dumps(body), headers=self._headers(), endpoint="metadata-async")

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        status = response.status_code
        body = json_body(response)
        if 200 <= status < 300:
            action = body.get("async_action_id") if isinstance(body, dict) else None
            if not isinstance(action, str) or not action:
                raise unexpected(self.name, response)
            job = Job(handle=str(action), operations=tuple(ops))
            return outcomes(ops, "pending", job=job)
        message = api_message(body) or body_excerpt(response)
        if status == 413:
            return outcomes(ops, "split", f"voucherify: request too large (HTTP 413): {message}")
        return split_or_fail(ops, f"voucherify refused the request (HTTP {status}): {message}")

    # -- asynchronous work -------------------------------------------------------
    def poll_request(self, job: Job) -> Request:
        return Request(method="GET", path=f"/v1/async-actions/{job.handle}", operations=job.operations,
                       headers=self._headers(body=False), endpoint="async-action", write=False)

    def decode_poll(self, job: Job, response: httpx.Response) -> list[Outcome] | None:
        """``None`` while ENQUEUED or IN_PROGRESS; a DONE action's outcomes come from its
        result (:mod:`reconciler.providers.voucherify.results`). Any other answer raises:
        the engine calls the status again, never the products."""
        ops = job.operations
        body = json_body(response)
        if response.status_code == 404:
            return outcomes(ops, "retry", f"voucherify does not know async action {job.handle}")
        state = body.get("status") if isinstance(body, dict) and response.status_code == 200 else None
        if state in RUNNING:
            return None
        if state == "FAILED":
            # What a FAILED action did is not documented: metadata updates are idempotent,
            # so the products are sent again.
            reason = api_message(body.get("result")) or "the async action failed"
            return outcomes(ops, "retry", f"voucherify async action {job.handle} FAILED: {reason}")
        if state == "DONE":
            return done_outcomes(job, body)
        raise UnexpectedAnswer(f"unexpected answer from voucherify to the status of async action {job.handle} "
                               f"(HTTP {response.status_code}): {body_excerpt(response, UNEXPECTED_EXCERPT)}")


def api_message(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("message", "details", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    return None
