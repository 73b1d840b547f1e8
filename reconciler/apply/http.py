"""The HTTP seam of apply, settle and drift: one client per target, a provider's
encoded :class:`~reconciler.providers.base.Request` sent exactly as encoded, and the
one classification of what came back, applied before any provider sees an answer:

* 401 and 403: the destination refused the credentials. A :class:`ConfigError`
  naming the provider and its auth keys (never a value) stops the target;
* 3xx: redirects are not followed (credentials would go where the answer says). A
  :class:`DestinationError` naming the status and the ``Location`` (without its user,
  password, query or fragment) stops the target;
* 429: too fast. :class:`Failed` with ``rate_limited`` (the target's rate window
  pauses) and the server's ``Retry-After``;
* 5xx, and transport errors (no answer within the deadline, refused or dropped
  connections): :class:`Failed`, tried again by the retry policy
  (:mod:`reconciler.apply.retry`);
* transport errors that no retry can mend (an unsupported protocol, an invalid URL, a
  TLS handshake or certificate that fails, a request our side cannot send) raise
  :class:`DestinationError`: the target stops;
* anything else is the provider's to translate (``decode``, ``decode_poll``,
  ``decode_read``): a provider's own throttling signals that are not an HTTP 429
  (Meta's Graph error codes) come back as its outcomes; a provider may also take a
  5xx that carries one of its own errors (:meth:`Provider.decodes_server_error`: Graph's
  code 1 on a 500 says the body was too large, to be split, not sent again as it is);
* and what the provider cannot translate (:func:`decoded`): a success whose body is
  not the documented shape (:class:`~reconciler.errors.UnexpectedAnswer`, raised by
  the provider, which knows its documented shapes), or an answer its decode fails on,
  is :class:`Failed` too, tried again like a 5xx: never a success.

Every request has a deadline, ``request_timeout_seconds`` of the target's tuning
(:meth:`~reconciler.apply.tuning.Tuning.for_target`), for all of it: connecting,
sending, and the whole answer (a server trickling a byte at a time does not extend
it). An answer is read as a stream, at most ``max_response_bytes`` of its body: a
larger one stops the target, read no further.

:func:`read` sends a read (a listing page, one item) and retries it by the retry policy,
within the target's retry budget.
"""
from __future__ import annotations

import asyncio
import random
import ssl
from dataclasses import dataclass
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import httpx

from reconciler.apply.retry import RetryBudget
from reconciler.apply.tuning import Tuning
from reconciler.errors import ConfigError, DestinationError, UnexpectedAnswer
from reconciler.manifest.models import Target
from reconciler.providers import get_provider
from reconciler.providers._common import retry_after
from reconciler.providers.base import Provider, ReadError, Request

T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    """An attempt that may succeed later: no answer, a 429 or a 5xx."""

    reason: str
    retry_after: float | None = None   # seconds, when the server said so
    rate_limited: bool = False         # a 429: the whole target should slow down


def open_client(target: Target, tuning: Tuning, connections: int,
                transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client for ``target`` (its base URL, or the provider's), within ``tuning``'s
    deadline (the target's: :meth:`Tuning.for_target`) and at most ``connections``
    connections; no redirects followed. ``transport`` replaces the network
    (``httpx.MockTransport`` in tests)."""
    deadline = tuning.request_timeout_seconds
    return httpx.AsyncClient(
        base_url=target.base_url or get_provider(target.provider).default_base_url,
        timeout=httpx.Timeout(deadline, connect=min(tuning.connect_timeout, deadline)),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False, transport=transport,
    )


def classify(response: httpx.Response, provider: Provider) -> httpx.Response | Failed:
    """The engine's rules for an answer to ``provider``'s request (the module doc),
    from its status and headers alone: the answer for the provider to decode, or
    :class:`Failed`. Raises :class:`ConfigError` when the credentials are refused,
    :class:`DestinationError` for a redirect."""
    status = response.status_code
    if status in (401, 403):
        raise ConfigError(f"{provider.name} refused the target's credentials (HTTP {status}); "
                          f"check the target's auth ({', '.join(provider.auth_keys)})")
    if 300 <= status < 400:
        raise DestinationError(f"{provider.name} answered HTTP {status}, a redirect to "
                               f"{_location(response)}; redirects are not followed: set the target's base_url "
                               "to the API's own address")
    if status == 429:
        return Failed(f"{provider.name}: rate limited (HTTP 429)", retry_after(response), rate_limited=True)
    if status >= 500 and not provider.decodes_server_error(response):
        return Failed(f"{provider.name}: server error (HTTP {status})", retry_after(response))
    return response


async def exchange(client: httpx.AsyncClient, request: Request, provider: Provider,
                   tuning: Tuning) -> httpx.Response | Failed:
    """Send ``request`` and :func:`classify` the answer, within ``tuning``'s deadline
    and answer size (the target's); no complete answer in time (or at all) is
    :class:`Failed` too. The answer returned holds its whole body."""
    deadline = tuning.request_timeout_seconds
    try:
        async with asyncio.timeout(deadline):
            return await _receive(client, request, provider, tuning.max_response_bytes)
    except TimeoutError:
        return Failed(f"{provider.name}: no complete answer within {deadline:g} s "
                      "(limits.request_timeout_seconds)")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
        raise DestinationError(f"{provider.name}: the request cannot be sent ({type(exc).__name__}: {exc})") from None
    except httpx.TransportError as exc:
        tls = _tls_error(exc)
        if tls is not None:
            raise DestinationError(f"{provider.name}: the TLS connection failed ({tls}); check the target's "
                                   "base_url") from None
        return Failed(f"{provider.name}: no answer ({type(exc).__name__}: {str(exc) or 'connection failed'})")
    except httpx.DecodingError as exc:  # a body its Content-Encoding does not decode
        return Failed(f"{provider.name}: an answer that cannot be decoded ({exc})")


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
               decode: Callable[[httpx.Response], T], tuning: Tuning, budget: RetryBudget, rng: random.Random,
               on_retry: Callable[[str, float], None] | None = None) -> T:
    """Send the read ``request`` (within ``tuning``'s bounds: the target's) and
    ``decode`` its answer, trying again what is :class:`Failed` (:func:`exchange`,
    :func:`decoded`) after the delay of the target's ``budget`` (``on_retry(reason,
    delay)`` is told first). Raises the provider's ``ReadError`` for a read refused for
    good, or one saying the attempts ran out; :class:`DestinationError` when the
    target must stop (:mod:`reconciler.apply.retry`)."""
    attempt = 0
    while True:
        attempt += 1
        answer = await exchange(client, request, provider, tuning)
        if not isinstance(answer, Failed):
            answer = decoded(decode, answer, provider)
            if not isinstance(answer, Failed):
                budget.answered()
                return answer
        delay = budget.next_delay(attempt, answer.reason, answer.retry_after, rng)
        if delay is None:
            raise ReadError(f"{provider.name}: reading failed after {attempt} attempts: {answer.reason}")
        if on_retry is not None:
            on_retry(answer.reason, delay)
        await asyncio.sleep(delay)


async def _receive(client: httpx.AsyncClient, request: Request, provider: Provider,
                   max_bytes: int) -> httpx.Response | Failed:
    outgoing = client.build_request(request.method, request.path, content=request.body,
                                    params=dict(request.params) if request.params else None,
                                    headers=dict(request.headers))
    response = await client.send(outgoing, stream=True)
    try:
        status = response.status_code
        if status in (401, 403, 429) or 300 <= status < 400:
            return classify(response, provider)  # said by the status and headers: the body is not read
        body = bytearray()
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(provider, response, max_bytes)
        async for chunk in response.aiter_bytes():  # decoded: a compressed body is counted as it expands
            body += chunk
            if len(body) > max_bytes:
                raise _too_large(provider, response, max_bytes)
    finally:
        await response.aclose()
    # The body as read (decoded), so the answer no longer says how it was encoded.
    headers = [(name, value) for name, value in response.headers.multi_items() if name.lower() != "content-encoding"]
    return classify(httpx.Response(status, headers=headers, content=bytes(body), request=outgoing), provider)


def _too_large(provider: Provider, response: httpx.Response, max_bytes: int) -> DestinationError:
    return DestinationError(f"{provider.name} answered more than {max_bytes:,} bytes (HTTP {response.status_code}); "
                            "stopped reading it (limits.max_response_bytes)")


def _location(response: httpx.Response) -> str:
    """Where a redirect points, without what may be a secret: a user and password,
    a query, a fragment."""
    location = response.headers.get("location")
    if not location:
        return "nowhere (no Location header)"
    try:
        parts = urlsplit(location)
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an invalid Location"
    where = f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path
    return where + ("?…" if parts.query or parts.fragment else "")


def _tls_error(exc: BaseException) -> str | None:
    """The TLS error that caused ``exc``, in words, if one did."""
    seen = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return cause.reason or str(cause)
        cause = cause.__cause__ or cause.__context__
    return None
