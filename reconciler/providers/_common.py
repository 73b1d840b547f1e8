"""Helpers shared by the provider modules: serialization, auth headers, response
parsing and the outcome shapes every provider answers the same way.

A success (2xx) whose body is not the shape the API documents is no success: a
decode raises :func:`unexpected` for it, and the engine sends the request again as
after a 5xx (:func:`reconciler.apply.http.decoded`).

Nothing here touches the network; these functions only build bytes and read
``httpx.Response`` objects handed in by the engine (or by tests), which has already
classified them: 401/403, 429 and 5xx never reach a provider (:mod:`reconciler.apply.http`).
"""
from __future__ import annotations

import base64
import email.utils
import time
from typing import Any, Callable, Iterable, Sequence

import httpx
import orjson

from reconciler.errors import ConfigError, UnexpectedAnswer
from reconciler.mapping import json_equal
from reconciler.providers.base import Operation, Outcome, ReadError

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def is_count(value: Any) -> bool:
    """Whether a decoded JSON value is a whole number of at least 0 (a count, a
    position, an amount in minor units): an int, and not a bool, which Python counts
    as an int but JSON does not."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def dumps(value: Any) -> bytes:
    """Compact JSON, the exact bytes sent (limits are measured on them)."""
    return orjson.dumps(value)


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return f"Basic {token}"


def json_body(response: httpx.Response) -> Any:
    """The response body as JSON, or ``None`` when it is empty or not JSON."""
    try:
        content = response.content
    except httpx.ResponseNotRead:  # pragma: no cover - the executor reads responses
        content = response.read()
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def body_excerpt(response: httpx.Response, limit: int = 300) -> str:
    """A short, printable excerpt of a response body, for reasons."""
    try:
        text = response.text
    except Exception:  # pragma: no cover - undecodable body
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


UNEXPECTED_EXCERPT = 200  # characters of an unexpected answer quoted in its reason


def unexpected(provider_name: str, response: httpx.Response) -> UnexpectedAnswer:
    """The error a decode raises for a success whose body is not the documented shape."""
    return UnexpectedAnswer(f"unexpected answer from {provider_name} (HTTP {response.status_code}): "
                            f"{body_excerpt(response, UNEXPECTED_EXCERPT) or '(empty body)'}")


def read_error(provider_name: str, response: httpx.Response, detail: str | None = None) -> ReadError:
    """A read the destination refused (the engine retries 429 and 5xx before a provider
    sees them: this one is not transient, unless the provider says otherwise)."""
    return ReadError(
        f"{provider_name}: reading the remote catalog failed (HTTP {response.status_code}): "
        f"{detail or body_excerpt(response)}",
        status=response.status_code, retry_after=retry_after(response),
    )


def read_body(provider_name: str, response: httpx.Response, message: Callable[[Any], str | None]) -> dict:
    """The JSON object of a successful read: a 200 without one is :func:`unexpected`,
    any other status a ReadError with ``message(body)`` as the destination's words."""
    body = json_body(response)
    if response.status_code != 200:
        raise read_error(provider_name, response, message(body))
    if not isinstance(body, dict):
        raise unexpected(provider_name, response)
    return body


ALREADY_GONE = ("does not exist", "not found", "no such item")


def refusal(op: Operation, reason: str) -> Outcome:
    """A destination's refusal of one item. A delete refused because the item is not
    there is the desired state reached: typically the first delete was applied and its
    answer lost (a dropped connection), so the retry finds nothing to delete."""
    if op.action == "delete" and any(text in reason.lower() for text in ALREADY_GONE):
        return Outcome(op, "confirmed", f"already absent: {reason}")
    return Outcome(op, "failed", reason)


def outcomes(ops: Iterable[Operation], status: str, reason: str | None = None, **extra: Any) -> list[Outcome]:
    return [Outcome(operation=op, status=status, reason=reason, **extra) for op in ops]  # type: ignore[arg-type]


def split_or_fail(ops: Sequence[Operation], reason: str) -> list[Outcome]:
    """A refusal the API does not tie to an item: bisect when there is more than one
    operation, otherwise the lone operation is the culprit."""
    if len(ops) > 1:
        return outcomes(ops, "split", reason)
    return outcomes(ops, "failed", reason)


def diff_fields(before: dict | None, after: dict | None) -> tuple[dict, list[str]]:
    """``(changed or added fields with their new values, removed field names)``."""
    before = before or {}
    after = after or {}
    changed = {k: v for k, v in after.items() if k not in before or not json_equal(before[k], v)}
    removed = [k for k in before if k not in after]
    return changed, removed


def setting(provider_name: str, settings: dict, key: str, default: Any = None) -> Any:
    value = settings.get(key, default)
    if value is None or value == "":
        raise ConfigError(f"{provider_name}: the target's settings need {key!r}")
    return value
