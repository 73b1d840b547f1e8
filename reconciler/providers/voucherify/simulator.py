"""Voucherify simulator: bulk product metadata update as an asynchronous action, and
the product reads.

Auth: headers ``X-App-Id: sandbox-app`` and ``X-App-Token: sandbox-token``; anything
else is 401 ``{"code": 401, "message": "Unauthorized", "key": "unauthorized"}``.

``POST /v1/products/metadata/async`` body ``{"source_ids": [str, ...], "metadata":
{...}}``. A raw body over 10,485,760 bytes is 413 with the seed's BadRequest example
(``{"statusCode": 413, "error": "Request Entity Too Large", "message": "Payload content
length greater than maximum allowed: 10485760"}``), a violation. Invalid JSON or missing
/ ill-typed fields are 400 ``{"code": 400, "message": "Invalid payload", "details":
..., "key": "invalid_payload"}``. Success: 202 ``{"async_action_id": "aa_..."}``.

``GET /v1/async-actions/{id}``: ``{id, type: "PRODUCTS.METADATA_UPDATE", status,
operation_status, progress, result, created_at, updated_at, request_id,
processing_time, object: "async_action"}``; unknown id 404 with the documented error
object. Actions are processed in FIFO order: action i is ``ENQUEUED`` until
``async_delay/2`` after its creation (and until the previous action is done), then
``IN_PROGRESS``, and ``DONE`` from ``max(created + async_delay, previous action's done
time)``; it is applied at that moment (lazily, at the next access of any kind; the
clock is the simulator's ``now``). Applying gives every source_id every metadata
key (a missing product is upserted; ``null`` sets the key to null; keys are never
removed), except to a product whose metadata would then break the metadata schema
(:meth:`VoucherifySimulator.set_metadata_schema`, none by default): that product is
left as it was (not created) and reported as failed.

``result`` comes in one of the two documented shapes (:attr:`result_shape`):
``"current"`` (default) ``{done_count, failed_count, reports: [], reports_available_till:
null, errors: [{message, details, key}]}`` (errors name no product), or ``"results"``,
the older ``{results: [{source_id, updated, found}], done_count}`` with ``done_count``
counting every product processed. ``operation_status`` is null until DONE, then
``SUCCESS`` (none failed), ``FAILED`` (none updated) or ``UNKNOWN`` (some of each);
``status`` is ``DONE`` either way. Before DONE the counts are zero.

``GET /v1/products?limit=&page=&order=`` (limit 1..100, default 10; page 1..99;
order one of ``created_at``, ``updated_at``, either with ``-``; default creation order):
``{"object": "list", "data_ref": "products", "products": [...], "total"}``; a page over
99 is a 400 and a violation, other bad parameters a 400 ``invalid_query_params``.
``GET /v1/products/{id}``: one product by its id or its source_id, with its ``skus``
list; unknown: 404 with the documented error object. Products are ``{"id",
"source_id", "name", "price", "attributes", "metadata", "image_url", "created_at",
"updated_at", "object": "product"}``.

``items()`` lists the product objects in creation order.
"""
from __future__ import annotations

import hashlib
import operator
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.mapping import present
from reconciler.sandbox.common import Exchange, NOT_JSON, Simulator, headers_match, is_number, json_response, parse_body

APP_ID = "sandbox-app"
APP_TOKEN = "sandbox-token"
MAX_BYTES = 10_485_760
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_PAGE = 99
ORDERS = ("created_at", "updated_at")  # invented: voucherify.order-values (docs/sandbox.md)
TOO_LARGE = {
    "statusCode": 413,
    "error": "Request Entity Too Large",
    "message": f"Payload content length greater than maximum allowed: {MAX_BYTES}",
}
# A metadata schema definition's types, as Voucherify names them, and the JSON they take.
TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": is_number,
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, str),
    "datetime": lambda v: isinstance(v, str),
    "image_url": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
}


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error(status: int, message: str, key: str, details: str | None = None,
          headers: dict | None = None, **extra: str) -> Response:
    body: dict[str, Any] = {"code": status, "message": message}
    if details is not None:
        body["details"] = details
    body["key"] = key
    body.update(extra)
    return json_response(body, status, headers)


# invented: voucherify.invalid-payload-400 (docs/sandbox.md)
def invalid(details: str) -> Response:
    return error(400, "Invalid payload", "invalid_payload", details)


def bad_query(details: str) -> Response:
    return error(400, "Invalid query params", "invalid_query_params", details)


def not_found(kind: str, resource_id: str) -> Response:
    return error(404, "Resource not found", "not_found", f"Cannot find {kind} with id {resource_id}",
                 resource_id=resource_id, resource_type=kind)


def schema_problem(key: str, value: Any, definition: Mapping[str, Any]) -> str | None:
    """Why ``value`` breaks the metadata schema's ``definition`` of ``key``, or None."""
    if value is None:
        return None if definition.get("optional", True) else f"property {key} is required"
    values = value if definition.get("array") else [value]
    if definition.get("array") and not isinstance(value, list):
        return f"property {key} must be an array"
    kind = definition.get("type", "string")
    for item in values:
        if not TYPES.get(kind, lambda v: True)(item):
            return f"property {key} must be of type {kind}"
        allowed = definition.get("eq") or ()
        if allowed and item not in allowed:
            return f"property {key} must be one of {list(allowed)}"
        if item in (definition.get("ne") or ()):
            return f"property {key} may not be {item!r}"
        if kind == "string":
            for name, test in (("minLength", lambda n: len(item) >= n), ("maxLength", lambda n: len(item) <= n),
                               ("exactLength", lambda n: len(item) == n)):
                if definition.get(name) is not None and not test(definition[name]):
                    return f"property {key} breaks {name} {definition[name]}"
        if kind == "number":
            for name, test in (("lt", operator.lt), ("lte", operator.le), ("gt", operator.gt),
                               ("gte", operator.ge)):
                if definition.get(name) is not None and not test(item, definition[name]):
                    return f"property {key} must be {name} {definition[name]}"
    return None


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
        self.results: list[dict] = []    # {source_id, found, updated, problem}

    def view(self, now: float, shape: str) -> dict:
        # invented: voucherify.action-timing (docs/sandbox.md)
        # invented: voucherify.action-result (docs/sandbox.md)
        failed = sum(1 for r in self.results if not r["updated"])
        done = len(self.results) - failed
        if self.done:
            status, progress = "DONE", 100
            operation_status = "SUCCESS" if failed == 0 else "FAILED" if done == 0 else "UNKNOWN"
        elif now >= self.starts:
            status, operation_status = "IN_PROGRESS", None
            span = max(self.due - self.starts, 1e-9)
            progress = min(99, int(100 * (now - self.starts) / span))
        else:
            status, operation_status, progress = "ENQUEUED", None, 0
        if shape == "results":
            result: dict[str, Any] = {
                "results": [{"source_id": r["source_id"], "updated": r["updated"], "found": r["found"]}
                            for r in self.results],
                "done_count": len(self.results)}
        else:
            # invented: voucherify.no-report-file (docs/sandbox.md)
            result = {"done_count": done, "failed_count": failed, "reports": [], "reports_available_till": None,
                      "errors": [{"message": "Invalid metadata", "details": r["problem"], "key": "invalid_metadata"}
                                 for r in self.results if not r["updated"]]}
        return {
            "id": self.id,
            "type": "PRODUCTS.METADATA_UPDATE",
            "status": status,
            "operation_status": operation_status,
            "progress": progress,
            "result": result,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "request_id": "v-" + self.id[3:],
            "processing_time": int(1000 * (self.due - self.created)) if self.done else None,
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
        self.result_shape: Literal["current", "results"] = "current"
        self.metadata_schema: dict[str, dict] = {}
        self.allow_defined_only = False

    # invented: voucherify.metadata-schema (docs/sandbox.md)
    def set_metadata_schema(self, properties: Mapping[str, Mapping[str, Any]], allow_defined_only: bool = False) -> None:
        """The project's metadata schema for products, as Voucherify defines one:
        ``{key: {"type", "optional", "array", "eq", "ne", "lt", "lte", "gt", "gte",
        "minLength", "maxLength", "exactLength"}}``; ``allow_defined_only`` refuses
        keys it does not define. A product whose metadata would break it is refused."""
        with self.lock:
            self.metadata_schema = {key: dict(definition) for key, definition in properties.items()}
            self.allow_defined_only = allow_defined_only

    def routes(self) -> list[Route]:
        return [
            Route("/v1/products/metadata/async", self.write(self._update), methods=["POST"]),
            Route("/v1/async-actions/{action_id}", self.read(self._action), methods=["GET"]),
            Route("/v1/products", self.read(self._products), methods=["GET"]),
            Route("/v1/products/{product_id:path}", self.read(self._product), methods=["GET"]),
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

    # invented: voucherify.auth-401 (docs/sandbox.md)
    def _authorized(self, request: Request) -> bool:
        return headers_match(request, {"x-app-id": APP_ID, "x-app-token": APP_TOKEN})

    # -- POST -----------------------------------------------------------------------

    async def _update(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return error(401, "Unauthorized", "unauthorized")
        if len(ex.body) > MAX_BYTES:
            ex.violation(f"{len(ex.body)} bytes > {MAX_BYTES}")
            return json_response(TOO_LARGE, 413)
        body = parse_body(ex.body)
        if isinstance(body, dict) and isinstance(body.get("source_ids"), list):
            ex.items = len(body["source_ids"])
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault
        if body is NOT_JSON:
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
        with self.lock:
            now = self.now()
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
        now = self.now()
        while self.queue and self.queue[0].due <= now:
            self._apply(self.queue.pop(0))

    def _problem(self, sent: Mapping[str, Any], merged: Mapping[str, Any]) -> str | None:
        """Why a product's metadata breaks the schema (the keys ``sent``, and the required
        keys of its ``merged`` metadata), or None."""
        for key, value in sent.items():
            definition = self.metadata_schema.get(key)
            if definition is None:
                if self.allow_defined_only:
                    return f"property {key} is not defined in the metadata schema"
                continue
            problem = schema_problem(key, value, definition)
            if problem:
                return problem
        for key, definition in self.metadata_schema.items():
            if merged.get(key) is None and not definition.get("optional", True):
                return f"property {key} is required"
        return None

    def _apply(self, action: _Action) -> None:
        stamp = _now_iso()
        for source_id in action.source_ids:
            product = self.products.get(source_id)
            merged = {**(product["metadata"] if product else {}), **action.metadata}
            problem = self._problem(action.metadata, merged)
            action.results.append({"source_id": source_id, "found": product is not None,
                                   "updated": problem is None, "problem": problem})
            if problem:
                continue
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
            product["metadata"] = merged
            product["updated_at"] = stamp
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
            view = action.view(self.now(), self.result_shape) if action else None
        if view is None:
            return not_found("async_action", action_id)
        return json_response(view)

    async def _products(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return error(401, "Unauthorized", "unauthorized")
        q = request.query_params
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            page = int(q.get("page", 1))
        except ValueError:
            return bad_query("limit and page must be integers")
        if not 1 <= limit <= MAX_LIMIT:
            return bad_query(f"limit must be between 1 and {MAX_LIMIT}")
        if page > MAX_PAGE:  # invented: voucherify.page-99 (docs/sandbox.md)
            ex.violation(f"page {page} > {MAX_PAGE}")
            return bad_query(f"page must be between 1 and {MAX_PAGE}")
        if page < 1:
            return bad_query("page must be >= 1")
        order = q.get("order")
        if order is not None and order.lstrip("-") not in ORDERS:
            return bad_query(f"order must be one of {', '.join(ORDERS)}, or one of them after '-'")
        with self.lock:
            self._settle()
            products = list(self.products.values())  # invented: voucherify.list-order (docs/sandbox.md)
            if order:  # a stable sort: creation order among equal stamps
                products.sort(key=lambda p: p[order.lstrip("-")] or "", reverse=order.startswith("-"))
            chunk = [_copy_product(p) for p in products[(page - 1) * limit: page * limit]]
        ex.items = len(chunk)
        return json_response({"object": "list", "data_ref": "products", "products": chunk,
                              "total": len(products)})

    async def _product(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return error(401, "Unauthorized", "unauthorized")
        wanted = request.path_params["product_id"]
        with self.lock:
            self._settle()
            product = self.products.get(wanted) or next(
                (p for p in self.products.values() if p["id"] == wanted), None)
            view = _copy_product(product) if product else None
        if view is None:
            return not_found("product", wanted)
        ex.items = 1
        view["skus"] = {"object": "list", "data_ref": "data", "data": [], "total": 0}
        return json_response(view)


def _copy_product(product: dict) -> dict:
    copy = dict(product)
    copy["metadata"] = dict(product["metadata"])
    copy["attributes"] = list(product["attributes"])
    return copy


