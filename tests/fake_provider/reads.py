"""Reading a FakeShop catalog back: ``GET /api/shops/{shop}/items?after={id}&limit=100``
answers ``{"items": [{"id", "fields"}], "next": id | null}`` in id order; the fields
are the mapping's payload as sent."""
from __future__ import annotations

import httpx

from reconciler.providers._common import read_body
from reconciler.providers.base import Page, Request

from fake_provider.wire import Wire

PAGE_SIZE = 100


def _error(body: object) -> str | None:
    return body.get("error") if isinstance(body, dict) else None


class Reads(Wire):
    """FakeShop reads (the declared data is in the package)."""

    def read_request(self, cursor: str | None) -> Request:
        params = {"limit": str(PAGE_SIZE), **({"after": cursor} if cursor else {})}
        return Request(method="GET", path=f"{self._base}/items", params=params, headers=self._headers(),
                       endpoint="items", write=False)

    def decode_read(self, response: httpx.Response) -> Page:
        body = read_body(self.name, response, _error)
        items = [("product", str(item["id"]), item.get("fields") or {}) for item in body.get("items") or ()]
        return Page(items=items, cursor=body.get("next"))
