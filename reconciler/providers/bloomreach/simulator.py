"""Bloomreach Engagement catalog simulator (bulk item endpoints).

Base path ``/data/v2/projects/{project_id}/catalogs/{catalog_id}/items``; any project
and catalog id is accepted. Auth: ``Authorization: Basic`` of
``sandbox-key:sandbox-secret``; anything else is 401
``{"errors": {"_global": ["Access key is not valid"]}, "success": false}``.

Writes (processed immediately; per-item results in request order, HTTP 200):

* ``PUT …/items`` body ``[{item_id, properties}]``: full replace, the stored properties
  are exactly the ones sent. Results ``{"success": "True", "queued": "True"}`` or
  ``{"success": "False", "queued": "False", "errors": {<field>: [messages]}}`` (the
  seed's string booleans).
* ``POST …/items/partial-update`` body ``[{item_id, properties, upsert?}]``: merges the
  properties; a missing item is created only with ``upsert: true``, else a per-item
  error ``{"_global": ["Item <id> does not exist"]}``.
* ``DELETE …/items/bulk-delete`` body ``["id", ...]``: per item ``{"success": true,
  "queued": true}`` or ``{"success": false, "queued": false, "errors": {"_global":
  ["Item <id> does not exist"]}}`` (real booleans, as PROVIDER-NOTES show).

Per-item errors: item not ``{item_id, properties[, upsert]}`` (marshmallow-style
messages: "Missing data for required field.", "Not a valid string.", "Not a valid
mapping type.", "Unknown field."), an item_id containing ``/``, a property not in the
catalog's fixed definition :data:`CATALOG_FIELDS` (``{"properties": ["Fields ['x'] are
not properly defined."]}``), and ``price``/``stock`` not a number (``null`` blanks any
field).

Global 400 ``{"errors": {"_global": [msg]}, "success": false}`` exactly for the seed's
cases: "Invalid JSON" (also a Content-Type other than application/json), "Payload not
a list", "Payload size exceeded" (raw body > 10,000,000 bytes, a violation), "Too many
items" (> 5000, a violation), "Item parsing error" (an element that is not an object,
or not a string for bulk-delete). Rate limit: 5 requests per 10 s per catalog, ONE
strict sliding window shared by the three bulk endpoints, scaled by ``time_scale``;
the 6th is 429 with ``Retry-After: <whole seconds>`` and the ``_global`` body, a
violation, and does not count in the window.

Reads (not rate limited):

* ``GET …/items?count=&skip=`` (count default 20; count+skip > 1001 is a 400):
  ``{"success": true, "data": [{"item_id", "properties"}], "total", "skip", "count"}``,
  items sorted by item_id.
* ``GET …/items/{item_id}``: ``{"success": true, "data": {"item_id", "properties"}}``;
  unknown id 404 with the PROVIDER-NOTES body.

``items(catalog_id=..., project_id=...)`` lists ``{"item_id", "properties"}``; without
``catalog_id`` every catalog, each item with ``project_id`` and ``catalog_id`` added.
"""
from __future__ import annotations

from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.mapping import present
from reconciler.sandbox.common import (
    Exchange,
    InvalidJSON,
    Simulator,
    SlidingWindow,
    basic_auth,
    is_number,
    json_response,
    parse_json,
    retry_after_seconds,
)

KEY_ID = "sandbox-key"
KEY_SECRET = "sandbox-secret"
MAX_BYTES = 10_000_000
MAX_ITEMS = 5000
REQUESTS_PER_WINDOW = 5
WINDOW_SECONDS = 10.0
MAX_READ_WINDOW = 1001
DEFAULT_COUNT = 20

CATALOG_FIELDS = ("title", "url", "image", "price", "brand", "category", "availability",
                  "description", "stock", "color", "size", "material", "gender")
NUMBER_FIELDS = frozenset({"price", "stock"})

NOT_FOUND = ("The requested URL was not found on the server. If you entered the URL "
             "manually please check your spelling and try again.")
BASE = "/data/v2/projects/{project_id}/catalogs/{catalog_id}/items"


def global_error(message: str, status: int = 400, headers: dict | None = None) -> Response:
    return json_response({"errors": {"_global": [message]}, "success": False}, status, headers)


def _failed(errors: dict) -> dict:
    return {"success": "False", "queued": "False", "errors": errors}


OK = {"success": "True", "queued": "True"}


class BloomreachSimulator(Simulator):
    name = "bloomreach"
    credentials = {"key_id": KEY_ID, "key_secret": KEY_SECRET}

    def _reset_state(self) -> None:
        self.catalogs: dict[tuple[str, str], dict[str, dict]] = {}
        self.windows: dict[tuple[str, str], SlidingWindow] = {}

    def routes(self) -> list[Route]:
        return [
            Route(BASE, self.write(self._put), methods=["PUT"]),
            Route(BASE, self.read(self._list), methods=["GET"]),
            Route(BASE + "/partial-update", self.write(self._partial), methods=["POST"]),
            Route(BASE + "/bulk-delete", self.write(self._delete), methods=["DELETE"]),
            Route(BASE + "/{item_id}", self.read(self._get), methods=["GET"]),
        ]

    def error_response(self, status: int, message: str, headers: dict | None = None) -> Response:
        if status == 404:
            message = NOT_FOUND
        return global_error(message, status, headers)

    def items(self, catalog_id: str | None = None, project_id: str | None = None,
              **_: Any) -> list[dict]:
        out = []
        with self.lock:
            for (pid, cid), items in sorted(self.catalogs.items()):
                if catalog_id is not None and cid != str(catalog_id):
                    continue
                if project_id is not None and pid != str(project_id):
                    continue
                for item_id, props in sorted(items.items()):
                    row = {"item_id": item_id, "properties": dict(props)}
                    if catalog_id is None:
                        row = {"project_id": pid, "catalog_id": cid, **row}
                    out.append(row)
        return out

    def stored(self, settings: Mapping[str, Any]) -> dict[tuple[str, str], dict]:
        return {("product", row["item_id"]): present(row["properties"])
                for row in self.items(catalog_id=settings["catalog_id"], project_id=settings["project_id"])}

    # -- shared checks --------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return basic_auth(request) == (KEY_ID, KEY_SECRET)

    def _key(self, request: Request) -> tuple[str, str]:
        return request.path_params["project_id"], request.path_params["catalog_id"]

    def _admit(self, request: Request, ex: Exchange) -> tuple[Response | None, Any]:
        """Auth, rate window, limits, fault, JSON, list: (error response, payload)."""
        if not self._authorized(request):
            return global_error("Access key is not valid", 401), None
        key = self._key(request)
        window_seconds = WINDOW_SECONDS * self.config.time_scale
        with self.lock:
            window = self.windows.setdefault(key, SlidingWindow(REQUESTS_PER_WINDOW, window_seconds))
            wait = window.acquire()
        if wait:
            ex.violation(f"more than {REQUESTS_PER_WINDOW} bulk requests in "
                         f"{window_seconds:g}s for catalog {key[1]}")
            return global_error("Too many requests", 429,
                                {"Retry-After": retry_after_seconds(wait)}), None
        if len(ex.body) > MAX_BYTES:
            ex.violation(f"{len(ex.body)} bytes > {MAX_BYTES}")
            return global_error("Payload size exceeded"), None
        try:
            payload = parse_json(ex.body)
        except InvalidJSON:
            payload = _INVALID
        if isinstance(payload, list):
            ex.items = len(payload)
            if len(payload) > MAX_ITEMS:
                ex.violation(f"{len(payload)} items > {MAX_ITEMS}")
                return global_error("Too many items"), None
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault, None
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if payload is _INVALID or ctype != "application/json":
            return global_error("Invalid JSON"), None
        if not isinstance(payload, list):
            return global_error("Payload not a list"), None
        return None, payload

    @staticmethod
    def _item_errors(item: Any, allowed_keys: tuple[str, ...]) -> tuple[bool, dict]:
        """(parse_error, per-item errors) for one PUT/partial-update element."""
        if not isinstance(item, dict):
            return True, {}
        errors: dict[str, list[str]] = {}
        for key in item:
            if key not in allowed_keys:
                errors[key] = ["Unknown field."]
        item_id = item.get("item_id")
        if "item_id" not in item:
            errors["item_id"] = ["Missing data for required field."]
        elif not isinstance(item_id, str):
            errors["item_id"] = ["Not a valid string."]
        elif not item_id:
            errors["item_id"] = ["Item ID must not be empty."]
        elif "/" in item_id:
            errors["item_id"] = ["Item ID must not contain '/'."]
        if "upsert" in item and not isinstance(item["upsert"], bool):
            errors["upsert"] = ["Not a valid boolean."]
        props = item.get("properties")
        if "properties" not in item:
            errors["properties"] = ["Missing data for required field."]
        elif not isinstance(props, dict):
            errors["properties"] = ["Not a valid mapping type."]
        else:
            messages = []
            unknown = [k for k in props if k not in CATALOG_FIELDS]
            if unknown:
                messages.append(f"Fields {unknown!r} are not properly defined.")
            for field in CATALOG_FIELDS:
                value = props.get(field)
                if field in NUMBER_FIELDS and value is not None and not is_number(value):
                    messages.append(f"Field '{field}' must be a number.")
            if messages:
                errors["properties"] = messages
        return False, errors

    # -- writes ---------------------------------------------------------------------

    async def _put(self, request: Request, ex: Exchange) -> Response:
        return self._upsert(request, ex, partial=False)

    async def _partial(self, request: Request, ex: Exchange) -> Response:
        return self._upsert(request, ex, partial=True)

    def _upsert(self, request: Request, ex: Exchange, partial: bool) -> Response:
        error, payload = self._admit(request, ex)
        if error is not None:
            return error
        allowed = ("item_id", "properties", "upsert") if partial else ("item_id", "properties")
        checked = []
        for item in payload:
            parse_error, errors = self._item_errors(item, allowed)
            if parse_error:
                return global_error("Item parsing error")
            checked.append((item, errors))
        results = []
        with self.lock:
            store = self.catalogs.setdefault(self._key(request), {})
            for item, errors in checked:
                if errors:
                    results.append(_failed(errors))
                    continue
                item_id = item["item_id"]
                if not partial:
                    store[item_id] = dict(item["properties"])
                elif item_id in store:
                    store[item_id].update(item["properties"])
                elif item.get("upsert") is True:
                    store[item_id] = dict(item["properties"])
                else:
                    results.append(_failed({"_global": [
                        f"Item {item_id} does not exist and upsert is not set."]}))
                    continue
                results.append(dict(OK))
        return json_response(results)

    async def _delete(self, request: Request, ex: Exchange) -> Response:
        error, payload = self._admit(request, ex)
        if error is not None:
            return error
        if not all(isinstance(i, str) for i in payload):
            return global_error("Item parsing error")
        results = []
        with self.lock:
            store = self.catalogs.setdefault(self._key(request), {})
            for item_id in payload:
                if item_id in store:
                    del store[item_id]
                    results.append({"success": True, "queued": True})
                else:
                    results.append({"success": False, "queued": False,
                                    "errors": {"_global": [f"Item {item_id} does not exist."]}})
        return json_response(results)

    # -- reads ----------------------------------------------------------------------

    async def _list(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return global_error("Access key is not valid", 401)
        q = request.query_params
        try:
            count = int(q.get("count", DEFAULT_COUNT))
            skip = int(q.get("skip", 0))
        except ValueError:
            return global_error("count and skip must be integers")
        with self.lock:
            ordered = sorted(self.catalogs.get(self._key(request), {}).items())
        total = len(ordered)
        if count < 0 or skip < 0:
            return global_error("count and skip must not be negative")
        if count + skip > MAX_READ_WINDOW:
            return global_error(f"count + skip must not exceed {MAX_READ_WINDOW}")
        data = [{"item_id": i, "properties": dict(p)} for i, p in ordered[skip:skip + count]]
        ex.items = len(data)
        return json_response({"success": True, "data": data, "total": total,
                              "skip": skip, "count": count})

    async def _get(self, request: Request, ex: Exchange) -> Response:
        if not self._authorized(request):
            return global_error("Access key is not valid", 401)
        item_id = request.path_params["item_id"]
        with self.lock:
            props = self.catalogs.get(self._key(request), {}).get(item_id)
            props = dict(props) if props is not None else None
        if props is None:
            return global_error(NOT_FOUND, 404)
        return json_response({"success": True, "data": {"item_id": item_id, "properties": props}})


_INVALID = object()
