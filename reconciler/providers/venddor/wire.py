"""Venddor: one full-upsert endpoint, every value a string, no item-level errors.

* ``POST /api/products/`` takes a JSON array of at most 60 products; every value is a
  string (the price with a decimal comma, ``"8,99"``). The item key is
  ``product_code``, the GTIN.
* There is no delete: a deleted product is the last confirmed payload (``before``)
  re-sent with ``status: "D"`` (disabled).
* Auth is HTTP Basic (``username``/``password``).
* 201 answers ``{"product_id": n, "product_ids": [n, ...]}``, one id per product in
  request order: each operation is confirmed with its id as ``remote_id``. A success
  without one id per product (an HTML page, broken JSON, ``{}``, ids that do not
  match the products sent) is an unexpected answer, sent again: never confirmed.
* 400 is always the bare ``{"message": "Bad Request", "status": 400}``: the API does
  not say which product is at fault, so a request of several products is ``split``
  (the executor bisects) and a lone product is rejected.
* No rate limits are documented; 401/403, 429 and 5xx are the engine's
  (:mod:`reconciler.apply.http`).
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

import httpx

from reconciler.providers._common import (
    JSON_HEADERS, basic_auth, body_excerpt, dumps, json_body, outcomes, split_or_fail, unexpected,
)
from reconciler.providers.base import Operation, Outcome, Provider, Request

PATH = "/api/products/"
REQUIRED = ("product_code", "product", "price", "amount", "status")


def _text(value: Any) -> Any:
    """Every Venddor value is a string (overrides may have set a number)."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _ids(body: Any) -> list | None:
    """The ``product_ids`` of a 201 answer, in request order (None: not the documented shape)."""
    ids = body.get("product_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(_is_id(pid) for pid in ids):
        return None
    return ids


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value != "")


class Wire(Provider):
    """Venddor requests and answers (the declared data is in the package)."""

    def _headers(self) -> dict[str, str]:
        return {**JSON_HEADERS, "Authorization": basic_auth(self.credentials.get("username", ""),
                                                            self.credentials.get("password", ""))}

    def group_key(self, op: Operation) -> Hashable:
        return "products"

    def element(self, op: Operation) -> dict:
        if op.action == "delete":
            payload = dict(op.before or {})
            payload.setdefault("product_code", op.key)
            payload["status"] = "D"
        else:
            payload = op.after or {}
        return {k: _text(v) for k, v in payload.items() if v is not None}

    def item_size(self, op: Operation) -> int:
        return len(dumps(self.element(op)))

    def encode(self, ops: Sequence[Operation]) -> Request:
        if not ops:
            raise ValueError("encode needs at least one operation")
        return Request(method="POST", path=PATH, operations=tuple(ops),
                       body=dumps([self.element(op) for op in ops]), headers=self._headers(),
                       endpoint="products")

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        status = response.status_code
        if 200 <= status < 300:
            ids = _ids(json_body(response))
            if ids is None or len(ids) != len(ops):
                raise unexpected(self.name, response)
            return [Outcome(op, "confirmed", remote_id=str(pid)) for op, pid in zip(ops, ids)]
        body = json_body(response)
        message = body.get("message") if isinstance(body, dict) else None
        message = message or body_excerpt(response) or f"HTTP {status}"
        if len(ops) == 1:
            return outcomes(ops, "failed",
                            f"venddor refused the product (HTTP {status} {message}); it does not say "
                            f"why: check the required fields {', '.join(REQUIRED)} and that every "
                            "value is a string (price with a decimal comma)")
        return split_or_fail(ops, f"venddor refused the request (HTTP {status} {message})")
