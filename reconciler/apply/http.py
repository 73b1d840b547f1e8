"""The HTTP seam of apply, settle and drift: one client per target, a provider's
encoded :class:`~reconciler.providers.base.Request` sent exactly as encoded, and the
one classification of what came back, applied before any provider sees an answer:

* 401 and 403: the destination refused the credentials. A :class:`ConfigError`
  naming the provider and its auth keys (never a value) stops the target;
* 429: too fast. :class:`Failed` with ``rate_limited`` (the target's rate window
  pauses) and the server's ``Retry-After``;
* 5xx, and transport errors (timeouts, refused or dropped connections):
  :class:`Failed`, tried again by the retry policy (:mod:`reconciler.apply.retry`);
* anything else is the provider's to translate (``decode``, ``decode_poll``,
  ``decode_read``): a provider's own throttling signals that are not an HTTP 429
  (Meta's Graph error codes) come back as its outcomes; a provider may also take a
  5xx that carries one of its own errors (:meth:`Provider.decodes_server_error`: Graph's
  code 1 on a 500 says the body was too large, to be split, not sent again as it is);
* and what the provider cannot translate (:func:`decoded`): a success whose body is
  not the documented shape (:class:`~reconciler.errors.UnexpectedAnswer`, raised by
  the provider, which knows its documented shapes), or an answer its decode fails on,
  is :class:`Failed` too, tried again like a 5xx: never a success.

:func:`read` sends a read (a listing page, one item) and retries it by the retry policy.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Callable, TypeVar

import httpx

from reconciler.errors import ConfigError, UnexpectedAnswer
from reconciler.manifest.models import Target
from reconciler.providers import get_provider
from reconciler.apply.retry import RetryPolicy
from reconciler.providers._common import retry_after
from reconciler.providers.base import Provider, ReadError, Request

T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    """An attempt that may succeed later: no answer, a 429 or a 5xx."""

    reason: str
    retry_after: float | None = None   # seconds, when the server said so
    rate_limited: bool = False         # a 429: the whole target should slow down


def open_client(target: Target, tuning, connections: int,
                transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client for ``target`` (its base URL, or the provider's), ``tuning``'s timeouts
    and at most ``connections`` connections; no redirects followed. ``transport``
    replaces the network (``httpx.MockTransport`` in tests)."""
    return httpx.AsyncClient(
        base_url=target.base_url or get_provider(target.provider).default_base_url,
        timeout=httpx.Timeout(tuning.timeout, connect=tuning.connect_timeout),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False, transport=transport,
    )


async def send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    return await client.request(request.method, request.path, content=request.body,
                                params=dict(request.params) if request.params else None,
                                headers=dict(request.headers))


def classify(response: httpx.Response, provider: Provider) -> httpx.Response | Failed:
    """The engine's rules for an answer to ``provider``'s request (the module doc): the
    answer for the provider to decode, or :class:`Failed`. Raises
    :class:`ConfigError` when the credentials are refused."""
    status = response.status_code
    if status in (401, 403):
        raise ConfigError(f"{provider.name} refused the target's credentials (HTTP {status}); "
                          f"check the target's auth ({', '.join(provider.auth_keys)})")
    if status == 429:
        return Failed(f"{provider.name}: rate limited (HTTP 429)", retry_after(response), rate_limited=True)
    if status >= 500 and not provider.decodes_server_error(response):
        return Failed(f"{provider.name}: server error (HTTP {status})", retry_after(response))
    return response


async def exchange(client: httpx.AsyncClient, request: Request, provider: Provider) -> httpx.Response | Failed:
    """Send ``request`` and :func:`classify` the answer; no answer at all (a transport
    error) is :class:`Failed` too."""
    try:
        response = await send(client, request)
    except httpx.TransportError as exc:
        return Failed(f"{provider.name}: no answer ({type(exc).__name__}: {str(exc) or 'connection failed'})")
    return classify(response, provider)


def decoded(decode: Callable[[httpx.Response], T], response: httpx.Response, provider: Provider) -> T | Failed:
    """``decode(response)`` (the provider's translation of an answer :func:`classify`
    gave it), or :class:`Failed` when it cannot be translated: a success whose body is
    not the documented shape, a read the provider calls transient, an answer its
    decode fails on. Refused credentials and reads refused for good raise."""
    try:
        return decode(response)
    except ConfigError:
        raise
    except ReadError as exc:
        if not exc.transient:
            raise
        return Failed(str(exc), exc.retry_after)
    except UnexpectedAnswer as exc:
        return Failed(str(exc))
    except Exception as exc:
        return Failed(f"unexpected answer from {provider.name} (HTTP {response.status_code}): "
                      f"{type(exc).__name__}: {exc}")


async def read(client: httpx.AsyncClient, request: Request, provider: Provider,
               decode: Callable[[httpx.Response], T], policy: RetryPolicy, rng: random.Random,
               on_retry: Callable[[str, float], None] | None = None) -> T:
    """Send the read ``request`` and ``decode`` its answer, trying again what is
    :class:`Failed` (:func:`exchange`, :func:`decoded`) after the policy's delay
    (``on_retry(reason, delay)`` is told first). Raises the provider's ``ReadError``
    for a read refused for good, or one saying the attempts ran out."""
    attempt = 0
    while True:
        attempt += 1
        answer = await exchange(client, request, provider)
        if not isinstance(answer, Failed):
            answer = decoded(decode, answer, provider)
            if not isinstance(answer, Failed):
                return answer
        if policy.exhausted(attempt):
            raise ReadError(f"{provider.name}: reading failed after {attempt} attempts: {answer.reason}")
        delay = policy.delay(attempt, answer.retry_after, rng)
        if on_retry is not None:
            on_retry(answer.reason, delay)
        await asyncio.sleep(delay)
