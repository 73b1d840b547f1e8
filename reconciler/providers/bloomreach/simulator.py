"""Bloomreach Engagement catalog simulator (bulk item endpoints).

Base path ``/data/v2/projects/{project_id}/catalogs/{catalog_id}/items``; any project
and catalog id is accepted. Auth: ``Authorization: Basic`` of
``sandbox-key:sandbox-secret``; anything else is 401
``{"errors": {"_global": ["Access key is not valid"]}, "success": false}``.

Writes are validated when they arrive (per-item results in request order, HTTP 200)
and *queued*: "success response means only that the request is queued to be processed
later, not that the item was successfully updated" (the seed). A valid item is done
``async_delay`` seconds later, in order (:class:`~reconciler.sandbox.common.Backlog`),
unless lost (``queue_drop_rate``: no document says what becomes of queued work, nor
offers a way to see it, but reading the item back).

* ``PUT …/items`` body ``[{item_id, properties}]``: full replace, the stored properties
  become exactly the ones sent. Results ``{"success": "True", "queued": "True"}`` or
  ``{"success": "False", "queued": "False", "errors": {<field>: [messages]}}`` (the
  seed's string booleans).
* ``POST …/items/partial-update`` body ``[{item_id, properties, upsert?}]``: merges the
  properties when done; a missing item is created only with ``upsert: true``, else
  nothing happens (when the item is missing is only known when the work is done).
* ``DELETE …/items/bulk-delete`` body ``["id", ...]``: per item ``{"success": true,
  "queued": true}`` (removed when done, if it is there then) or, for an id that is
  empty or holds ``/``, ``{"success": false, "queued": false, "errors": {"_global":
  ["Item ID '<id>' is not valid."]}}`` (real booleans, as PROVIDER-NOTES show).

Per-item errors: item not ``{item_id, properties[, upsert]}`` (marshmallow-style
messages: "Missing data for required field.", "Not a valid string.", "Not a valid
mapping type.", "Unknown field."), an item_id containing ``/``, a property not in the
catalog's fixed definition :data:`CATALOG_FIELDS` (``{"properties": ["Fields ['x'] are
not properly defined."]}``), ``price``/``stock`` not a number, and a property that is
``null`` (``"Field 'x' may not be null."``: no document gives ``null`` a meaning, so the
simulator refuses it rather than guess one).

Global 400 ``{"errors": {"_global": [msg]}, "success": false}`` exactly for the seed's
cases: "Invalid JSON" (also a Content-Type other than application/json), "Payload not
a list", "Payload size exceeded" (raw body > 10,000,000 bytes, a violation), "Too many
items" (> 5000, a violation), "Item parsing error" (an element that is not an object,
or not a string for bulk-delete). Rate limit: 5 requests per 10 s per catalog, ONE
strict sliding window shared by the three bulk endpoints, scaled by ``time_scale``;
the 6th is 429 with ``Retry-After: <whole seconds>`` and the ``_global`` body, a
violation, and does not count in the window.

Reads (not rate limited):

* ``GET …/items?count=&skip=&order=`` (count default 20; count+skip > 1001 is a 400):
  ``{"success": true, "data": [{"item_id", "properties"}], "total", "skip", "count"}``.
  ``order`` is ``column asc|desc[, column asc|desc]...`` over ``item_id`` and the
  catalog's fields (anything else is a 400); without it, the most recently written
  items come first (the documents give no default order: a client that pages without
  one may see an item twice, or never, while the catalog changes).
* ``GET …/items/{item_id}``: ``{"success": true, "data": {"item_id", "properties"}}``;
  unknown id 404 with the PROVIDER-NOTES body.

``items(catalog_id=..., project_id=...)`` lists ``{"item_id", "properties"}``; without
``catalog_id`` every catalog, each item with ``project_id`` and ``catalog_id`` added.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.mapping import present
from reconciler.sandbox.common import (
    Exchange,
    NOT_JSON,
    Simulator,
    SlidingWindow,
    basic_auth,
    is_number,
    json_response,
    parse_body,
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

# invented: bloomreach.catalog-fields (docs/sandbox.md)
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
        self.written: dict[tuple[tuple[str, str], str], int] = {}  # when each item was last written
        self.clock = itertools.count(1)

    def routes(self) -> list[Route]:
        return [
            Route(BASE, self.write(self._put), methods=["PUT"]),
            # invented: bloomreach.reads-unlimited (docs/sandbox.md)
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
        self.catch_up()
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
        # invented: bloomreach.auth-401 (docs/sandbox.md)
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
            wait = window.acquire(self.now())
        if wait:
            ex.violation(f"more than {REQUESTS_PER_WINDOW} bulk requests in "
                         f"{window_seconds:g}s for catalog {key[1]}")
            # invented: bloomreach.rate-429 (docs/sandbox.md)
            return global_error("Too many requests", 429,
                                {"Retry-After": retry_after_seconds(wait)}), None
        if len(ex.body) > MAX_BYTES:
            ex.violation(f"{len(ex.body)} bytes > {MAX_BYTES}")
            return global_error("Payload size exceeded"), None
        payload = parse_body(ex.body)
        if ex.over_limit(payload, MAX_ITEMS):
            return global_error("Too many items"), None
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault, None
        # invented: bloomreach.global-400-texts (docs/sandbox.md)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if payload is NOT_JSON or ctype != "application/json":
            return global_error("Invalid JSON"), None
        if not isinstance(payload, list):
            return global_error("Payload not a list"), None
        return None, payload

    @staticmethod
    def _item_errors(item: Any, allowed_keys: tuple[str, ...]) -> tuple[bool, dict]:
        """(parse_error, per-item errors) for one PUT/partial-update element."""
        # invented: bloomreach.item-error-texts (docs/sandbox.md)
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
                if field in props and value is None:  # invented: bloomreach.null-refused (docs/sandbox.md)
                    messages.append(f"Field '{field}' may not be null.")
                elif field in NUMBER_FIELDS and not is_number(value) and field in props:
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
            key = self._key(request)
            for item, errors in checked:
                if errors:
                    results.append(_failed(errors))
                    continue
                # invented: bloomreach.queue-delay (docs/sandbox.md)
                self.backlog.put(lambda item=item: self._write(key, item, partial))
                results.append(dict(OK))
        return json_response(results)

    def _write(self, key: tuple[str, str], item: dict, partial: bool) -> None:
        """Queued work, done under the lock: one item written (unless lost)."""
        if self.backlog.dropped():
            return
        store = self.catalogs.setdefault(key, {})
        item_id = item["item_id"]
        if not partial:
            store[item_id] = dict(item["properties"])
        elif item_id in store:
            store[item_id].update(item["properties"])
        elif item.get("upsert") is True:
            store[item_id] = dict(item["properties"])
        else:  # invented: bloomreach.missing-without-upsert (docs/sandbox.md)
            return
        self.written[(key, item_id)] = next(self.clock)

    async def _delete(self, request: Request, ex: Exchange) -> Response:
        error, payload = self._admit(request, ex)
        if error is not None:
            return error
        if not all(isinstance(i, str) for i in payload):
            return global_error("Item parsing error")
        results = []
        with self.lock:
            key = self._key(request)
            for item_id in payload:
                if item_id and "/" not in item_id:
                    self.backlog.put(lambda item_id=item_id: self._remove(key, item_id))
                    results.append({"success": True, "queued": True})
                else:
                    # invented: bloomreach.delete-errors (docs/sandbox.md)
                    results.append({"success": False, "queued": False,
                                    "errors": {"_global": [f"Item ID {item_id!r} is not valid."]}})
        return json_response(results)

    def _remove(self, key: tuple[str, str], item_id: str) -> None:
        """Queued work: one item deleted, if it is there when its turn comes (unless lost)."""
        if not self.backlog.dropped():
            self.catalogs.setdefault(key, {}).pop(item_id, None)

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
        order = _order(q.get("order"))
        if order is None:
            return global_error("order must be 'column asc|desc', columns separated by commas")
        key = self._key(request)
        with self.lock:
            items = self.catalogs.get(key, {})
            # invented: bloomreach.list-default-order (docs/sandbox.md)
            rows = sorted(items.items(), key=lambda entry: -self.written.get((key, entry[0]), 0))
        for column, descending in reversed(order):  # stable sorts, the last column first
            rows.sort(key=lambda entry: _sort_key(entry, column), reverse=descending)
        total = len(rows)
        if count < 0 or skip < 0:
            return global_error("count and skip must not be negative")
        if count + skip > MAX_READ_WINDOW:
            return global_error(f"count + skip must not exceed {MAX_READ_WINDOW}")
        data = [{"item_id": i, "properties": dict(p)} for i, p in rows[skip:skip + count]]
        ex.items = len(data)
        # invented: bloomreach.list-shape (docs/sandbox.md)
        return json_response({"success": True, "data": data, "total": total,
                              "skip": skip, "count": count})

    # invented: bloomreach.item-read-shape (docs/sandbox.md)
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


# invented: bloomreach.order-columns (docs/sandbox.md)
def _order(text: str | None) -> list[tuple[str, bool]] | None:
    """``[(column, descending)]`` of an ``order`` parameter ([] without one), or None
    when it is not ``column asc|desc[, ...]`` over item_id and the catalog's fields."""
    if text is None:
        return []
    order = []
    for part in text.split(","):
        words = part.split()
        if len(words) != 2 or words[0] not in ("item_id", *CATALOG_FIELDS) or words[1].lower() not in ("asc", "desc"):
            return None
        order.append((words[0], words[1].lower() == "desc"))
    return order


def _sort_key(entry: tuple[str, dict], column: str) -> tuple:
    value = entry[0] if column == "item_id" else entry[1].get(column)
    return (value is None, str(type(value)), value if value is not None else 0)


