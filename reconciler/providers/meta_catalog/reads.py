"""Reading a Meta catalog back, a page at a time:
``GET /{v}/{catalog_id}/products?limit=1000&fields=...&after=cursor``. Payloads come
back in the mapping's shape, prices in minor units (:mod:`reconciler.providers.meta_catalog.prices`;
a price that cannot be read is a read error naming the item, never a guess). The read
asks only for mapped fields, so every field it returns is ours (drift reports any the
state lacks).

Meta warns about this listing: "Do not use pagination on this end point. Pagination is
incomplete and can result in duplicate or missing products." So its last page says the
listing is incomplete (``Page.incomplete``): drift, ``plan --refresh`` and ``import``
then read each item they know of that the listing did not return, one at a time
(``filter={"retailer_id":{"eq":…}}``), before calling it missing, and say that remote
items they do not know of may have been missed. An item listed twice counts once."""
from __future__ import annotations

from typing import Any

import httpx
import orjson

from reconciler.providers._common import json_body, read_error, unexpected
from reconciler.providers.base import Operation, Page, ReadError, Request
from reconciler.providers.meta_catalog import graph
from reconciler.providers.meta_catalog.prices import PriceError, minor_units
from reconciler.providers.meta_catalog.wire import Wire

# The fields of the mapping's payload, read back from the catalog.
READ_FIELDS = ("retailer_id", "name", "description", "url", "image_url", "brand", "availability",
               "condition", "price", "currency", "sale_price", "gtin", "additional_image_urls",
               "category")
PRICE_FIELDS = ("price", "sale_price")
LISTING_INCOMPLETE = ("Meta documents its product listing as incomplete (its pages may miss or repeat "
                      "products)")


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
        data, body = self._data(response)
        items = [("product", str(product["retailer_id"]), product_payload(product))
                 for product in data if isinstance(product, dict) and product.get("retailer_id") is not None]
        paging = body.get("paging") or {}
        after = (paging.get("cursors") or {}).get("after")
        if after and paging.get("next"):
            return Page(items=items, cursor=str(after))
        return Page(items=items, cursor=None, incomplete=LISTING_INCOMPLETE)

    def read_item_request(self, record: str, key: str) -> Request:
        params = {"filter": orjson.dumps({"retailer_id": {"eq": key}}).decode(), "fields": ",".join(READ_FIELDS)}
        return Request(method="GET", path=f"{self._prefix}/products", params=params,
                       headers=self._headers(body=False), endpoint="product", write=False)

    def decode_read_item(self, response: httpx.Response) -> tuple[str, str, dict] | None:
        data, _ = self._data(response)
        wanted = orjson.loads(response.request.url.params["filter"])["retailer_id"]["eq"]
        product = next((p for p in data if isinstance(p, dict) and str(p.get("retailer_id")) == wanted), None)
        return None if product is None else ("product", wanted, product_payload(product))

    def read_before_delete(self, op: Operation, resend: bool) -> bool:
        """A delete sent again reads first: Meta refuses a delete of an item that is not
        there, and that refusal's message may be missing from the status's sample."""
        return resend

    def _data(self, response: httpx.Response) -> tuple[list, dict]:
        """The ``data`` list of a read, and its body; raises what a Graph error means."""
        body = json_body(response)
        error = graph.error_of(response)
        if response.status_code == 200 and error is None:
            if isinstance(body, dict) and isinstance(body.get("data"), list):
                return body["data"], body
            raise unexpected(self.name, response)
        if graph.stops(graph.code_of(error)):
            raise graph.stop(response, error)
        exc = read_error(self.name, response, (error or {}).get("message"))
        exc.transient = graph.transient(error) or graph.code_of(error) == graph.TOO_LARGE
        raise exc


def product_payload(product: dict[str, Any]) -> dict[str, Any]:
    """A product as the Graph API returns it, in the mapping's shape: only the mapped
    fields, no unset ("") fields, prices as integer minor units."""
    currency = product.get("currency") or None
    payload: dict[str, Any] = {}
    for field in READ_FIELDS[1:]:
        value = product.get(field)
        if value is None or value == "" or value == []:
            continue
        if field in PRICE_FIELDS:
            try:
                value = minor_units(value, currency)
            except PriceError as exc:
                raise ReadError(f"meta_catalog: item {product.get('retailer_id')}: its {field} cannot be read: "
                                f"{exc}") from None
        payload[field] = value
    return payload

