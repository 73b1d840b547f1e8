"""Reading a Venddor account's products back: the apidoc's paginated listing,
``GET /api/products?page=&items_per_page=`` (pages numbered from 1).

The apidoc shows it twice, with two envelopes, and both are read:

* its "Get Products" page: ``{"products": [{"product_id", "product", "product_code",
  "amount", "price": "89.90", "status"}], "pagination": {"total", "per_page",
  "current_page", "last_page"}}``;
* its "Products API" page: ``{"products": [{"product_id", "product", "price": 199.99,
  "status", "quantity", ...}], "params": {"page", "items_per_page", "total_items"}}``.

The listing ends at ``last_page``, or once ``total_items`` are listed, or at an empty
page. No maximum page size is documented: :data:`READ_PAGE` are asked for, and the
answer says how many it gave. A product is keyed by its ``product_code`` (our item key);
the "Products API" rows carry none, and no filter by ``product_code`` or single read
by it is documented, so a listing with such rows cannot be used (the read says so).

What a read returns differs from what is sent: the price with a decimal point (or a
number) rather than a comma, the stock as a number, as ``amount`` or ``quantity``; it
is given in the mapping's shape (``"8,99"``, ``"230"``). Fields no listing returns
(brand, weight, ncm, internal_product_code, ...) are not compared
(:meth:`Reads.normalise_read`). A product with status ``D`` (disabled: what a delete
leaves, since the API has no delete) is not listed as present, and the state's own
disabled products are expected so (:meth:`Reads.reads_as_absent`).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from reconciler.providers._common import read_body, unexpected
from reconciler.providers.base import Page, Request
from reconciler.providers.venddor.mapping import price
from reconciler.providers.venddor.wire import Wire

LIST_PATH = "/api/products"
READ_PAGE = 50
LISTED = ("product_code", "product", "price", "amount", "status")  # what every keyed listing row gives


def _message(body: Any) -> str | None:
    return str(body.get("message")) if isinstance(body, dict) and body.get("message") else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _last(body: dict, page: int, listed: int) -> bool | None:
    """Whether ``page`` is the last one, from either envelope (None: not said)."""
    pagination, params = body.get("pagination"), body.get("params")
    if isinstance(pagination, dict) and _count(pagination.get("last_page")) is not None:
        return page >= pagination["last_page"]
    if isinstance(params, dict) and _count(params.get("total_items")) is not None:
        per_page = _count(params.get("items_per_page")) or listed
        return page * per_page >= params["total_items"]
    return None


class Reads(Wire):
    """Venddor reads (the declared data is in the package)."""

    @staticmethod
    def normalise_read(payload: dict) -> dict:
        return {k: v for k, v in payload.items() if k in LISTED}

    @staticmethod
    def reads_as_absent(payload: dict) -> bool:
        return payload.get("status") == "D"

    def read_request(self, cursor: str | None) -> Request:
        """``GET /api/products?page=&items_per_page=``; the cursor is the next page."""
        return Request(method="GET", path=LIST_PATH, params={"page": cursor or "1", "items_per_page": str(READ_PAGE)},
                       headers={"Authorization": self._headers()["Authorization"], "Accept": "application/json"},
                       endpoint="products", write=False)

    def decode_read(self, response: httpx.Response) -> Page:
        body = read_body(self.name, response, _message)
        products = body.get("products")
        if not isinstance(products, list) or not all(isinstance(p, dict) for p in products):
            raise unexpected(self.name, response)
        page = int(response.request.url.params.get("page", "1"))
        items, unkeyed = [], 0
        for product in products:
            payload = self._payload(product, response)
            if payload is None:
                unkeyed += 1
            elif payload["status"] != "D":
                items.append(("product", payload["product_code"], payload))
        if unkeyed:
            return Page(items=items, cursor=None, incomplete=(
                f"{unkeyed} listed products carry no product_code (the item key), and the API documents no other "
                "way to find a product by it"))
        last = _last(body, page, len(products))
        return Page(items=items, cursor=None if last or not products else str(page + 1))

    def _payload(self, product: dict, response: httpx.Response) -> dict | None:
        """A listed product in the mapping's shape (None: it carries no product_code)."""
        code = product.get("product_code")
        if code is None:
            return None
        stock = product.get("amount", product.get("quantity"))
        try:
            amount = Decimal(str(stock))
            value = Decimal(str(product["price"]).replace(",", "."))
            valid = (isinstance(code, str) and isinstance(product.get("product"), str)
                     and product.get("status") in ("A", "D", "H") and value.is_finite() and amount.is_finite()
                     and amount == amount.to_integral_value() and not isinstance(stock, bool))
        except (KeyError, InvalidOperation):
            valid = False
        if not valid:
            raise unexpected(self.name, response)
        return {"product_code": code, "product": product["product"], "price": price(value),
                "amount": str(int(amount)), "status": product["status"]}
