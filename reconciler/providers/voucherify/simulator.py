"""Voucherify simulator: bulk product metadata update as an asynchronous action.

Auth: headers ``X-App-Id: sandbox-app`` and ``X-App-Token: sandbox-token``; anything
else is 401 ``{"code": 401, "message": "Unauthorized", "key": "unauthorized"}``.

``POST /v1/products/metadata/async`` body ``{"source_ids": [str, ...], "metadata":
{...}}``. A raw body over 10,485,760 bytes is 413 with the seed's BadRequest example
(``{"statusCode": 413, "error": "Request Entity Too Large", "message": "Payload content
length greater than maximum allowed: 10485760"}``), a violation. Invalid JSON or missing
/ ill-typed fields are 400 ``{"code": 400, "message": "Invalid payload", "details":
..., "key": "invalid_payload"}``. Success: 202 ``{"async_action_id": "aa_..."}``.

``GET /v1/async-actions/{id}``: ``{id, type: "products.metadata.update", status,
operation_status, progress, result: {done_count, failed_count, errors}, created_at,
updated_at, object: "async_action"}``; unknown id 404 ``{"code": 404, "message":
"Resource not found", "details": ..., "key": "not_found"}``. Actions are processed in
FIFO order: action i is ``ENQUEUED`` until ``async_delay/2`` after its creation (and
until the previous action is done), then ``IN_PROGRESS``, and ``DONE`` from
``max(created + async_delay, previous action's done time)``; it is applied at that
moment (lazily, at the next access of any kind). Applying gives every source_id every
metadata key (a missing product is upserted; ``null`` sets the key to null; keys are
never removed). A metadata value that is an object or an array fails every product of
the action: each is listed in ``result.errors`` as ``{"source_id", "message"}``.
``operation_status`` is null until DONE, then ``SUCCESS``, ``PARTIAL_SUCCESS`` or
``FAILED`` (nothing done); ``status`` is still ``DONE`` then, as the job itself ran.
``result`` has zero counts until DONE.

``GET /v1/products?limit=&page=`` (limit 1..100, default 10; page from 1; a limit out
of range is 400 ``invalid_query_params``): ``{"object": "list", "data_ref": "products",
"products": [{"id", "source_id", "name", "price", "attributes", "metadata",
"image_url", "created_at", "updated_at", "object": "product"}], "total"}`` in creation
order.

``items()`` lists the product objects in creation order.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.mapping import present
from reconciler.sandbox.common import (
    Exchange,
    InvalidJSON,
    Simulator,
    headers_match,
    json_response,
    parse_json,
)

APP_ID = "sandbox-app"
APP_TOKEN = "sandbox-token"
MAX_BYTES = 10_485_760
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
TOO_LARGE = {
    "statusCode": 413,
    "error": "Request Entity Too Large",
    "message": f"Payload content length greater than maximum allowed: {MAX_BYTES}",
}


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error(status: int, message: str, key: str, details: str | None = None,
          headers: dict | None = None) -> Response:
    body: dict[str, Any] = {"code": status, "message": message}
    if details is not None:
        body["details"] = details
    body["key"] = key
    return json_response(body, status, headers)


def invalid(details: str) -> Response:
    return error(400, "Invalid payload", "invalid_payload", details)


class _Action:
    def __init__(self, action_id: str, source_ids: list[str], metadata: dict,
                 created: float, starts: float, due: float):
        self.id = action_id
        self.source_ids = source_ids
        self.metadata = metadata
        self.created = created
        self.starts = starts
        self.due = due
        self.created_at = _now_iso()
        self.updated_at = self.created_at
        self.done = False
        self.done_count = 0
        self.failed_count = 0
        self.errors: list[dict] = []

    def view(self, now: float) -> dict:
        if self.done:
            status, progress = "DONE", 100
            if self.failed_count == 0:
                operation_status = "SUCCESS"
            elif self.done_count == 0:
                operation_status = "FAILED"
            else:
                operation_status = "PARTIAL_SUCCESS"
        elif now >= self.starts:
            status, operation_status = "IN_PROGRESS", None
            span = max(self.due - self.starts, 1e-9)
            progress = min(99, int(100 * (now - self.starts) / span))
        else:
            status, operation_status, progress = "ENQUEUED", None, 0
        return {
            "id": self.id,
            "type": "products.metadata.update",
            "status": status,
            "operation_status": operation_status,
            "progress": progress,
            "result": {"done_count": self.done_count, "failed_count": self.failed_count,
                       "errors": [dict(e) for e in self.errors]},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "object": "async_action",
        }


class VoucherifySimulator(Simulator):
    name = "voucherify"
    credentials = {"app_id": APP_ID, "app_token": APP_TOKEN}

    def _reset_state(self) -> None:
        self.products: dict[str, dict] = {}
        self.actions: dict[str, _Action] = {}
        self.queue: list[_Action] = []
        self.counter = 0
        self.last_due = 0.0

    def routes(self) -> list[Route]:
        return [
            Route("/v1/products/metadata/async", self.write(self._update), methods=["POST"]),
            Route("/v1/async-actions/{action_id}", self.read(self._action), methods=["GET"]),
            Route("/v1/products", self.read(self._products), methods=["GET"]),
        ]

    def error_response(self, status: int, message: str, headers: dict | None = None) -> Response:
        key = {404: "not_found", 405: "method_not_allowed", 429: "too_many_requests",
               503: "service_unavailable"}.get(status, "internal_server_error")
        return error(status, message, key, headers=headers)

    def items(self, **_: Any) -> list[dict]:
        with self.lock:
            self._settle()
            return [_copy_product(p) for p in self.products.values()]

    def stored(self, settings: Mapping[str, Any]) -> dict[tuple[str, str], dict]:
        """Products with metadata only (the API cannot remove keys: a delete nulls them)."""
        view = {}
        for row in self.items():
            metadata = present(row.get("metadata") or {})
            if metadata:
                view[("product", row["source_id"])] = {"source_id": row["source_id"], "metadata": metadata}
        return view

    def _authorized(self, request: Request) -> bool:
        return headers_match(request, {"x-app-id": APP_ID, "x-app-token": APP_TOKEN})

    # -- POST -----------------------------------------------------------------------

    async def _update(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return error(401, "Unauthorized", "unauthorized")
        if len(ex.body) > MAX_BYTES:
            ex.violation(f"{len(ex.body)} bytes > {MAX_BYTES}")
            return json_response(TOO_LARGE, 413)
        try:
            body = parse_json(ex.body)
        except InvalidJSON:
            body = _INVALID
        if isinstance(body, dict) and isinstance(body.get("source_ids"), list):
            ex.items = len(body["source_ids"])
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault
        if body is _INVALID:
            return invalid("Request body is not valid JSON")
        if not isinstance(body, dict):
            return invalid("Request body must be an object")
        if "source_ids" not in body:
            return invalid("Property .source_ids is required")
        if "metadata" not in body:
            return invalid("Property .metadata is required")
        source_ids, metadata = body["source_ids"], body["metadata"]
        if not isinstance(source_ids, list) or not all(isinstance(s, str) and s for s in source_ids):
            return invalid("Property .source_ids must be an array of non-empty strings")
        if not isinstance(metadata, dict):
            return invalid("Property .metadata must be an object")
        now = time.monotonic()
        with self.lock:
            self._settle()
            self.counter += 1
            digest = hashlib.sha256(f"{self.config.seed}:{self.counter}".encode()).hexdigest()
            action_id = "aa_" + digest[:18]
            delay = self.config.async_delay
            starts = max(now + delay / 2, self.last_due)
            due = max(now + delay, self.last_due)
            self.last_due = due
            action = _Action(action_id, list(source_ids), dict(metadata), now, starts, due)
            self.actions[action_id] = action
            self.queue.append(action)
        return json_response({"async_action_id": action_id}, 202)

    # -- async processing -----------------------------------------------------------

    def _settle(self) -> None:
        """Apply every action whose time has come, in FIFO order (lock held)."""
        now = time.monotonic()
        while self.queue and self.queue[0].due <= now:
            self._apply(self.queue.pop(0))

    def _apply(self, action: _Action) -> None:
        bad = [k for k, v in action.metadata.items() if isinstance(v, (dict, list))]
        stamp = _now_iso()
        for source_id in action.source_ids:
            if bad:
                action.failed_count += 1
                action.errors.append({
                    "source_id": source_id,
                    "message": f"Invalid metadata value for key '{bad[0]}': objects and arrays "
                               f"are not allowed",
                })
                continue
            product = self.products.get(source_id)
            if product is None:
                product = {
                    "id": "prod_" + hashlib.sha256(f"{self.config.seed}:p:{source_id}".encode())
                    .hexdigest()[:16],
                    "source_id": source_id,
                    "name": None,
                    "price": None,
                    "attributes": [],
                    "metadata": {},
                    "image_url": None,
                    "created_at": stamp,
                    "updated_at": None,
                    "object": "product",
                }
                self.products[source_id] = product
            product["metadata"].update(action.metadata)
            product["updated_at"] = stamp
            action.done_count += 1
        action.done = True
        action.updated_at = stamp

    # -- GETs -----------------------------------------------------------------------

    async def _action(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return error(401, "Unauthorized", "unauthorized")
        action_id = request.path_params["action_id"]
        with self.lock:
            self._settle()
            action = self.actions.get(action_id)
            view = action.view(time.monotonic()) if action else None
        if view is None:
            return error(404, "Resource not found", "not_found",
                         f"Cannot find async_action with id {action_id}")
        return json_response(view)

    async def _products(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return error(401, "Unauthorized", "unauthorized")
        q = request.query_params
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            page = int(q.get("page", 1))
        except ValueError:
            return error(400, "Invalid query params", "invalid_query_params",
                         "limit and page must be integers")
        if not 1 <= limit <= MAX_LIMIT:
            return error(400, "Invalid query params", "invalid_query_params",
                         f"limit must be between 1 and {MAX_LIMIT}")
        if page < 1:
            return error(400, "Invalid query params", "invalid_query_params",
                         "page must be >= 1")
        with self.lock:
            self._settle()
            products = list(self.products.values())
            chunk = [_copy_product(p) for p in products[(page - 1) * limit: page * limit]]
        ex.items = len(chunk)
        return json_response({"object": "list", "data_ref": "products", "products": chunk,
                              "total": len(products)})


def _copy_product(product: dict) -> dict:
    copy = dict(product)
    copy["metadata"] = dict(product["metadata"])
    copy["attributes"] = list(product["attributes"])
    return copy


_INVALID = object()
