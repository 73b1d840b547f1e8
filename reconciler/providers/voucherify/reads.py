"""Reading a Voucherify catalog back: ``GET /v1/products?limit=100&page=N&order=created_at``
(pages from 1, in a stable order), payloads ``{source_id, metadata}``; metadata keys
holding ``null`` are how this tool deletes, so they read back as absent and a product
left with no metadata reads as absent (it is not listed). Metadata is merged, so a key
the state never held is another system's.

The listing reaches only so far: ``limit`` is at most 100, and ``page`` at most 99 on
the sibling listings (``/v1/vouchers``, ``/v1/customers``, ``/v1/redemptions``: "the
highest value is 99", a fix of the shared page parameter "reported by a client") while
the products listing still says 100. Page 99 is safe under both readings, so past
9,900 products the listing is incomplete (``Page.incomplete``) and the rest is read one
product at a time, ``GET /v1/products/{source_id}`` (a path that takes a product id or
a source id)."""
from __future__ import annotations

from typing import Any, Callable, Sequence
from urllib.parse import quote

import httpx

from reconciler.manifest.models import Target
from reconciler.providers._common import read_body, unexpected
from reconciler.providers.base import FieldPath, Operation, Page, Request
from reconciler.providers.voucherify.wire import Wire, api_message

MAX_PAGE = 99


def _item(product: Any) -> tuple[str, str, dict] | None:
    """``(record, key, payload)`` of a product holding metadata; None for one without
    (never set by this tool, or deleted: every key nulled)."""
    if not isinstance(product, dict) or product.get("source_id") is None:
        return None
    metadata = {k: v for k, v in (product.get("metadata") or {}).items() if v is not None}
    if not metadata:
        return None
    source_id = str(product["source_id"])
    return "product", source_id, {"source_id": source_id, "metadata": metadata}


class Reads(Wire):
    """Voucherify reads (the declared data is in the package)."""

    read_page_size = 100  # the documented maximum of ``limit``

    @staticmethod
    def ownership(target: Target) -> Callable[[FieldPath], bool]:
        return lambda path: len(path) == 1  # a metadata key: ours only if the state holds it

    @staticmethod
    def reads_as_absent(payload: dict) -> bool:
        return not payload.get("metadata")

    @staticmethod
    def adoptable(remote: dict, known: Sequence[dict], owned: Callable[[FieldPath], bool]) -> dict:
        """Only the metadata keys the manifests or the state hold."""
        keys = {k for payload in known for k in (payload.get("metadata") or {})}
        return {**remote, "metadata": {k: v for k, v in (remote.get("metadata") or {}).items() if k in keys}}

    def read_request(self, cursor: str | None) -> Request:
        page = int(cursor) if cursor else 1
        return Request(method="GET", path="/v1/products",
                       params={"limit": str(self.read_page_size), "page": str(page), "order": "created_at"},
                       headers=self._headers(body=False), endpoint="products", write=False)

    def decode_read(self, response: httpx.Response) -> Page:
        body = read_body(self.name, response, api_message)
        products, total = body.get(body.get("data_ref") or "products"), body.get("total")
        if not isinstance(products, list) or not isinstance(total, int):
            raise unexpected(self.name, response)
        items = [entry for entry in map(_item, products) if entry is not None]
        params = response.request.url.params
        page, limit = int(params.get("page", "1")), int(params.get("limit", str(self.read_page_size)))
        if not products or page * limit >= total:
            return Page(items=items, cursor=None)
        if page >= MAX_PAGE:
            return Page(items=items, cursor=None,
                        incomplete=f"the catalog has {total:,} products, and the API lists at most "
                                   f"{MAX_PAGE * limit:,} ({MAX_PAGE} pages of {limit})")
        return Page(items=items, cursor=str(page + 1))

    def read_item_request(self, record: str, key: str) -> Request:
        return Request(method="GET", path=f"/v1/products/{quote(key, safe='')}",
                       headers=self._headers(body=False), endpoint="product", write=False)

    def decode_read_item(self, response: httpx.Response) -> tuple[str, str, dict] | None:
        if response.status_code == 404:
            return None
        product = read_body(self.name, response, api_message)
        if product.get("source_id") is None:  # not a product: never read as "absent" (a delete would be skipped)
            raise unexpected(self.name, response)
        return _item(product)

    def read_before_delete(self, op: Operation, resend: bool) -> bool:
        return True  # the metadata endpoint upserts: nulling a missing product's keys would create it
