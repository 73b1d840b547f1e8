"""Meta (Facebook) Catalog Batch API: asynchronous batches with handles.

* ``POST /{api_version}/{catalog_id}/batch`` with ``{"requests": [...], "allow_upsert":
  false}``; each request is ``{method, retailer_id, data}``. CREATE sends the whole
  payload; UPDATE sends only the fields that changed or were added, and ``""`` for a
  removed field (an empty string unsets a field on Meta, ``null`` does not); DELETE has
  no data. ``allow_upsert`` is false so that an UPDATE never silently creates.
* The token goes in ``Authorization: Bearer`` (the seed puts it in the body; the Graph
  API accepts either, and a header keeps it out of bodies whose size we measure/log).
* The answer is ``{"handles": [h], "validation_status": [{retailer_id, errors,
  warnings}]}``: items with validation errors are rejected at once; the others are
  ``pending`` on ``Job(h)``. An empty ``handles`` means nothing was ingested: the
  remaining items are retried.
* ``GET /{v}/{catalog_id}/check_batch_request_status?handle=h`` answers ``{"data":
  [{status, errors: [{line, id, message}], ids_of_invalid_requests, ...}]}``. While the
  status is not final (scheduled, dispatched, started) the job is still running;
  ``finished`` settles it (items named in ``errors`` by ``id`` = retailer_id, or by
  ``line`` when there is no usable id, were not saved); ``error``/``canceled`` retry all.
* Graph error envelope ``{"error": {message, type, code, error_subcode, is_transient}}``:
  80014 (batch calls), 80009 (status calls) and the generic throttling codes 4, 17,
  32 and 613 are rate limits; ``is_transient`` errors are retried; 190 (bad token) stops
  the target; anything else refuses the operations of that call with its message.
  Plain HTTP 401/403, 429 and 5xx are the engine's (:mod:`reconciler.apply.http`).
* Limits: 5000 requests per call, 100 calls per hour per catalog.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import httpx

from reconciler.errors import ConfigError
from reconciler.providers._common import (
    JSON_HEADERS, body_excerpt, diff_fields, dumps, json_body, outcomes, refusal, retry_after, setting,
)
from reconciler.providers.base import Job, Operation, Outcome, Provider, Request

RATE_LIMIT_CODES = {4, 17, 32, 613, 80009, 80014}
AUTH_CODES = {190}
FINAL = {"finished", "error", "canceled", "cancelled"}


class Wire(Provider):
    """Meta Catalog requests, answers and polls (the declared data is in the package)."""

    @property
    def _prefix(self) -> str:
        version = str(setting(self.name, self.settings, "api_version")).strip("/")
        catalog = str(setting(self.name, self.settings, "catalog_id"))
        return f"/{version}/{catalog}"

    def _headers(self, body: bool = True) -> dict[str, str]:
        headers = dict(JSON_HEADERS) if body else {"Accept": "application/json"}
        headers["Authorization"] = f"Bearer {self.credentials.get('access_token', '')}"
        return headers

    # -- writing ---------------------------------------------------------------
    def group_key(self, op: Operation) -> Hashable:
        return "batch"

    def element(self, op: Operation) -> dict:
        """One entry of ``requests``."""
        if op.action == "create":
            return {"method": "CREATE", "retailer_id": op.key, "data": op.after}
        if op.action == "delete":
            return {"method": "DELETE", "retailer_id": op.key}
        changed, removed = diff_fields(op.before, op.after)
        for field in removed:
            changed[field] = ""
        return {"method": "UPDATE", "retailer_id": op.key, "data": changed}

    def item_size(self, op: Operation) -> int:
        return len(dumps(self.element(op)))

    def encode(self, ops: Sequence[Operation]) -> Request:
        if not ops:
            raise ValueError("encode needs at least one operation")
        body = {"requests": [self.element(op) for op in ops], "allow_upsert": False}
        return Request(method="POST", path=f"{self._prefix}/batch", operations=tuple(ops),
                       body=dumps(body), headers=self._headers(), endpoint="batch")

    def _graph_error(self, response: httpx.Response) -> dict | None:
        body = json_body(response)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return body["error"]
        return None

    def _error_outcomes(self, ops: Sequence[Operation], response: httpx.Response) -> list[Outcome]:
        """Outcomes of a call that failed as a whole (raises for a bad token)."""
        status = response.status_code
        error = self._graph_error(response) or {}
        code = error.get("code")
        message = str(error.get("message") or body_excerpt(response) or f"HTTP {status}")
        described = f"meta_catalog error {code}: {message}" if code is not None else f"meta_catalog: {message}"
        if code in AUTH_CODES:
            raise ConfigError(
                f"meta_catalog refused the target's access token (HTTP {status}, code {code}); "
                "check the target's auth (access_token)"
            )
        if code in RATE_LIMIT_CODES:
            return outcomes(ops, "retry", described, retry_after=retry_after(response), rate_limited=True)
        if error.get("is_transient"):
            return outcomes(ops, "retry", described, retry_after=retry_after(response))
        return outcomes(ops, "failed", described)

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            if response.status_code == 200 and not isinstance(body, dict):
                return outcomes(ops, "retry", f"meta_catalog: unreadable answer: {body_excerpt(response)}")
            return self._error_outcomes(ops, response)

        rejected: dict[str, str] = {}
        for status in body.get("validation_status") or ():
            if not isinstance(status, dict):
                continue
            errors = [str(e.get("message", e)) if isinstance(e, dict) else str(e)
                      for e in status.get("errors") or ()]
            if errors:
                rejected[str(status.get("retailer_id"))] = "; ".join(errors)

        handles = [h for h in body.get("handles") or () if h]
        accepted = tuple(op for op in ops if op.key not in rejected)
        job = Job(handle=str(handles[0]), operations=accepted) if handles and accepted else None
        result = []
        for op in ops:
            if op.key in rejected:
                result.append(Outcome(op, "failed", rejected[op.key]))
            elif job is not None:
                result.append(Outcome(op, "pending", job=job))
            else:
                result.append(Outcome(op, "retry", "meta_catalog returned no handle: nothing was ingested"))
        return result

    # -- asynchronous work -------------------------------------------------------
    def poll_request(self, job: Job) -> Request:
        return Request(method="GET", path=f"{self._prefix}/check_batch_request_status",
                       operations=job.operations, params={"handle": job.handle},
                       headers=self._headers(body=False), endpoint="check_batch_request_status",
                       write=False)

    def decode_poll(self, job: Job, response: httpx.Response) -> list[Outcome] | None:
        ops = job.operations
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            error = self._graph_error(response) or {}
            code = error.get("code")
            if code in AUTH_CODES:
                self._error_outcomes(ops, response)  # raises ConfigError
            if code in RATE_LIMIT_CODES or error.get("is_transient") or not isinstance(body, dict):
                # The batch is still on Meta's side: only the status call failed.
                # Poll again later rather than sending the items a second time.
                return None
            message = str(error.get("message") or body_excerpt(response))
            return outcomes(ops, "retry", f"meta_catalog could not report on batch {job.handle}: {message}")

        data = body.get("data")
        entry = None
        if isinstance(data, list):
            entry = next((d for d in data if isinstance(d, dict) and d.get("handle") in (None, job.handle)), None)
        elif isinstance(body.get("status"), str):
            entry = body
        if entry is None:
            return None
        status = str(entry.get("status", "")).lower()
        if status not in FINAL:
            return None
        if status != "finished":
            return outcomes(ops, "retry", f"meta_catalog batch {job.handle} ended with status {status!r}")

        by_key: dict[str, list[int]] = {}
        for index, op in enumerate(ops):
            by_key.setdefault(op.key, []).append(index)
        reasons: dict[int, list[str]] = {}
        for error in entry.get("errors") or ():
            if not isinstance(error, dict):
                continue
            message = str(error.get("message") or "refused")
            indexes = by_key.get(str(error.get("id"))) if error.get("id") is not None else None
            if not indexes:
                line = error.get("line")
                if isinstance(line, int) and 0 <= line < len(ops):
                    indexes = [line]
                elif isinstance(line, str) and line.isdigit() and int(line) < len(ops):
                    indexes = [int(line)]
            for index in indexes or ():
                reasons.setdefault(index, []).append(message)
        for invalid in entry.get("ids_of_invalid_requests") or ():
            for index in by_key.get(str(invalid), ()):
                reasons.setdefault(index, ["refused by meta_catalog (invalid request)"])
        return [
            refusal(op, "; ".join(reasons[i])) if i in reasons else Outcome(op, "confirmed")
            for i, op in enumerate(ops)
        ]
