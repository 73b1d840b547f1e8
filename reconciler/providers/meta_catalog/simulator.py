"""Meta Catalog Batch API simulator (Graph API ``/{api_version}/{catalog_id}/batch``).

Auth: ``access_token=sandbox-token`` in the JSON/form body, the query string, or as
``Authorization: Bearer``. A missing or other token is HTTP 400 with Graph's code 190
envelope (``OAuthException``, "Invalid OAuth access token - Cannot parse access token").
``sandbox-limited-token`` is a valid token without the permission to write: every
``/batch`` call with it is HTTP 400 code 200 ``(#200) Permissions error``; it may read.
Any api_version path segment and any catalog id are accepted (catalogs spring into
existence empty).

``POST /{v}/{catalog_id}/batch``: ``requests`` (a list, or a JSON string of one, in the
body or query string) and optional ``allow_upsert``. The body may be JSON (strict) or
form-encoded. Limits: at most 5000 requests per call (more: HTTP 400 code 100, a
violation) and 100 calls per hour per catalog in a strict sliding window scaled by
``time_scale`` (the 101st: HTTP 400 code 80014 ``is_transient: true``, a violation; it
does not count in the window). Authorised calls count in the window whatever they
contained. A body over ``max_batch_bytes`` (10,000,000 unless a test lowers it) is HTTP
500 code 1 "Please reduce the amount of data you're asking for, then retry your
request", as Meta documents for a body too large (not a violation: Meta gives no
number). Graph errors are ``{"error": {message, type, code, error_subcode,
is_transient, error_data, fbtrace_id}}``.

Lines failing basic syntax (unknown method, missing/non-string retailer_id, data not an
object) are listed in ``validation_status`` (``{retailer_id, errors: [{message}],
warnings: []}``) and not ingested; the others form one batch with one opaque handle
(``handles`` is empty when no line was ingested). The batch is asynchronous:
``GET /{v}/{catalog_id}/check_batch_request_status?handle=H`` answers ``status:
"started"`` until ``async_delay`` seconds after the call, then ``"finished"``; at that
moment (lazily, at the next access of any kind, batches in submission order) each line
is validated against the catalog as it is then and the valid lines are applied in
order; lines with errors are not saved. The status lists a sample of at most 10 errors
``{line, id, message}`` (``line`` = index in the call's ``requests``) and 10 warnings,
with ``errors_total_count`` (one error per refused line) and ``warnings_total_count``;
``ids_of_invalid_requests`` is empty unless ``load_ids_of_invalid_requests=true``.
``fields`` chooses the fields; without it: handle, status, errors, errors_total_count,
warnings, warnings_total_count. Unknown handle: HTTP 400 code 100.

Line rules: only the seed's fields are accepted. CREATE needs availability, condition,
currency, name, description, image_url, url, price, and brand or gtin (or
manufacturer_part_number); a CREATE of an existing retailer_id replaces the item.
price/sale_price: a non-negative integer (minor units) or a digit-only string, stored
as an int. currency: three upper-case letters. availability/condition: the sets in
PROVIDER-NOTES. UPDATE of an unknown retailer_id is an error unless ``allow_upsert``
(then it must pass CREATE's checks); in an UPDATE, ``""`` unsets an optional field but
is an error for a required one, and ``null`` changes nothing (a warning). DELETE of an
unknown retailer_id is an error.

``GET /{v}/{catalog_id}/products?limit=&after=&fields=&filter=``: items sorted by
retailer_id, ``{"data": [{"retailer_id", ...fields}], "paging": {"cursors": {"before",
"after"}, "next": url}}``; ``next`` is absent on the last page and an empty catalog
answers ``{"data": []}``. ``fields`` (comma-separated) restricts the fields; without it
all stored fields are returned. Prices read back as formatted strings (``"$1,299.00"``,
``"R$ 1.299,90"``, ``"1.299,00 €"``, ``"¥1,299"``, ``"£12.00"``, ``"₹1,299.00"``, else
``"1,299.00 CHF"``). ``filter`` takes ``{"retailer_id": {"eq": id}}`` or ``{"retailer_id":
{"is_any": [ids]}}`` (any other: HTTP 400 code 100). ``limit`` defaults to 25 and is
capped at 1000. Cursors are opaque; a bad one is HTTP 400 code 100.

``items(catalog_id=...)`` lists one catalog's items as ``{"retailer_id", **fields}``
(prices in minor units, as stored); without ``catalog_id`` all catalogs, each item with
an added ``"catalog_id"``.
"""
from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.manifest.currencies import exponent
from reconciler.mapping import present
from reconciler.providers._common import is_count
from reconciler.sandbox.common import (
    Exchange,
    InvalidJSON,
    Simulator,
    SlidingWindow,
    json_response,
    parse_json,
)

ACCESS_TOKEN = "sandbox-token"
LIMITED_TOKEN = "sandbox-limited-token"  # valid, but may not write to catalogs
MAX_REQUESTS_PER_CALL = 5000
MAX_BATCH_BYTES = 10_000_000  # invented: meta_catalog.code-1-bytes (docs/sandbox.md)
ERRORS_SAMPLE = 10            # invented: meta_catalog.errors-sample (docs/sandbox.md)
# invented: meta_catalog.status-default-fields (docs/sandbox.md)
STATUS_FIELDS = ("handle", "status", "errors", "errors_total_count", "warnings", "warnings_total_count")
CALLS_PER_WINDOW = 100
WINDOW_SECONDS = 3600.0
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000

FIELDS = frozenset({
    "additional_image_urls", "availability", "age_group", "applinks", "brand", "category",
    "color", "condition", "currency", "custom_label_0", "custom_label_1", "custom_label_2",
    "custom_label_3", "custom_label_4", "description", "gender", "gtin", "image_url",
    "manufacturer_part_number", "name", "pattern", "price", "product_type", "sale_price",
    "sale_price_end_date", "sale_price_start_date", "shipping", "size", "url",
})
REQUIRED = ("availability", "condition", "currency", "name", "description", "image_url",
            "url", "price")
BRAND_LIKE = ("brand", "gtin", "manufacturer_part_number")
AVAILABILITY = frozenset({"in stock", "out of stock", "preorder", "available for order",
                          "discontinued", "pending", "mark_as_sold"})
CONDITION = frozenset({"new", "refurbished", "used", "used_like_new", "used_good",
                       "used_fair", "cpo", "open_box_new"})
METHODS = ("CREATE", "UPDATE", "DELETE")
PRICE_FIELDS = ("price", "sale_price")
LIST_FIELDS = {"additional_image_urls": str, "shipping": dict}
OBJECT_FIELDS = ("applinks",)

TOO_MUCH_DATA = "Please reduce the amount of data you're asking for, then retry your request"
# How a price reads back, per currency: (prefix, suffix, thousands separator, decimal mark).
# Invented: Meta documents no format; these are the forms seen in its answers and locales.
PRICE_STYLES = {
    "USD": ("$", "", ",", "."), "BRL": ("R$\u00a0", "", ".", ","), "EUR": ("", "\u00a0€", ".", ","),
    "JPY": ("¥", "", ",", "."), "GBP": ("£", "", ",", "."), "INR": ("₹", "", ",", "."),
}

RATE_LIMIT_MESSAGE = ("(#80014) There have been too many calls for this Product Catalog. "
                      "Wait a bit and try again.")


# invented: meta_catalog.graph-error-status (docs/sandbox.md)
def graph_error(code: int, message: str, *, subcode: int | None = None,
                transient: bool = False, type_: str = "OAuthException",
                status: int = 400, headers: dict | None = None) -> Response:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["is_transient"] = transient
    error["error_data"] = {}
    error["fbtrace_id"] = "A" + hashlib.sha1(f"{time.monotonic_ns()}".encode()).hexdigest()[:22]
    return json_response({"error": error}, status, headers)


def invalid_token() -> Response:
    return graph_error(190, "Invalid OAuth access token - Cannot parse access token")


# invented: meta_catalog.price-format (docs/sandbox.md)
def formatted_price(minor: Any, currency: Any) -> Any:
    """A stored price (integer minor units) as the read returns it: a formatted string."""
    if not isinstance(minor, int) or not isinstance(currency, str):
        return minor
    decimals = exponent(currency)
    whole, fraction = divmod(minor, 10 ** decimals)
    prefix, suffix, thousands, mark = PRICE_STYLES.get(currency, ("", f" {currency}", ",", "."))
    text = f"{whole:,}".replace(",", thousands)
    if decimals:
        text += mark + str(fraction).rjust(decimals, "0")
    return prefix + text + suffix


# invented: meta_catalog.filter (docs/sandbox.md)
def item_filter(raw: str) -> Any:
    """The retailer ids a ``filter`` selects (``{"retailer_id": {"eq": id}}`` or
    ``{"is_any": [ids]}``), or None for a filter the sandbox does not know."""
    try:
        rule = parse_json(raw.encode())
    except InvalidJSON:
        return None
    condition = rule.get("retailer_id") if isinstance(rule, dict) and len(rule) == 1 else None
    if not isinstance(condition, dict) or len(condition) != 1:
        return None
    (operator, value), = condition.items()
    if operator == "eq" and isinstance(value, str):
        return {value}
    if operator == "is_any" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return set(value)
    return None


class _Batch:
    def __init__(self, handle: str, catalog_id: str, lines: list[tuple[int, dict]],
                 allow_upsert: bool, due: float):
        self.handle = handle
        self.catalog_id = catalog_id
        self.lines = lines
        self.allow_upsert = allow_upsert
        self.due = due
        self.finished = False
        self.errors: list[dict] = []
        self.warnings: list[dict] = []


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _encode_cursor(retailer_id: str) -> str:
    return base64.urlsafe_b64encode(retailer_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()


class MetaCatalogSimulator(Simulator):
    name = "meta_catalog"
    credentials = {"access_token": ACCESS_TOKEN}

    def _reset_state(self) -> None:
        self.max_batch_bytes = MAX_BATCH_BYTES
        self.catalogs: dict[str, dict[str, dict]] = {}
        self.windows: dict[str, SlidingWindow] = {}
        self.batches: dict[str, _Batch] = {}
        self.pending: list[_Batch] = []
        self.counter = 0

    def routes(self) -> list[Route]:
        return [
            Route("/{api_version}/{catalog_id}/batch", self.write(self._batch), methods=["POST"]),
            Route("/{api_version}/{catalog_id}/check_batch_request_status",
                  self.read(self._status), methods=["GET"]),
            Route("/{api_version}/{catalog_id}/products", self.read(self._products),
                  methods=["GET"]),
        ]

    def error_response(self, status: int, message: str, headers: dict | None = None) -> Response:
        if status == 404:
            return graph_error(100, "Unsupported request - method type: get", type_="GraphMethodException",
                               status=400)
        if status == 429:
            return graph_error(4, "(#4) Application request limit reached", transient=True,
                               status=429, headers=headers)
        return graph_error(2, "An unexpected error has occurred. Please retry your request later.",
                           transient=True, status=status, headers=headers)

    def items(self, catalog_id: str | None = None, **_: Any) -> list[dict]:
        with self.lock:
            self._settle()
            if catalog_id is not None:
                return [{"retailer_id": rid, **data}
                        for rid, data in sorted(self.catalogs.get(str(catalog_id), {}).items())]
            return [{"catalog_id": cid, "retailer_id": rid, **data}
                    for cid, items in sorted(self.catalogs.items())
                    for rid, data in sorted(items.items())]

    def stored(self, settings: Mapping[str, Any]) -> dict[tuple[str, str], dict]:
        return {("product", row.pop("retailer_id")): present(row)
                for row in self.items(catalog_id=settings["catalog_id"])}

    # -- auth -----------------------------------------------------------------------

    @staticmethod
    def _token(request: Request, body_params: dict | None = None) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip()
        if "access_token" in request.query_params:
            return request.query_params["access_token"]
        if body_params and isinstance(body_params.get("access_token"), str):
            return body_params["access_token"]
        return None

    # -- POST batch -----------------------------------------------------------------

    async def _batch(self, request: Request, ex: Exchange) -> Response:
        catalog_id = request.path_params["catalog_id"]  # invented: meta_catalog.any-catalog (docs/sandbox.md)
        params: dict[str, Any] = {}
        bad_body = False
        ctype = request.headers.get("content-type", "")
        if ex.body.strip():
            if "application/x-www-form-urlencoded" in ctype:
                try:
                    params = dict(parse_qsl(ex.body.decode("utf-8"), keep_blank_values=True))
                except UnicodeDecodeError:
                    bad_body = True
            else:
                try:
                    parsed = parse_json(ex.body)
                except InvalidJSON:
                    bad_body = True
                else:
                    if isinstance(parsed, dict):
                        params = parsed
                    else:
                        bad_body = True
        token = self._token(request, params)
        if token not in (ACCESS_TOKEN, LIMITED_TOKEN):
            return invalid_token()
        if token == LIMITED_TOKEN:
            return graph_error(200, "(#200) Permissions error", type_="OAuthException")
        with self.lock:
            window = self.windows.setdefault(
                catalog_id,
                SlidingWindow(CALLS_PER_WINDOW, WINDOW_SECONDS * self.config.time_scale))
            wait = window.acquire(self.now())
        if wait:
            ex.violation(f"more than {CALLS_PER_WINDOW} calls in "
                         f"{WINDOW_SECONDS * self.config.time_scale:g}s for catalog {catalog_id}")
            return graph_error(80014, RATE_LIMIT_MESSAGE, subcode=2446079, transient=True)
        requests = params.get("requests", request.query_params.get("requests"))
        if isinstance(requests, str):
            try:
                requests = parse_json(requests.encode())
            except InvalidJSON:
                bad_body = True
                requests = None
        if isinstance(requests, list):
            ex.items = len(requests)
            if len(requests) > MAX_REQUESTS_PER_CALL:
                ex.violation(f"{len(requests)} requests > {MAX_REQUESTS_PER_CALL}")
                return graph_error(100, f"(#100) Param requests must be an array with at most "
                                        f"{MAX_REQUESTS_PER_CALL} elements")
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault
        if len(ex.body) > self.max_batch_bytes:
            return graph_error(1, TOO_MUCH_DATA, type_="OAuthException", status=500)
        if bad_body:
            return graph_error(100, "(#100) Invalid parameter: the request body is not valid JSON")
        if requests is None:
            return graph_error(100, "(#100) The parameter requests is required")
        if not isinstance(requests, list):
            return graph_error(100, "(#100) Param requests must be an array.")
        allow_upsert = _as_bool(params.get("allow_upsert",
                                           request.query_params.get("allow_upsert", False)))

        validation_status = []
        lines: list[tuple[int, dict]] = []
        for index, line in enumerate(requests):
            problem = self._syntax_error(line)
            if problem:
                rid = line.get("retailer_id") if isinstance(line, dict) else None
                validation_status.append({"retailer_id": rid if isinstance(rid, str) else None,
                                          "errors": [{"message": problem}], "warnings": []})
            else:
                lines.append((index, line))
        handles = []
        with self.lock:
            self._settle()
            if lines:
                self.counter += 1
                digest = hashlib.sha512(f"{self.config.seed}:{catalog_id}:{self.counter}".encode())
                handle = "Ac" + base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
                batch = _Batch(handle, catalog_id, lines, allow_upsert,
                               self.now() + self.config.async_delay)
                self.batches[handle] = batch
                self.pending.append(batch)
                handles.append(handle)
        return json_response({"handles": handles, "validation_status": validation_status})

    @staticmethod
    def _syntax_error(line: Any) -> str | None:
        if not isinstance(line, dict):
            return "Invalid request: each request must be an object"
        method = line.get("method")
        if method not in METHODS:
            return f"Invalid method: {method!r}; must be one of CREATE, UPDATE, DELETE"
        rid = line.get("retailer_id")
        if not isinstance(rid, str) or not rid:
            return "Missing or invalid retailer_id"
        if method != "DELETE" and not isinstance(line.get("data"), dict):
            return "Invalid data: data must be a JSON object"
        if method == "DELETE" and "data" in line and not isinstance(line["data"], dict):
            return "Invalid data: data must be a JSON object"
        return None

    # -- async processing -----------------------------------------------------------

    def _settle(self) -> None:
        """Apply every batch whose time has come, in submission order (lock held)."""
        now = self.now()
        while self.pending and self.pending[0].due <= now:
            self._apply(self.pending.pop(0))

    def _apply(self, batch: _Batch) -> None:
        items = self.catalogs.setdefault(batch.catalog_id, {})
        for line_no, line in batch.lines:
            rid = line["retailer_id"]
            method = line["method"]
            data = line.get("data") or {}
            warnings: list[str] = []
            if method == "DELETE":
                if rid in items:
                    del items[rid]
                    continue
                # invented: meta_catalog.delete-missing (docs/sandbox.md)
                error = f"Invalid value: Product with retailer_id {rid} does not exist"
            elif method == "CREATE" or (rid not in items and batch.allow_upsert):
                error, result = self._create(rid, line_no, data, warnings)
                if error is None:
                    items[rid] = result
            elif rid not in items:
                error = (f"Invalid value: Product with retailer_id {rid} does not exist "
                         f"(use allow_upsert to create it)")
            else:
                error, result = self._update(rid, line_no, items[rid], data, warnings)
                if error is None:
                    items[rid] = result
            for w in warnings:
                batch.warnings.append({"line": line_no, "id": rid, "message": w})
            if error is not None:  # invented: meta_catalog.status-lines (docs/sandbox.md)
                batch.errors.append({"line": line_no, "id": rid, "message": error})
        batch.finished = True

    @staticmethod
    def _wrap(line_no: int, rid: str, message: str) -> str:
        return (f'Invalid value: Value passed at position {line_no} (id={rid}) is invalid: '
                f'"{message}"')

    def _check_fields(self, line_no: int, rid: str, data: dict, warnings: list[str]
                      ) -> tuple[str | None, dict, set[str]]:
        """Type/enum checks; returns (error, normalised values to set, fields to unset)."""
        values: dict[str, Any] = {}
        unset: set[str] = set()
        for field, value in data.items():
            if field not in FIELDS:
                return self._wrap(line_no, rid, f"Invalid field: {field} is not a product field"), {}, set()
            if value is None:  # invented: meta_catalog.null-warning (docs/sandbox.md)
                warnings.append(f"Field {field} is null and was ignored")
                continue
            if value == "":
                unset.add(field)
                continue
            problem = None
            if field in PRICE_FIELDS:
                if isinstance(value, str) and value.isascii() and value.isdigit():
                    value = int(value)
                elif not is_count(value):
                    problem = f"{field} must be a non-negative integer in minor units"
            elif field == "currency":
                if not (isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value)):
                    problem = "currency must be an ISO 4217 currency code"
            elif field == "availability":
                if value not in AVAILABILITY:
                    problem = f"Invalid availability value: {value!r}"
            elif field == "condition":
                if value not in CONDITION:
                    problem = f"Invalid condition value: {value!r}"
            elif field in LIST_FIELDS:
                kind = LIST_FIELDS[field]
                if not (isinstance(value, list) and all(isinstance(v, kind) for v in value)):
                    problem = f"{field} must be a list of {'strings' if kind is str else 'objects'}"
            elif field in OBJECT_FIELDS:
                if not isinstance(value, dict):
                    problem = f"{field} must be an object"
            elif not isinstance(value, str):
                problem = f"{field} must be a string"
            if problem:
                return self._wrap(line_no, rid, problem), {}, set()
            values[field] = value
        return None, values, unset

    def _missing_required(self, item: dict) -> str | None:
        for field in REQUIRED:
            if field not in item:
                return field
        if not any(f in item for f in BRAND_LIKE):
            return "brand"
        return None

    def _create(self, rid: str, line_no: int, data: dict, warnings: list[str]):
        error, values, _unset = self._check_fields(line_no, rid, data, warnings)
        if error:
            return error, None
        missing = self._missing_required(values)
        if missing:
            return self._wrap(line_no, rid, "You cannot create a EntProductItem without required "
                                            f"field {missing.replace('_', ' ').title()}"), None
        return None, values

    def _update(self, rid: str, line_no: int, current: dict, data: dict, warnings: list[str]):
        error, values, unset = self._check_fields(line_no, rid, data, warnings)
        if error:
            return error, None
        for field in sorted(unset):
            if field in REQUIRED:
                return self._wrap(line_no, rid, f"Required field {field} cannot be empty"), None
        result = {k: v for k, v in current.items() if k not in unset}
        result.update(values)
        if not any(f in result for f in BRAND_LIKE):
            return self._wrap(line_no, rid, "A product needs a brand, gtin or "
                                            "manufacturer_part_number"), None
        return None, result

    # -- GET status -----------------------------------------------------------------

    async def _status(self, request: Request, ex: Exchange) -> Response:
        if self._token(request) not in (ACCESS_TOKEN, LIMITED_TOKEN):
            return invalid_token()
        q = request.query_params
        handle = q.get("handle")
        fields = [f.strip() for f in q["fields"].split(",") if f.strip()] if q.get("fields") else STATUS_FIELDS
        load_ids = q.get("load_ids_of_invalid_requests", "").lower() == "true"
        catalog_id = request.path_params["catalog_id"]
        with self.lock:
            self._settle()
            batch = self.batches.get(handle or "")
            if batch is None or batch.catalog_id != catalog_id:
                return graph_error(100, "(#100) Invalid parameter: handle is not a valid batch "
                                        "request handle for this catalog")
            # invented: meta_catalog.batch-delay (docs/sandbox.md)
            errors = batch.errors if batch.finished else []
            warnings = batch.warnings if batch.finished else []
            entry = {"handle": batch.handle, "status": "finished" if batch.finished else "started",
                     "errors_total_count": len(errors), "errors": [dict(e) for e in errors[:ERRORS_SAMPLE]],
                     "warnings": [dict(w) for w in warnings[:ERRORS_SAMPLE]], "warnings_total_count": len(warnings),
                     "ids_of_invalid_requests": list(dict.fromkeys(e["id"] for e in errors)) if load_ids else []}
        return json_response({"data": [{k: v for k, v in entry.items() if k in fields}]})

    # -- GET products ---------------------------------------------------------------

    # invented: meta_catalog.read-pages (docs/sandbox.md)
    async def _products(self, request: Request, ex: Exchange) -> Response:
        if self._token(request) not in (ACCESS_TOKEN, LIMITED_TOKEN):
            return invalid_token()
        q = request.query_params
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            if limit < 1:
                raise ValueError
        except ValueError:
            return graph_error(100, "(#100) Param limit must be a positive integer")
        limit = min(limit, MAX_LIMIT)
        after = q.get("after")
        start_after: str | None = None
        if after:
            try:
                start_after = _decode_cursor(after)
            except (ValueError, UnicodeDecodeError):
                return graph_error(100, "(#100) Invalid cursor: after")
        fields = [f.strip() for f in q["fields"].split(",") if f.strip()] if q.get("fields") else None
        chosen = item_filter(q["filter"]) if "filter" in q else None
        if "filter" in q and chosen is None:
            return graph_error(100, "(#100) Invalid parameter: filter")
        catalog_id = request.path_params["catalog_id"]
        with self.lock:
            self._settle()
            ordered = sorted(self.catalogs.get(catalog_id, {}).items())
        if chosen is not None:
            ordered = [(rid, d) for rid, d in ordered if rid in chosen]
        if start_after is not None:
            ordered = [(rid, d) for rid, d in ordered if rid > start_after]
        page = ordered[:limit]
        data = []
        for rid, item in page:
            row = {"retailer_id": rid}
            row.update({k: formatted_price(v, item.get("currency")) if k in PRICE_FIELDS else v
                        for k, v in item.items() if fields is None or k in fields})
            data.append(row)
        if not data:
            return json_response({"data": []})
        paging: dict[str, Any] = {"cursors": {"before": _encode_cursor(page[0][0]),
                                              "after": _encode_cursor(page[-1][0])}}
        ex.items = len(data)
        if len(ordered) > limit:
            params = {k: v for k, v in q.items() if k != "after"}
            params["limit"] = str(limit)
            params["after"] = paging["cursors"]["after"]
            paging["next"] = str(request.url.replace(query=urlencode(params)))
        return json_response({"data": data, "paging": paging})
