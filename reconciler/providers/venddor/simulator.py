"""Venddor simulator: ``POST /api/products/`` (send products with a single price).

Auth: ``Authorization: Basic`` of ``sandbox-user:sandbox-pass``; anything else is 401
``{"message": "Unauthorized", "status": 401}``.

The body must be a strict JSON array of 1..60 product objects (more than 60: 400 and a
violation). Every value must be a string. Required: ``product_code`` (8, 12, 13 or 14
digits with a valid GS1 check digit), ``product`` (non-empty), ``price``
(``^\\d+(,\\d+)?$``, decimal comma; the document sets no number of decimals),
``amount`` (digits), ``status`` (``A``, ``D`` or ``H``). Optional: ``ncm``, ``brand``,
``weight``, ``qty_step``, ``internal_product_code``, ``quantity_per_package``. Unknown
keys are rejected.

ANY invalid product (or invalid JSON, or not an array) rejects the whole request with
400 ``{"message": "Bad Request", "status": 400}`` and stores nothing, so a client must
bisect to find the bad one. Success is 201 ``{"product_id": <first id>,
"product_ids": [ids in request order]}``: products are upserted by ``product_code``
(stored as exactly the fields sent) and keep the id assigned when first created
(increasing integers from 934887).

Reads: ``GET /api/products?page=&items_per_page=`` (Basic auth as for writes), the
apidoc's paginated listing, in product id order. The apidoc shows two envelopes:
``listing = "get-products"`` (the default) answers as its "Get Products" page,
``{"products": [{"product_id": "973732", "product", "product_code", "amount": 230,
"price": "89.90", "status"}], "pagination": {"total", "per_page", "current_page",
"last_page"}}`` (default 20 per page); ``listing = "products-api"`` as its "Products
API" page, ``{"products": [{"product_id": 143, "product", "price": 199.99, "status",
"quantity"}], "params": {"page", "items_per_page", "total_items"}}`` (default 10, and
no ``product_code``). At most :data:`MAX_PER_PAGE` per page (no maximum is documented:
an invention; the answer says how many it gave), pages numbered from 1 (below: 400).

``items()`` lists ``{"product_id", **fields}`` in id order.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.manifest.models import gtin_is_valid
from reconciler.sandbox.common import Exchange, NOT_JSON, Simulator, basic_auth, json_response, parse_body

USERNAME = "sandbox-user"
PASSWORD = "sandbox-pass"
MAX_PRODUCTS = 60
FIRST_ID = 934887  # invented: venddor.ids (docs/sandbox.md)
MAX_PER_PAGE = 50  # invented: venddor.page-size (docs/sandbox.md)
DEFAULT_PER_PAGE = {"get-products": 20, "products-api": 10}

REQUIRED = ("product_code", "product", "price", "amount", "status")
OPTIONAL = ("ncm", "brand", "weight", "qty_step", "internal_product_code",
            "quantity_per_package")
PRICE_RE = re.compile(r"\d+(,\d+)?", re.ASCII)
DIGITS_RE = re.compile(r"\d+", re.ASCII)


# invented: venddor.validation (docs/sandbox.md)
def product_problem(product: Any) -> str | None:
    """Why a product is invalid, or None."""
    if not isinstance(product, dict):
        return "not an object"
    for key in product:
        if key not in REQUIRED and key not in OPTIONAL:
            return f"unknown field {key}"
    for key in REQUIRED:
        if key not in product:
            return f"missing {key}"
    for key, value in product.items():
        if not isinstance(value, str):
            return f"{key} is not a string"
    if not gtin_is_valid(product["product_code"]):
        return "product_code is not a valid GTIN"
    if not product["product"].strip():
        return "product is empty"
    if not PRICE_RE.fullmatch(product["price"]):
        return "price is not a decimal-comma number"
    if not DIGITS_RE.fullmatch(product["amount"]):
        return "amount is not a whole number"
    if product["status"] not in ("A", "D", "H"):
        return "status is not A, D or H"
    return None


def unauthorized(request: Request) -> Response | None:
    """The answer to a request without the sandbox's Basic credentials (None: it has them)."""
    if basic_auth(request) == (USERNAME, PASSWORD):
        return None
    # invented: venddor.auth-401 (docs/sandbox.md)
    return json_response({"message": "Unauthorized", "status": 401}, 401)


def bad_request() -> Response:
    return json_response({"message": "Bad Request", "status": 400}, 400)


class VenddorSimulator(Simulator):
    name = "venddor"
    credentials = {"username": USERNAME, "password": PASSWORD}

    def _reset_state(self) -> None:
        self.products: dict[str, dict] = {}
        self.ids: dict[str, int] = {}
        self.next_id = FIRST_ID

    # invented: venddor.list-envelope (docs/sandbox.md)
    listing = "get-products"  # which of the apidoc's two list envelopes GET answers with

    def routes(self) -> list[Route]:
        return [Route("/api/products/", self.write(self._send), methods=["POST"]),
                Route("/api/products", self.read(self._list), methods=["GET"])]

    def error_response(self, status: int, message: str, headers: dict | None = None) -> Response:
        return json_response({"message": message, "status": status}, status, headers)

    def items(self, **_: Any) -> list[dict]:
        with self.lock:
            rows = [{"product_id": self.ids[code], **p} for code, p in self.products.items()]
        return sorted(rows, key=lambda r: r["product_id"])

    def stored(self, settings: Mapping[str, Any]) -> dict[tuple[str, str], dict]:
        view = {}
        for row in self.items():
            row.pop("product_id")
            view[("product", row["product_code"])] = row
        return view

    async def _send(self, request: Request, ex: Exchange) -> Response:
        refused = unauthorized(request)
        if refused is not None:
            return refused
        body = parse_body(ex.body)
        if ex.over_limit(body, MAX_PRODUCTS, "products"):
            return bad_request()  # invented: venddor.over-60 (docs/sandbox.md)
        fault = self.fault_gate(ex)
        if fault is not None:
            return fault
        if not isinstance(body, list) or not body:
            return bad_request()
        if any(product_problem(p) for p in body):
            return bad_request()
        ids = []
        with self.lock:
            for product in body:
                code = product["product_code"]
                if code not in self.ids:
                    self.ids[code] = self.next_id
                    self.next_id += 1
                self.products[code] = dict(product)
                ids.append(self.ids[code])
        # invented: venddor.product-ids (docs/sandbox.md)
        return json_response({"product_id": ids[0], "product_ids": ids}, 201)

    async def _list(self, request: Request, ex: Exchange) -> Response:
        refused = unauthorized(request)
        if refused is not None:
            return refused
        query = request.query_params
        try:
            page = int(query.get("page", 1))
            per_page = min(MAX_PER_PAGE, int(query.get("items_per_page", DEFAULT_PER_PAGE[self.listing])))
        except ValueError:
            return bad_request()
        if page < 1 or per_page < 1:
            return bad_request()
        rows = self.items()  # invented: venddor.list-order (docs/sandbox.md)
        shown = rows[(page - 1) * per_page:page * per_page]
        ex.items = len(shown)
        if self.listing == "products-api":
            return json_response({"products": [_products_api_row(row) for row in shown],
                                  "params": {"page": page, "items_per_page": per_page, "total_items": len(rows)}})
        return json_response({"products": [_get_products_row(row) for row in shown],
                              "pagination": {"total": len(rows), "per_page": per_page, "current_page": page,
                                             "last_page": max(1, -(-len(rows) // per_page))}})


# invented: venddor.list-price (docs/sandbox.md)
def _price(text: str) -> str:
    """A stored decimal-comma price as the listing shows it, every decimal stored and at
    least 2: ``"8,9"`` -> ``"8.90"``, ``"1,234"`` -> ``"1.234"``, ``"899"`` -> ``"899.00"``."""
    units, _, decimals = text.partition(",")
    return f"{units}.{decimals.ljust(2, '0')}"


def _get_products_row(row: dict) -> dict:
    return {"product_id": str(row["product_id"]), "product": row["product"], "product_code": row["product_code"],
            "amount": int(row["amount"]), "price": _price(row["price"]), "status": row["status"]}


def _products_api_row(row: dict) -> dict:
    return {"product_id": row["product_id"], "product": row["product"], "price": float(_price(row["price"])),
            "status": row["status"], "quantity": int(row["amount"])}
