"""FakeShop simulator: the API of ``wire`` and ``reads``, over HTTP on 127.0.0.1.

Auth: ``Authorization: Bearer fake-token``; anything else is 401 ``{"error":
"unauthorized"}``. A job of more than 100 operations is 400 ``{"error": "at most 100
operations"}`` and a violation; a body that is not ``{"operations": [...]}`` of
well-formed operations is 400 and stores nothing. A job is ``queued`` until
``async_delay`` seconds after it was accepted, and is applied then (at the next
request of any kind): an upsert whose fields lack a string ``title`` or have a
``price`` that is not a number ≥ 0 fails with a reason, a delete of an unknown item
fails with "not found", the others are applied. Listings are paged by ``after`` (an
id) with ``limit`` 1..100; anything else is 400.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.sandbox.common import (
    Exchange, InvalidJSON, Simulator, headers_match, is_number, json_response, parse_json,
)

TOKEN = "fake-token"
MAX_OPERATIONS = 100
MAX_LIMIT = 100


class FakeShopSimulator(Simulator):
    name = "fakeshop"
    credentials = {"token": TOKEN}

    def _reset_state(self) -> None:
        self.shops: dict[str, dict[str, dict]] = {}   # shop -> id -> fields
        self.jobs: dict[str, dict] = {}                # job id -> {shop, operations, due, failed, done}
        self.counter = 0

    def routes(self) -> list[Route]:
        return [
            Route("/api/shops/{shop}/jobs", self.write(self._submit), methods=["POST"]),
            Route("/api/shops/{shop}/jobs/{job_id}", self.read(self._job), methods=["GET"]),
            Route("/api/shops/{shop}/items", self.read(self._items), methods=["GET"]),
        ]

    def error_response(self, status: int, message: str, headers: dict | None = None) -> Response:
        return json_response({"error": message}, status, headers)

    def items(self, shop: str | None = None, **_: Any) -> list[dict]:
        with self.lock:
            self._settle()
            return [{"shop": s, "id": key, "fields": dict(fields)}
                    for s, items in sorted(self.shops.items()) if shop in (None, s)
                    for key, fields in sorted(items.items())]

    def stored(self, settings: Mapping[str, Any]) -> dict[tuple[str, str], dict]:
        return {("product", row["id"]): row["fields"] for row in self.items(shop=settings["shop"])}

    def _authorized(self, request: Request) -> bool:
        return headers_match(request, {"authorization": f"Bearer {TOKEN}"})

    async def _submit(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return self.error_response(401, "unauthorized")
        try:
            body = parse_json(ex.body)
        except InvalidJSON:
            body = None
        operations = body.get("operations") if isinstance(body, dict) else None
        if isinstance(operations, list):
            ex.items = len(operations)
            if len(operations) > MAX_OPERATIONS:
                ex.violation(f"{len(operations)} operations > {MAX_OPERATIONS}")
                return self.error_response(400, f"at most {MAX_OPERATIONS} operations")
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault
        if not isinstance(operations, list) or not all(map(_well_formed, operations)):
            return self.error_response(400, 'the body must be {"operations": [...]} of upserts and deletes')
        with self.lock:
            self._settle()
            self.counter += 1
            job_id = f"job-{self.counter}"
            self.jobs[job_id] = {"shop": request.path_params["shop"], "operations": operations,
                                 "due": time.monotonic() + self.config.async_delay, "failed": {}, "done": False}
        return json_response({"job_id": job_id}, 202)

    def _settle(self) -> None:
        """Apply every job whose time has come, in the order accepted (lock held)."""
        now = time.monotonic()
        for job in self.jobs.values():
            if not job["done"] and job["due"] <= now:
                self._apply(job)

    def _apply(self, job: dict) -> None:
        items = self.shops.setdefault(job["shop"], {})
        for operation in job["operations"]:
            key = operation["id"]
            if operation["op"] == "delete":
                if items.pop(key, None) is None:
                    job["failed"][key] = "not found"
                continue
            fields = operation["fields"]
            price = fields.get("price", 0)
            if not isinstance(fields.get("title"), str):
                job["failed"][key] = "title is required"
            elif not is_number(price) or price < 0:
                job["failed"][key] = "price must be a number >= 0"
            else:
                items[key] = dict(fields)
        job["done"] = True

    async def _job(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return self.error_response(401, "unauthorized")
        with self.lock:
            self._settle()
            job = self.jobs.get(request.path_params["job_id"])
            view = None if job is None else {"id": request.path_params["job_id"],
                                             "state": "done" if job["done"] else "queued",
                                             "failed": dict(job["failed"])}
        if view is None:
            return self.error_response(404, "no such job")
        return json_response(view)

    async def _items(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return self.error_response(401, "unauthorized")
        after = request.query_params.get("after", "")
        try:
            limit = int(request.query_params.get("limit", MAX_LIMIT))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            return self.error_response(400, f"limit must be 1..{MAX_LIMIT}")
        with self.lock:
            self._settle()
            keys = sorted(k for k in self.shops.get(request.path_params["shop"], {}) if k > after)
            page = [{"id": k, "fields": dict(self.shops[request.path_params["shop"]][k])} for k in keys[:limit]]
        ex.items = len(page)
        return json_response({"items": page, "next": page[-1]["id"] if len(keys) > limit else None})


def _well_formed(operation: Any) -> bool:
    if not isinstance(operation, dict) or not isinstance(operation.get("id"), str) or not operation["id"]:
        return False
    if operation.get("op") == "delete":
        return set(operation) == {"op", "id"}
    return operation.get("op") == "upsert" and isinstance(operation.get("fields"), dict)
