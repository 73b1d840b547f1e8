"""Reading a Voucherify catalog back: ``GET /v1/products?limit=100&page=N`` (pages from
1), payloads ``{source_id, metadata}``; metadata keys holding ``null`` are how this
tool deletes, so they read back as absent and a product left with no metadata reads as
absent (it is not listed). Metadata is merged, so a key the state never held is another
system's."""
from __future__ import annotations

from typing import Callable, Sequence

import httpx

from reconciler.manifest.models import Target
from reconciler.providers._common import read_body
from reconciler.providers.base import FieldPath, Page, Request
from reconciler.providers.voucherify.wire import Wire, api_message

PAGE_SIZE = 100


class Reads(Wire):
    """Voucherify reads (the declared data is in the package)."""

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
                       params={"limit": str(PAGE_SIZE), "page": str(page)},
                       headers=self._headers(body=False), endpoint="products", write=False)

    def decode_read(self, response: httpx.Response) -> Page:
        body = read_body(self.name, response, api_message)
        products = body.get(body.get("data_ref") or "products") or []
        items = []
        for product in products:
            if not isinstance(product, dict) or product.get("source_id") is None:
                continue
            metadata = {k: v for k, v in (product.get("metadata") or {}).items() if v is not None}
            if not metadata:
                continue  # never set by this tool, or deleted (every key nulled)
            source_id = str(product["source_id"])
            items.append(("product", source_id, {"source_id": source_id, "metadata": metadata}))
        page = int(response.request.url.params.get("page", "1"))
        limit = int(response.request.url.params.get("limit", str(PAGE_SIZE)))
        total = body.get("total")
        more = (page * limit < total) if isinstance(total, int) else len(products) >= limit
        return Page(items=items, cursor=str(page + 1) if more and products else None)

