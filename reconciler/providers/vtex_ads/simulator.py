"""VTEX Ads simulator: ``POST /product/bulk/products`` and ``/product/bulk/inventories``.

Auth: headers ``x-app-id: sandbox-app`` and ``x-api-key: sandbox-key``; anything else is
401 ``{"message": "Unauthorized"}`` (the API documents no 401 shape).

Limits (the document's): at most 500 objects per request (more: 422 with an Ajv
``maxItems`` error at instancePath ``""``, a violation) and at most 3 requests in flight
at once across both endpoints (a 4th concurrent one: 429 ``{"message": ...}``, a
violation).

The body must be a strict JSON array (invalid JSON: 400 ``{"message": "Invalid JSON"}``;
not an array: 422 Ajv ``type`` error at ``""``). Every object is validated like Ajv in
``allErrors`` mode and the errors are answered as 422 with a JSON list of
``{instancePath, schemaPath, keyword, params, message}`` exactly like the seed
(``/3`` for item 3, ``/3/name`` for a bad field of item 3). A 422 stores nothing.
Success is 202 ``{"messages": ["products will be processed soon"]}`` (or
``inventories``): the seed's "processing will be performed asynchronously". The
objects are queued and stored ``async_delay`` seconds later, in order
(:class:`~reconciler.sandbox.common.Backlog`; ``queue_drop_rate`` of them never are,
an invention: the API lets no one see what became of them), by ``product_sku`` (an
inventory by ``product_sku`` and ``store_id``), products and inventories separately:
the record kinds ``product`` and ``inventory``. A product is replaced whole (full
upsert). The API has no read endpoint, and neither has the simulator.

``items(record="product"|"inventory")`` lists one kind; without ``record`` both, each
with an added ``"record"`` key.
"""
from __future__ import annotations

from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.sandbox.common import Exchange, NOT_JSON, Simulator, headers_match, is_number, json_response, parse_body

APP_ID = "sandbox-app"
API_KEY = "sandbox-key"
MAX_ITEMS = 500
MAX_IN_FLIGHT = 3

# field -> (type, extra checks); order is the schema's property order
# invented: vtex_ads.image-url-required (docs/sandbox.md)
PRODUCT_REQUIRED = ["product_sku", "name", "url", "image_url", "categories"]
PRODUCT_PROPERTIES: dict[str, dict[str, Any]] = {
    "product_sku": {"type": "string"},
    "name": {"type": "string"},
    "url": {"type": "string"},
    "image_url": {"type": "string"},
    "categories": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    "brand": {"type": "string"},
    "gtins": {"type": "array", "items": {"type": "string"}},
    "metadata": {"type": "object"},
    "tags": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 64}},
    "parent_sku": {"type": "string"},
    "sellers": {"type": "array"},
}
INVENTORY_REQUIRED = ["product_sku", "price", "promotional_price", "is_available"]
INVENTORY_PROPERTIES: dict[str, dict[str, Any]] = {
    "product_sku": {"type": "string"},
    "price": {"type": "number", "minimum": 0},
    "promotional_price": {"type": "number", "minimum": 0},
    "is_available": {"type": "boolean"},
    "store_id": {"type": "string"},
}


def _error(instance: str, schema: str, keyword: str, params: dict, message: str) -> dict:
    return {
        "instancePath": instance,
        "schemaPath": schema,
        "keyword": keyword,
        "params": params,
        "message": message,
    }


def _type_ok(value: Any, type_: str) -> bool:
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "number":
        return is_number(value)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "array":
        return isinstance(value, list)
    if type_ == "object":
        return isinstance(value, dict)
    raise ValueError(type_)


def _check(value: Any, schema: dict, instance: str, schema_path: str) -> list[dict]:
    """Ajv-like validation of one value against a small schema (allErrors)."""
    type_ = schema["type"]
    if not _type_ok(value, type_):
        return [_error(instance, f"{schema_path}/type", "type", {"type": type_}, f"must be {type_}")]
    errors: list[dict] = []
    if type_ == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            n = schema["maxItems"]
            errors.append(_error(instance, f"{schema_path}/maxItems", "maxItems", {"limit": n},
                                 f"must NOT have more than {n} items"))
        if "minItems" in schema and len(value) < schema["minItems"]:
            n = schema["minItems"]
            errors.append(_error(instance, f"{schema_path}/minItems", "minItems", {"limit": n},
                                 f"must NOT have fewer than {n} items"))
        if "items" in schema:
            for i, element in enumerate(value):
                errors += _check(element, schema["items"], f"{instance}/{i}", f"{schema_path}/items")
    elif type_ == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            n = schema["maxLength"]
            errors.append(_error(instance, f"{schema_path}/maxLength", "maxLength", {"limit": n},
                                 f"must NOT have more than {n} characters"))
    elif type_ == "number":
        if "minimum" in schema and value < schema["minimum"]:
            n = schema["minimum"]
            errors.append(_error(instance, f"{schema_path}/minimum", "minimum",
                                 {"comparison": ">=", "limit": n}, f"must be >= {n}"))
    return errors


def validate_items(items: list, required: list[str], properties: dict) -> list[dict]:
    """Ajv-style errors for a list of objects (``#/items`` schema)."""
    errors: list[dict] = []
    for index, item in enumerate(items):
        where = f"/{index}"
        if not isinstance(item, dict):
            errors.append(_error(where, "#/items/type", "type", {"type": "object"}, "must be object"))
            continue
        for name in required:
            if name not in item:
                errors.append(_error(where, "#/items/required", "required", {"missingProperty": name},
                                     f"must have required property '{name}'"))
        for key in item:
            if key not in properties:  # invented: vtex_ads.additional-properties (docs/sandbox.md)
                errors.append(_error(where, "#/items/additionalProperties", "additionalProperties",
                                     {"additionalProperty": key},
                                     "must NOT have additional properties"))
        for name, schema in properties.items():
            if name in item:
                errors += _check(item[name], schema, f"{where}/{_escape(name)}",
                                 f"#/items/properties/{_escape(name)}")
    return errors


def _escape(token: str) -> str:
    """JSON Pointer escaping."""
    return token.replace("~", "~0").replace("/", "~1")


class VtexAdsSimulator(Simulator):
    name = "vtex_ads"
    credentials = {"app_id": APP_ID, "api_key": API_KEY}
    max_in_flight = MAX_IN_FLIGHT

    def _reset_state(self) -> None:
        self.products: dict[str, dict] = {}
        self.inventories: dict[tuple[str, str | None], dict] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/product/bulk/products", self.write(self._products), methods=["POST"]),
            Route("/product/bulk/inventories", self.write(self._inventories), methods=["POST"]),
        ]

    def in_flight_response(self) -> Response:
        # invented: vtex_ads.in-flight-429 (docs/sandbox.md)
        return json_response(
            {"message": f"Too many simultaneous requests: at most {MAX_IN_FLIGHT} are allowed"}, 429
        )

    def items(self, record: str | None = None, **_: Any) -> list[dict]:
        self.catch_up()
        with self.lock:
            products = [dict(p) for p in self.products.values()]
            inventories = [dict(i) for i in self.inventories.values()]
        if record == "product":
            return products
        if record == "inventory":
            return inventories
        return [{"record": "product", **p} for p in products] + [
            {"record": "inventory", **i} for i in inventories
        ]

    def stored(self, settings: Mapping[str, Any]) -> dict[tuple[str, str], dict]:
        view = {}
        for row in self.items():
            record = row.pop("record")
            view[(record, row["product_sku"])] = row
        return view

    async def _products(self, request: Request, ex: Exchange) -> Response:
        return self._bulk(ex, PRODUCT_REQUIRED, PRODUCT_PROPERTIES, "products")

    async def _inventories(self, request: Request, ex: Exchange) -> Response:
        return self._bulk(ex, INVENTORY_REQUIRED, INVENTORY_PROPERTIES, "inventories")

    def _bulk(self, ex: Exchange, required: list[str], properties: dict, kind: str) -> Response:
        if not headers_match(ex.request, {"x-app-id": APP_ID, "x-api-key": API_KEY}):
            # invented: vtex_ads.auth-401 (docs/sandbox.md)
            return json_response({"message": "Unauthorized"}, 401)
        body = parse_body(ex.body)
        if ex.over_limit(body, MAX_ITEMS):
            # invented: vtex_ads.max-items-422 (docs/sandbox.md)
            return json_response([_error("", "#/maxItems", "maxItems", {"limit": MAX_ITEMS},
                                         f"must NOT have more than {MAX_ITEMS} items")], 422)
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault
        if body is NOT_JSON:  # invented: vtex_ads.invalid-json-400 (docs/sandbox.md)
            return json_response({"message": "Invalid JSON"}, 400)
        if not isinstance(body, list):
            return json_response([_error("", "#/type", "type", {"type": "array"}, "must be array")], 422)
        errors = validate_items(body, required, properties)
        if errors:  # invented: vtex_ads.whole-request-422 (docs/sandbox.md)
            return json_response(errors, 422)
        with self.lock:
            for item in body:  # invented: vtex_ads.queue-delay (docs/sandbox.md)
                self.backlog.put(lambda item=item: self._store(kind, item))
        return json_response({"messages": [f"{kind} will be processed soon"]}, 202)

    def _store(self, kind: str, item: dict) -> None:
        """Queued work, done under the lock: one object stored (unless lost)."""
        if self.backlog.dropped():
            return
        if kind == "products":
            self.products[item["product_sku"]] = item
        else:
            self.inventories[(item["product_sku"], item.get("store_id"))] = item


