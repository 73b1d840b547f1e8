"""The Graph API's error envelope, ``{"error": {message, type, code, error_subcode,
is_transient, fbtrace_id}}``, and what its codes mean to every Meta call:

* 190 (invalid OAuth token), 10 and 200-299 (permissions: "200 | Permissions error" on
  the batch endpoints) stop the target at once: every other call would fail the same
  way and spend the catalog's 100 batch calls an hour;
* 4, 17, 32, 613 (application and user throttling), 80009 (status calls) and 80014
  (batch calls) are rate limits, and ``is_transient`` errors are transient: the same
  call may succeed later;
* 1 on ``/batch`` is "Please reduce the amount of data you're asking for, then retry
  your request": the request body was too large, and the documented remedy is fewer
  items. It may come with an HTTP 500 (the engine lets the decodes see it:
  :meth:`Wire.decodes_server_error`); elsewhere 1 is "API Unknown", transient.

Codes are read from the body, never from the HTTP status, which the documents do not
give per code.
"""
from __future__ import annotations

from typing import Any

import httpx

from reconciler.errors import ConfigError
from reconciler.providers._common import body_excerpt, json_body

RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80009, 80014})
TOO_LARGE = 1


def error_of(response: httpx.Response) -> dict[str, Any] | None:
    """The ``error`` object of a Graph answer, if it has one."""
    body = json_body(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return None


def code_of(error: dict[str, Any] | None) -> int | None:
    code = (error or {}).get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def stops(code: int | None) -> bool:
    return code is not None and (code in (10, 190) or 200 <= code <= 299)


def transient(error: dict[str, Any] | None) -> bool:
    """A throttling code or an ``is_transient`` error: the same call may succeed later."""
    return code_of(error) in RATE_LIMIT_CODES or bool((error or {}).get("is_transient"))


def describe(response: httpx.Response, error: dict[str, Any] | None) -> str:
    """The error in words, e.g. ``meta_catalog error 100: (#100) Invalid parameter``."""
    message = str((error or {}).get("message") or body_excerpt(response) or f"HTTP {response.status_code}")
    code = code_of(error)
    return f"meta_catalog error {code}: {message}" if code is not None else f"meta_catalog: {message}"


def stop(response: httpx.Response, error: dict[str, Any] | None) -> ConfigError:
    """The error that stops a target on a token or permission code."""
    code = code_of(error)
    said = f"HTTP {response.status_code}, code {code}: {(error or {}).get('message') or 'no message'}"
    if code == 190:
        return ConfigError(f"meta_catalog refused the target's access token ({said}); check the target's auth "
                           "(access_token)")
    return ConfigError(f"meta_catalog: the target's access token lacks a permission ({said}); check what the "
                       "token (access_token) may do on the catalog")
