"""Meta (Facebook) Catalog Batch API: asynchronous batches with handles.

* ``POST /{api_version}/{catalog_id}/batch`` with ``{"requests": [...], "allow_upsert":
  false}``; each request is ``{method, retailer_id, data}``. CREATE sends the whole
  payload; UPDATE sends only the fields that changed or were added, and ``""`` for a
  removed field (an empty string unsets a field on Meta, ``null`` does not); DELETE has
  no data. ``allow_upsert`` is false so that an UPDATE never silently creates.
* The token goes in ``Authorization: Bearer`` (the seed puts it in the body; the Graph
  API accepts either, and a header keeps it out of bodies whose size we measure/log).
* The answer is ``{"handles": [h], "validation_status": [{retailer_id, errors,
  warnings}]}``: items with validation errors fail at once; the others are
  ``pending`` on ``Job(h)``, which keeps their positions in the call (the lines the
  status names). An empty ``handles`` means nothing was ingested: the remaining items
  are retried; a 200 without ``handles`` is not an answer (``UnexpectedAnswer``: the
  request is sent again).
* ``GET /{v}/{catalog_id}/check_batch_request_status?handle=h&load_ids_of_invalid_requests=true``:
  each item's outcome is :mod:`reconciler.providers.meta_catalog.batch_status`'s.
* Graph errors (:mod:`reconciler.providers.meta_catalog.graph`): a token or permission
  code stops the target; code 1 (the body was too large) splits the request; rate
  limits and transient errors are retried; any other refuses the operations of that
  call with its message. Plain HTTP 401/403, 429 and 5xx are the engine's
  (:mod:`reconciler.apply.http`), except a 500 carrying code 1.
* Limits: 5000 requests per call, 100 calls per hour per catalog; Meta documents no
  byte limit, so a target's ``limits: {max_bytes_per_request: …}`` is the only one.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import httpx

from reconciler.providers._common import (
    JSON_HEADERS, diff_fields, dumps, json_body, outcomes, retry_after, setting, split_or_fail,
    unexpected,
)
from reconciler.providers.base import Job, Operation, Outcome, Provider, Request
from reconciler.providers.meta_catalog import batch_status, graph


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

    def decodes_server_error(self, response: httpx.Response) -> bool:
        return graph.code_of(graph.error_of(response)) == graph.TOO_LARGE

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        error = graph.error_of(response)
        if response.status_code == 200 and error is None:
            body = json_body(response)
            if isinstance(body, dict) and isinstance(body.get("handles"), list):
                return self._accepted(request, body)
            raise unexpected(self.name, response)
        code = graph.code_of(error)
        if graph.stops(code):
            raise graph.stop(response, error)
        said = graph.describe(response, error)
        if code == graph.TOO_LARGE:
            return split_or_fail(ops, said)
        if graph.transient(error):
            return outcomes(ops, "retry", said, retry_after=retry_after(response),
                            rate_limited=code in graph.RATE_LIMIT_CODES)
        return outcomes(ops, "failed", said)

    def _accepted(self, request: Request, body: dict) -> list[Outcome]:
        ops = request.operations
        rejected: dict[str, str] = {}
        for status in body.get("validation_status") or ():
            if not isinstance(status, dict):
                continue
            errors = [str(e.get("message", e)) if isinstance(e, dict) else str(e)
                      for e in status.get("errors") or ()]
            if errors:
                rejected[str(status.get("retailer_id"))] = "; ".join(errors)
        handles = [h for h in body["handles"] if h]
        accepted = [(line, op) for line, op in enumerate(ops) if op.key not in rejected]
        job = None
        if handles and accepted:
            job = Job(handle=str(handles[0]), operations=tuple(op for _, op in accepted),
                      lines=tuple(line for line, _ in accepted))
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
                       operations=job.operations,
                       params={"handle": job.handle, "load_ids_of_invalid_requests": "true",
                               "fields": ",".join(batch_status.STATUS_FIELDS)},
                       headers=self._headers(body=False), endpoint="check_batch_request_status",
                       write=False)

    def decode_poll(self, job: Job, response: httpx.Response) -> list[Outcome] | None:
        error = graph.error_of(response)
        if response.status_code == 200 and error is None:
            return batch_status.outcomes_of(job, batch_status.entry_of(json_body(response), job.handle))
        code = graph.code_of(error)
        if graph.stops(code):
            raise graph.stop(response, error)
        if graph.transient(error) or code == graph.TOO_LARGE:
            return None  # the batch is still on Meta's side: only its status call failed
        if error is None:
            raise unexpected(self.name, response)
        return outcomes(job.operations, "retry", f"meta_catalog could not report on batch {job.handle}: "
                                                 f"{graph.describe(response, error)}")
