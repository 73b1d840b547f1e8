"""Reading a Meta catalog back, a page at a time:
``GET /{v}/{catalog_id}/products?limit=1000&fields=...&after=cursor``. Payloads come
back in the mapping's shape (prices in minor units). The read asks only for mapped
fields, so every field it returns is ours (drift reports any the state lacks)."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from reconciler.manifest.currencies import exponent
from reconciler.providers._common import json_body, read_error
from reconciler.providers.base import Page, Request
from reconciler.providers.meta_catalog.wire import AUTH_CODES, RATE_LIMIT_CODES, Wire

# The fields of the mapping's payload, read back from the catalog.
READ_FIELDS = ("retailer_id", "name", "description", "url", "image_url", "brand", "availability",
               "condition", "price", "currency", "sale_price", "gtin", "additional_image_urls",
               "category")
PRICE_FIELDS = ("price", "sale_price")


class Reads(Wire):
    """Meta Catalog reads (the declared data is in the package)."""

    read_page_size = 1000

    @staticmethod
    def normalise_read(payload: dict) -> dict:
        """``""`` and ``[]`` are absent: an empty string is how a Meta field is unset,
        and the Graph API omits unset fields."""
        return {k: v for k, v in payload.items() if v != "" and v != []}

    def read_request(self, cursor: str | None) -> Request:
        params = {"limit": str(self.read_page_size), "fields": ",".join(READ_FIELDS)}
        if cursor:
            params["after"] = cursor
        return Request(method="GET", path=f"{self._prefix}/products", params=params,
                       headers=self._headers(body=False), endpoint="products", write=False)

    def decode_read(self, response: httpx.Response) -> Page:
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            error = self._graph_error(response) or {}
            if error.get("code") in AUTH_CODES:
                self._error_outcomes((), response)  # raises ConfigError
            exc = read_error(self.name, response, error.get("message"))
            if error.get("code") in RATE_LIMIT_CODES or error.get("is_transient"):
                exc.transient = True
            raise exc
        items = []
        for product in body.get("data") or ():
            if not isinstance(product, dict) or product.get("retailer_id") is None:
                continue
            items.append(("product", str(product["retailer_id"]), product_payload(product)))
        paging = body.get("paging") or {}
        after = (paging.get("cursors") or {}).get("after")
        cursor = str(after) if after and paging.get("next") else None
        return Page(items=items, cursor=cursor)


def product_payload(product: dict[str, Any]) -> dict[str, Any]:
    """A product as the Graph API returns it, in the mapping's shape: only the mapped
    fields, no unset ("") fields, prices as integer minor units."""
    payload: dict[str, Any] = {}
    currency = product.get("currency")
    for field in READ_FIELDS[1:]:
        value = product.get(field)
        if value is None or value == "" or value == []:
            continue
        if field in PRICE_FIELDS:
            value = minor_units(value, currency)
            if value is None:
                continue
        payload[field] = value
    if "currency" not in payload:
        for field in PRICE_FIELDS:  # "8.99 USD" carries its currency
            raw = product.get(field)
            if isinstance(raw, str):
                code = re.search(r"\b([A-Z]{3})\b", raw)
                if code:
                    payload["currency"] = code.group(1)
                    break
    return payload


def minor_units(value: Any, currency: str | None) -> int | None:
    """Integer minor units from what the Graph API returns: an integer (minor units
    already) or a formatted string such as ``"8.99 USD"``, ``"$8.99"``, ``"1,299.00"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    code = re.search(r"\b([A-Z]{3})\b", text)
    currency = currency or (code.group(1) if code else None)
    number = re.sub(r"[^0-9.,]", "", text)
    if not number:
        return None
    if "," in number and "." in number:
        number = number.replace(",", "")
    elif "," in number:
        number = number.replace(",", ".")
    if isinstance(value, str) and "." not in number and not code and not re.search(r"[^\d]", text.strip()):
        return int(number)  # a bare digit string: minor units, as written
    try:
        return int((Decimal(number) * 10 ** exponent(currency or "USD")).to_integral_value())
    except InvalidOperation:
        return None
