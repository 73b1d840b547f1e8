"""VTEX Ads: two bulk upsert endpoints and no delete.

* ``POST /product/bulk/products`` takes a JSON array of full product objects (an upsert
  of the whole record); ``POST /product/bulk/inventories`` takes ``{product_sku, price,
  promotional_price, is_available}`` objects. Each ``Operation.record`` ("product" or
  "inventory") goes to its own endpoint, so the record kind is the group key.
* There is no delete. Deleting the "inventory" record sends the last confirmed
  inventory (its price, from ``before``) with ``is_available: false``; the "product"
  record cannot be deleted at all and is declared in ``capabilities.local_deletes`` so
  that the executor records it without a request.
* Auth is two headers, ``x-app-id`` and ``x-api-key``.
* 202 ``{"messages": ["products will be processed soon"]}`` only acknowledges receipt:
  the items are ``accepted``, never ``confirmed`` (VTEX processes them later, and its
  API has no endpoint to read a product, an inventory or a processing result back).
  A success without that object of messages (an HTML page, broken JSON, ``{}``) is
  an unexpected answer, sent again: never taken as accepted.
* 422 carries an Ajv-style list ``[{instancePath: "/3" | "/3/name", message, ...}]``:
  the whole request was refused because of the items it names. Those fail with their
  messages; the others are ``retry`` (sent again without the bad ones).
* 401/403, 429 and 5xx are the engine's (:mod:`reconciler.apply.http`).
* 500 items per request and 3 requests in flight; no byte limit, no rate window.
"""
from __future__ import annotations

import re
from typing import Hashable, Sequence

import httpx

from reconciler.providers._common import (
    JSON_HEADERS, body_excerpt, dumps, json_body, outcomes, split_or_fail, unexpected,
)
from reconciler.providers.base import Operation, Outcome, Provider, Request

ENDPOINTS = {"product": "/product/bulk/products", "inventory": "/product/bulk/inventories"}
_INDEX = re.compile(r"^/(\d+)(?:/(.*))?$")


class Wire(Provider):
    """VTEX Ads requests and answers (the declared data is in the package)."""

    def _headers(self) -> dict[str, str]:
        return {**JSON_HEADERS, "x-app-id": self.credentials.get("app_id", ""),
                "x-api-key": self.credentials.get("api_key", "")}

    # -- writing ---------------------------------------------------------------
    def group_key(self, op: Operation) -> Hashable:
        return op.record

    def element(self, op: Operation) -> dict:
        """The array element sent for one operation."""
        if op.record not in ENDPOINTS:
            raise ValueError(f"vtex_ads has no record kind {op.record!r}")
        if op.action != "delete":
            return op.after  # type: ignore[return-value]
        if op.record == "product":
            raise ValueError("vtex_ads has no product delete; the executor records it locally")
        before = op.before or {}
        return {
            "product_sku": before.get("product_sku", op.key),
            "price": before.get("price", 0),
            "promotional_price": before.get("promotional_price", 0),
            "is_available": False,
        }

    def item_size(self, op: Operation) -> int:
        return len(dumps(self.element(op)))

    def encode(self, ops: Sequence[Operation]) -> Request:
        if not ops:
            raise ValueError("encode needs at least one operation")
        record = ops[0].record
        if any(op.record != record for op in ops):
            raise ValueError("vtex_ads: one request carries one record kind")
        return Request(
            method="POST",
            path=ENDPOINTS[record],
            operations=tuple(ops),
            body=dumps([self.element(op) for op in ops]),
            headers=self._headers(),
            endpoint="products" if record == "product" else "inventories",
        )

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        status = response.status_code
        if 200 <= status < 300:
            body = json_body(response)
            if not (isinstance(body, dict) and isinstance(body.get("messages"), list)):
                raise unexpected(self.name, response)
            return outcomes(ops, "accepted")
        if status == 422:
            return self._validation(ops, json_body(response), response)
        return split_or_fail(ops, f"vtex_ads refused the request (HTTP {status}): {body_excerpt(response)}")

    def _validation(self, ops: Sequence[Operation], errors: object, response: httpx.Response) -> list[Outcome]:
        if isinstance(errors, dict):  # tolerate an envelope such as {"errors": [...]}
            errors = next((v for v in errors.values() if isinstance(v, list)), None)
        reasons: dict[int, list[str]] = {}
        for error in errors if isinstance(errors, list) else ():
            if not isinstance(error, dict):
                continue
            match = _INDEX.match(str(error.get("instancePath", "")))
            if not match or int(match.group(1)) >= len(ops):
                continue
            message = str(error.get("message") or error.get("keyword") or "invalid")
            if match.group(2):
                message = f"{match.group(2)}: {message}"
            reasons.setdefault(int(match.group(1)), []).append(message)
        if not reasons:
            return split_or_fail(ops, f"vtex_ads refused the request (HTTP 422): {body_excerpt(response)}")
        result = []
        for index, op in enumerate(ops):
            if index in reasons:
                result.append(Outcome(op, "failed", "; ".join(reasons[index])))
            else:
                result.append(Outcome(op, "retry", "refused with other items of its request"))
        return result
