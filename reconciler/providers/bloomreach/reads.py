"""Reading a Bloomreach catalog back: the documented ``count``/``skip`` listing, which
stops at count + skip ≤ 1001; past that the listing is incomplete (``Page.incomplete``),
and items are read one by one with ``GET …/items/{item_id}`` (drift does so for the
items of the state, ``status --verify`` for the items only accepted). The listing is
asked for in a stable order, ``order=item_id asc`` (the documented "column_name asc"
form): no default order is documented, and pages of an unordered listing may overlap
or miss items while the catalog changes.

In ``partial`` update mode properties are merged, so another system may own some: a
property only the remote holds is ours only if our mapping can produce it. In ``full``
mode a replace owns every property."""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import quote

import httpx

from reconciler.providers._common import read_body, unexpected
from reconciler.manifest.models import Target
from reconciler.providers.base import FieldPath, Page, Request
from reconciler.providers.bloomreach.mapping import mapped_properties
from reconciler.providers.bloomreach.wire import Wire, flatten

READ_PAGE = 1000
READ_REACH = 1001  # the API lists items only while count + skip <= 1001
ORDER = "item_id asc"


def _item(data: Any) -> tuple[str, str, dict] | None:
    """``(record, key, payload)`` of a listed or read ``{item_id, properties}``."""
    if not isinstance(data, dict) or data.get("item_id") is None:
        return None
    properties = {k: v for k, v in (data.get("properties") or {}).items() if v is not None}
    return "product", str(data["item_id"]), properties


def _errors_text(body: Any) -> str | None:
    return "; ".join(flatten(body.get("errors"))) if isinstance(body, dict) else None


class Reads(Wire):
    """Bloomreach reads (the declared data is in the package)."""

    @staticmethod
    def ownership(target: Target) -> Callable[[FieldPath], bool]:
        if (target.settings.get("update_mode") or "partial") == "full":
            return lambda path: True
        names = mapped_properties(target)
        return lambda path: len(path) > 1 or path[0] in names

    def read_request(self, cursor: str | None) -> Request:
        """``GET …/items?count=&skip=``; the cursor is the next ``skip``."""
        skip = int(cursor or 0)
        return Request(method="GET", path=self._base,
                       params={"count": str(min(READ_PAGE, READ_REACH - skip)), "skip": str(skip), "order": ORDER},
                       headers=self._headers(body=False), endpoint="items", write=False)

    def decode_read(self, response: httpx.Response) -> Page:
        body = read_body(self.name, response, _errors_text)
        data = body.get("data")
        if not isinstance(data, list):  # not a listing: never an empty last page (every item "missing")
            raise unexpected(self.name, response)
        items = [entry for entry in map(_item, data) if entry is not None]
        params = response.request.url.params
        listed = int(params.get("skip", 0)) + len(data)
        if len(data) < int(params.get("count", READ_PAGE)):  # the last page
            return Page(items=items, cursor=None)
        if listed < READ_REACH:
            return Page(items=items, cursor=str(listed))
        total = body.get("total")
        if isinstance(total, int) and total <= listed:
            return Page(items=items, cursor=None)
        size = f"{total:,} items" if isinstance(total, int) else f"more than {listed:,} items"
        return Page(items=items, cursor=None,
                    incomplete=f"the catalog has {size}, and the API lists at most {READ_REACH:,} "
                               f"(count + skip <= {READ_REACH})")

    def read_item_request(self, record: str, key: str) -> Request:
        return Request(method="GET", path=f"{self._base}/{quote(key, safe='')}",
                       headers=self._headers(body=False), endpoint="item", write=False)

    def decode_read_item(self, response: httpx.Response) -> tuple[str, str, dict] | None:
        if response.status_code == 404:
            return None
        data = read_body(self.name, response, _errors_text).get("data")
        if not isinstance(data, dict) or data.get("item_id") is None:  # not an item: never read as "absent"
            raise unexpected(self.name, response)
        return _item(data)
