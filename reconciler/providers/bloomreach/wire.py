"""Bloomreach Engagement catalogs: three bulk endpoints with per-item results.

Base path ``/data/v2/projects/{project_id}/catalogs/{catalog_id}/items``.

* ``update_mode: full`` sends creates and updates to ``PUT …/items`` as
  ``[{"item_id", "properties"}]`` with the whole payload: the item's properties are
  replaced, so a property no longer in the payload becomes blank by omission.
* ``update_mode: partial`` (the default) sends them to ``POST …/items/partial-update``
  as ``[{"item_id", "properties", "upsert": true}]``: a create sends every property,
  an update only the changed and added ones, so properties that another system owns
  are never touched. A property the manifests no longer give cannot be removed this
  way: the documents say that partial update keeps what it is not given, and give no
  value meaning "remove" (not ``null``, not ``""``). So it is not sent, the item's
  outcome keeps it (:attr:`Outcome.kept`: the state records that Bloomreach still
  holds it), and every plan shows the removal again, with a warning (see
  :meth:`Wire.removal_warnings`) naming the documented ways: ``update_mode: full``
  (a full replace blanks what it is not given), or removing it in Bloomreach.
* Deletes go to ``DELETE …/items/bulk-delete`` with a body ``["id", ...]``.
  All three endpoints share one window of 5 requests per 10 s per catalog.
* Auth: ``Authorization: Basic base64(key_id:key_secret)``.
* 200 answers a list of per-item results *in request order* (matched by position):
  ``{"success": "True"|true, "queued": ...}`` or ``{"success": "False"|false, "errors":
  {...}}``; both string and boolean forms are accepted. A successful item is only
  ``accepted``: "success response means only that the request is queued to be
  processed later, not that the item was successfully updated" (``reconciler status
  --verify`` reads it back). A failed item fails with its errors. Any other 2xx body
  (not a list of one such result per item) is an unexpected answer, sent again.
* A global 400 ``{"errors": {"_global": [msg]}}`` names no item, and the documents
  list its causes (invalid JSON, payload not a list, payload size exceeded, too many
  items, item parsing error) without their texts: whatever it says, the request is
  bisected (``split``; a lone item fails; the engine bounds the bisection). 401/403,
  429 and 5xx are the engine's (:mod:`reconciler.apply.http`).
* Limits: 5000 items and 10,000,000 bytes per request (measured on the serialized
  body), 5 requests / 10 s.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Hashable, Sequence

import httpx

from reconciler.errors import ConfigError
from reconciler.providers._common import (
    JSON_HEADERS, basic_auth, body_excerpt, diff_fields, dumps, json_body, outcomes, refusal, setting,
    split_or_fail, unexpected,
)
from reconciler.providers.base import Operation, Outcome, Provider, Request

TRUE, FALSE = ("True", "true"), ("False", "false")  # the seed writes "True", PROVIDER-NOTES true


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value in TRUE)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value in TRUE + FALSE)


def _per_item_results(body: Any, count: int) -> bool:
    """Whether ``body`` is the documented answer to ``count`` items: a list of as many
    results, each an object whose ``success`` is a boolean (or its string form)."""
    return (isinstance(body, list) and len(body) == count
            and all(isinstance(item, dict) and _boolean(item.get("success")) for item in body))


def flatten(errors: Any) -> list[str]:
    """Messages of a Bloomreach ``errors`` value (dicts of lists, nested, strings)."""
    if errors is None:
        return []
    if isinstance(errors, str):
        return [errors]
    if isinstance(errors, list):
        return [m for e in errors for m in flatten(e)]
    if isinstance(errors, dict):
        out = []
        for key, value in errors.items():
            for message in flatten(value):
                out.append(message if key == "_global" else f"{key}: {message}")
        return out
    return [str(errors)]


class Wire(Provider):
    """Bloomreach requests and answers (the declared data is in the package)."""

    def __init__(self, settings, credentials):
        super().__init__(settings, credentials)
        mode = self.settings.get("update_mode") or "partial"
        if mode not in ("full", "partial"):
            raise ConfigError(f"bloomreach: settings.update_mode must be 'full' or 'partial', not {mode!r}")
        self.update_mode = mode
        if mode != type(self).capabilities.update_mode:  # what this target actually does
            self.capabilities = replace(type(self).capabilities, update_mode=mode)

    @property
    def _base(self) -> str:
        project = setting(self.name, self.settings, "project_id")
        catalog = setting(self.name, self.settings, "catalog_id")
        return f"/data/v2/projects/{project}/catalogs/{catalog}/items"

    def _headers(self, body: bool = True) -> dict[str, str]:
        headers = dict(JSON_HEADERS) if body else {"Accept": "application/json"}
        headers["Authorization"] = basic_auth(self.credentials.get("key_id", ""),
                                              self.credentials.get("key_secret", ""))
        return headers

    # -- writing ---------------------------------------------------------------
    def group_key(self, op: Operation) -> Hashable:
        return "delete" if op.action == "delete" else self.update_mode

    def element(self, op: Operation) -> Any:
        if op.action == "delete":
            return op.key
        if self.update_mode == "full":
            return {"item_id": op.key, "properties": op.after or {}}
        if op.action == "create":
            properties = dict(op.after or {})
        else:
            properties, _ = diff_fields(op.before, op.after)  # a removal cannot be sent (the module doc)
        return {"item_id": op.key, "properties": properties, "upsert": True}

    def _kept(self, op: Operation) -> dict | None:
        """What Bloomreach holds after a partial update of ``op``: ``after`` with the
        properties it removes still there (None: it removes none)."""
        if self.update_mode != "partial" or op.action != "update":
            return None
        _, removed = diff_fields(op.before, op.after)
        return {**(op.after or {}), **{field: op.before[field] for field in removed}} if removed else None

    @classmethod
    def removal_warnings(cls, target, updates: int, fields) -> list[str]:
        """Updates that remove properties, in partial mode: apply cannot (the module doc)."""
        if not updates or (target.settings.get("update_mode") or "partial") != "partial":
            return []
        names = sorted(fields)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return [f"{updates} update(s) remove properties ({shown}) that Bloomreach's partial update cannot "
                "remove (the API documents no way to): apply sends the other changes and leaves these properties "
                "as they are, and the next plan shows them again. To remove them: update_mode: full (a full "
                "replace, which also blanks properties other systems own), or remove them in Bloomreach"]

    def item_size(self, op: Operation) -> int:
        return len(dumps(self.element(op)))

    def encode(self, ops: Sequence[Operation]) -> Request:
        if not ops:
            raise ValueError("encode needs at least one operation")
        deleting = ops[0].action == "delete"
        if any((op.action == "delete") != deleting for op in ops):
            raise ValueError("bloomreach: deletes and upserts go in separate requests")
        body = dumps([self.element(op) for op in ops])
        if deleting:
            method, path, endpoint = "DELETE", f"{self._base}/bulk-delete", "bulk-delete"
        elif self.update_mode == "full":
            method, path, endpoint = "PUT", self._base, "items"
        else:
            method, path, endpoint = "POST", f"{self._base}/partial-update", "partial-update"
        return Request(method=method, path=path, operations=tuple(ops), body=body,
                       headers=self._headers(), endpoint=endpoint)

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        ops = request.operations
        status = response.status_code
        body = json_body(response)
        if 200 <= status < 300:
            if not _per_item_results(body, len(ops)):
                raise unexpected(self.name, response)
            return [Outcome(op, "accepted", kept=self._kept(op)) if _truthy(item["success"])
                    else refusal(op, "; ".join(flatten(item.get("errors"))) or "refused by bloomreach")
                    for op, item in zip(ops, body)]
        messages = flatten(body.get("errors")) if isinstance(body, dict) else []
        message = "; ".join(messages) or body_excerpt(response) or f"HTTP {status}"
        if status == 404:
            raise ConfigError(f"bloomreach: the catalog was not found (HTTP 404: {message}); "
                              "check the target's settings project_id and catalog_id")
        reason = f"bloomreach refused the request (HTTP {status}): {message}"
        if status == 400:  # names no item, and its causes are told apart by no documented text
            return split_or_fail(ops, reason)
        return outcomes(ops, "failed", reason)
