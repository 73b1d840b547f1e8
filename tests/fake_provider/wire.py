"""FakeShop's write API: asynchronous jobs of at most 100 operations.

* ``POST /api/shops/{shop}/jobs`` with ``{"operations": [{"op": "upsert", "id",
  "fields"} | {"op": "delete", "id"}]}``; an upsert replaces the item's fields. 202
  answers ``{"job_id": "..."}``: every operation is ``pending`` on that job. 400
  ``{"error": "..."}`` refuses the request as a whole without naming an item (split).
* ``GET /api/shops/{shop}/jobs/{job_id}`` answers ``{"state": "queued" | "done",
  "failed": {id: reason}}``: queued is still running; done settles the job (the items
  named in ``failed`` were refused). An unknown job (404) is sent again.
* Auth: ``Authorization: Bearer {token}``. 401/403, 429 and 5xx are the engine's.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import httpx

from reconciler.providers._common import (
    JSON_HEADERS, body_excerpt, dumps, json_body, outcomes, refusal, setting, split_or_fail, unexpected,
)
from reconciler.providers.base import Job, Operation, Outcome, Provider, Request


class Wire(Provider):
    """FakeShop requests, answers and polls (the declared data is in the package)."""

    @property
    def _base(self) -> str:
        return f"/api/shops/{setting(self.name, self.settings, 'shop')}"

    def _headers(self) -> dict[str, str]:
        return {**JSON_HEADERS, "Authorization": f"Bearer {self.credentials.get('token', '')}"}

    # -- writing ---------------------------------------------------------------
    def group_key(self, op: Operation) -> Hashable:
        return "jobs"  # upserts and deletes share a job

    def element(self, op: Operation) -> dict:
        if op.action == "delete":
            return {"op": "delete", "id": op.key}
        return {"op": "upsert", "id": op.key, "fields": op.after}

    def item_size(self, op: Operation) -> int:
        return len(dumps(self.element(op)))

    def encode(self, ops: Sequence[Operation]) -> Request:
        body = {"operations": [self.element(op) for op in ops]}
        return Request(method="POST", path=f"{self._base}/jobs", operations=tuple(ops), body=dumps(body),
                       headers=self._headers(), endpoint="jobs")

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        body = json_body(response)
        if 200 <= response.status_code < 300:
            if not (isinstance(body, dict) and isinstance(body.get("job_id"), str)):
                raise unexpected(self.name, response)  # no success: sent again, as after a 5xx
            return outcomes(ops, "pending", job=Job(handle=body["job_id"], operations=tuple(ops)))
        return split_or_fail(ops, f"fakeshop refused the request (HTTP {response.status_code}): "
                                  f"{body_excerpt(response)}")

    # -- asynchronous work -------------------------------------------------------
    def poll_request(self, job: Job) -> Request:
        return Request(method="GET", path=f"{self._base}/jobs/{job.handle}", operations=job.operations,
                       headers=self._headers(), endpoint="job", write=False)

    def decode_poll(self, job: Job, response: httpx.Response) -> list[Outcome] | None:
        body = json_body(response)
        if response.status_code == 404:
            return outcomes(job.operations, "retry", f"fakeshop does not know job {job.handle}")
        if response.status_code != 200 or not isinstance(body, dict) or body.get("state") not in ("queued", "done"):
            raise unexpected(self.name, response)
        if body["state"] == "queued":
            return None
        failed = body.get("failed") or {}
        return [refusal(op, str(failed[op.key])) if op.key in failed else Outcome(op, "confirmed")
                for op in job.operations]
