"""Meta (Facebook) Catalog Batch API: asynchronous batches with handles.

* ``POST /{api_version}/{catalog_id}/batch`` with ``{"requests": [...], "allow_upsert":
  false}``; each request is ``{method, retailer_id, data}``. CREATE sends the whole
  payload; UPDATE sends only the fields that changed or were added, and ``""`` for a
  removed field (an empty string unsets a field on Meta, ``null`` does not); DELETE has
  no data. ``allow_upsert`` is false so that an UPDATE never silently creates.
* The token goes in ``Authorization: Bearer`` (the seed puts it in the body; the Graph
  API accepts either, and a header keeps it out of bodies whose size we measure/log).
* The answer is ``{"handles": [h], "validation_status": [{retailer_id, errors,
  warnings}]}``: items with validation errors are rejected at once; the others are
  ``pending`` on ``Job(h)``. An empty ``handles`` means nothing was ingested: the
  remaining items are retried.
* ``GET /{v}/{catalog_id}/check_batch_request_status?handle=h`` answers ``{"data":
  [{status, errors: [{line, id, message}], ids_of_invalid_requests, ...}]}``. While the
  status is not final (scheduled, dispatched, started) the job is still running;
  ``finished`` settles it (items named in ``errors`` by ``id`` = retailer_id, or by
  ``line`` when there is no usable id, were not saved); ``error``/``canceled`` retry all.
* Graph error envelope ``{"error": {message, type, code, error_subcode, is_transient}}``:
  80014 (batch calls), 80009 (status calls) and the generic throttling codes 4, 17,
  32 and 613 are rate limits; ``is_transient`` errors are retried; 190 (bad token) stops
  the target; anything else refuses the operations of that call with its message.
* Limits: 5000 requests per call, 100 calls per hour per catalog.
* Read: ``GET /{v}/{catalog_id}/products?limit=1000&fields=...&after=cursor``;
  payloads come back in the mapping's shape (prices in minor units).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Hashable, Sequence

import httpx

from reconciler.errors import ConfigError
from reconciler.manifest.currencies import exponent
from reconciler.providers._common import (
    JSON_HEADERS, body_excerpt, diff_fields, dumps, json_body, outcomes, read_error, refusal, retry_after,
    setting,
)
from reconciler.providers.base import (
    Capabilities, Job, Limits, Operation, Outcome, Page, Provider, Request,
)

RATE_LIMIT_CODES = {4, 17, 32, 613, 80009, 80014}
AUTH_CODES = {190}
FINAL = {"finished", "error", "canceled", "cancelled"}
# The fields of the mapping's payload, read back from the catalog.
READ_FIELDS = ("retailer_id", "name", "description", "url", "image_url", "brand", "availability",
               "condition", "price", "currency", "sale_price", "gtin", "additional_image_urls",
               "category")
PRICE_FIELDS = ("price", "sale_price")


class MetaCatalog(Provider):
    name = "meta_catalog"
    key_field = "retailer_id"
    limits = Limits(max_items_per_request=5000, max_requests_per_window=100, window_seconds=3600)
    capabilities = Capabilities(
        records=("product",),
        update_mode="partial",
        delete="DELETE request in a batch",
        readable=True,
        asynchronous=True,
    )
    auth_keys = ("access_token",)
    setting_keys = ("catalog_id", "api_version")
    limit_scope = ("catalog_id",)
    default_base_url = "https://graph.facebook.com"
    read_page_size = 1000

    @property
    def _prefix(self) -> str:
        version = str(setting(self.name, self.settings, "api_version")).strip("/")
        catalog = str(setting(self.name, self.settings, "catalog_id"))
        return f"/{version}/{catalog}"

    def _headers(self, body: bool = True) -> dict[str, str]:
        headers = dict(JSON_HEADERS) if body else {"Accept": "application/json"}
        headers["Authorization"] = f"Bearer {self.credentials.get('access_token', '')}"
        return headers

    # -- writing ---------------------------------------------------------------
    def group_key(self, op: Operation) -> Hashable:
        return "batch"

    def element(self, op: Operation) -> dict:
        """One entry of ``requests``."""
        if op.action == "create":
            return {"method": "CREATE", "retailer_id": op.key, "data": op.after}
        if op.action == "delete":
            return {"method": "DELETE", "retailer_id": op.key}
        changed, removed = diff_fields(op.before, op.after)
        for field in removed:
            changed[field] = ""
        return {"method": "UPDATE", "retailer_id": op.key, "data": changed}

    def item_size(self, op: Operation) -> int:
        return len(dumps(self.element(op)))

    def encode(self, ops: Sequence[Operation]) -> Request:
        if not ops:
            raise ValueError("encode needs at least one operation")
        body = {"requests": [self.element(op) for op in ops], "allow_upsert": False}
        return Request(method="POST", path=f"{self._prefix}/batch", operations=tuple(ops),
                       body=dumps(body), headers=self._headers(), endpoint="batch")

    def _graph_error(self, response: httpx.Response) -> dict | None:
        body = json_body(response)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return body["error"]
        return None

    def _error_outcomes(self, ops: Sequence[Operation], response: httpx.Response) -> list[Outcome]:
        """Outcomes of a call that failed as a whole (raises for a bad token)."""
        status = response.status_code
        error = self._graph_error(response) or {}
        code = error.get("code")
        message = str(error.get("message") or body_excerpt(response) or f"HTTP {status}")
        described = f"meta_catalog error {code}: {message}" if code is not None else f"meta_catalog: {message}"
        if code in AUTH_CODES or (status == 401 and not error):
            raise ConfigError(
                f"meta_catalog refused the target's access token (HTTP {status}, code {code}); "
                "check the target's auth (access_token)"
            )
        if code in RATE_LIMIT_CODES or status == 429:
            return outcomes(ops, "retry", described, retry_after=retry_after(response), rate_limited=True)
        if error.get("is_transient") or status >= 500:
            return outcomes(ops, "retry", described, retry_after=retry_after(response))
        return outcomes(ops, "rejected", described)

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            if response.status_code == 200 and not isinstance(body, dict):
                return outcomes(ops, "retry", f"meta_catalog: unreadable answer: {body_excerpt(response)}")
            return self._error_outcomes(ops, response)

        rejected: dict[str, str] = {}
        for status in body.get("validation_status") or ():
            if not isinstance(status, dict):
                continue
            errors = [str(e.get("message", e)) if isinstance(e, dict) else str(e)
                      for e in status.get("errors") or ()]
            if errors:
                rejected[str(status.get("retailer_id"))] = "; ".join(errors)

        handles = [h for h in body.get("handles") or () if h]
        accepted = tuple(op for op in ops if op.key not in rejected)
        job = Job(handle=str(handles[0]), operations=accepted) if handles and accepted else None
        result = []
        for op in ops:
            if op.key in rejected:
                result.append(Outcome(op, "rejected", rejected[op.key]))
            elif job is not None:
                result.append(Outcome(op, "pending", job=job))
            else:
                result.append(Outcome(op, "retry", "meta_catalog returned no handle: nothing was ingested"))
        return result

    # -- asynchronous work -------------------------------------------------------
    def poll_request(self, job: Job) -> Request:
        return Request(method="GET", path=f"{self._prefix}/check_batch_request_status",
                       operations=job.operations, params={"handle": job.handle},
                       headers=self._headers(body=False), endpoint="check_batch_request_status",
                       write=False)

    def decode_poll(self, job: Job, response: httpx.Response) -> list[Outcome] | None:
        ops = job.operations
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            error = self._graph_error(response) or {}
            code = error.get("code")
            if code in AUTH_CODES or (response.status_code == 401 and not error):
                self._error_outcomes(ops, response)  # raises ConfigError
            if (code in RATE_LIMIT_CODES or error.get("is_transient") or response.status_code == 429
                    or response.status_code >= 500 or not isinstance(body, dict)):
                # The batch is still on Meta's side: only the status call failed.
                # Poll again later rather than sending the items a second time.
                return None
            message = str(error.get("message") or body_excerpt(response))
            return outcomes(ops, "retry", f"meta_catalog could not report on batch {job.handle}: {message}")

        data = body.get("data")
        entry = None
        if isinstance(data, list):
            entry = next((d for d in data if isinstance(d, dict) and d.get("handle") in (None, job.handle)), None)
        elif isinstance(body.get("status"), str):
            entry = body
        if entry is None:
            return None
        status = str(entry.get("status", "")).lower()
        if status not in FINAL:
            return None
        if status != "finished":
            return outcomes(ops, "retry", f"meta_catalog batch {job.handle} ended with status {status!r}")

        by_key: dict[str, list[int]] = {}
        for index, op in enumerate(ops):
            by_key.setdefault(op.key, []).append(index)
        reasons: dict[int, list[str]] = {}
        for error in entry.get("errors") or ():
            if not isinstance(error, dict):
                continue
            message = str(error.get("message") or "refused")
            indexes = by_key.get(str(error.get("id"))) if error.get("id") is not None else None
            if not indexes:
                line = error.get("line")
                if isinstance(line, int) and 0 <= line < len(ops):
                    indexes = [line]
                elif isinstance(line, str) and line.isdigit() and int(line) < len(ops):
                    indexes = [int(line)]
            for index in indexes or ():
                reasons.setdefault(index, []).append(message)
        for invalid in entry.get("ids_of_invalid_requests") or ():
            for index in by_key.get(str(invalid), ()):
                reasons.setdefault(index, ["refused by meta_catalog (invalid request)"])
        return [
            refusal(op, "; ".join(reasons[i])) if i in reasons else Outcome(op, "applied")
            for i, op in enumerate(ops)
        ]

    # -- reading -------------------------------------------------------------------
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
            if error.get("code") in AUTH_CODES or response.status_code == 401:
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
