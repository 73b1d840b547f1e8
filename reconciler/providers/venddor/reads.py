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
is given in the mapping's shape (``"8,99"``, ``"230"``). A listing names no currency,
so a read price keeps the decimals it was read with (at least 2), prices compare by
amount (a JPY ``899`` sent is ``"899.00"`` read, and the same), and ``import`` keeps the
price as the manifests write it where the amount is the same (:meth:`Reads.adoptable`). Fields no listing returns
(brand, weight, ncm, internal_product_code, ...) are not compared
(:meth:`Reads.normalise_read`). A product with status ``D`` (disabled: what a delete
leaves, since the API has no delete) is not listed as present, and the state's own
disabled products are expected so (:meth:`Reads.reads_as_absent`).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Sequence

import httpx

from reconciler.providers._common import is_count, read_body, unexpected
from reconciler.providers.base import FieldPath, Page, Provider, Request
from reconciler.providers.venddor.mapping import amount, price
from reconciler.providers.venddor.wire import Wire

LIST_PATH = "/api/products"
READ_PAGE = 50
LISTED = ("product_code", "product", "price", "amount", "status")  # what every keyed listing row gives


def _message(body: Any) -> str | None:
    return str(body.get("message")) if isinstance(body, dict) and body.get("message") else None


def _last(body: dict, page: int, listed: int) -> bool | None:
    """Whether ``page`` is the last one, from either envelope (None: not said)."""
    pagination, params = body.get("pagination"), body.get("params")
    if isinstance(pagination, dict) and is_count(pagination.get("last_page")):
        return page >= pagination["last_page"]
    if isinstance(params, dict) and is_count(params.get("total_items")):
        per_page = params.get("items_per_page")
        if not (is_count(per_page) and per_page > 0):
            per_page = listed
        return page * per_page >= params["total_items"]
    return None


def _price_text(value: Decimal) -> str:
    """A price in the mapping's shape with its own decimals, at least 2 (a listing names
    no currency)."""
    return price(value, max(2, -int(value.as_tuple().exponent)))


class Reads(Wire):
    """Venddor reads (the declared data is in the package)."""

    @staticmethod
    def normalise_read(payload: dict) -> dict:
        listed = {k: v for k, v in payload.items() if k in LISTED}
        value = amount(listed.get("price"))
        if value is not None:  # compared by amount: "899" (JPY) as sent is "899.00" as read
            listed["price"] = _price_text(value.normalize())
        return listed

    @staticmethod
    def adoptable(remote: dict, known: Sequence[dict], owned: Callable[[FieldPath], bool]) -> dict:
        """What a read gives, its price written as the manifests or the state write that
        amount (``"899"`` for a JPY price read as ``"899,00"``)."""
        adopted = Provider.adoptable(remote, known, owned)
        read = amount(adopted.get("price"))
        written = [p["price"] for p in known if "price" in p and read is not None and amount(p["price"]) == read]
        return {**adopted, "price": written[0]} if written else adopted

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
        value, stocked = amount(product.get("price")), amount(stock)
        if not (isinstance(code, str) and isinstance(product.get("product"), str)
                and product.get("status") in ("A", "D", "H") and value is not None and stocked is not None
                and stocked == stocked.to_integral_value() and not isinstance(stock, bool)):
            raise unexpected(self.name, response)
        return {"product_code": code, "product": product["product"], "price": _price_text(value),
                "amount": str(int(stocked)), "status": product["status"]}
