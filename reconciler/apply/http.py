"""The HTTP seam that apply and drift share: one client per target, and a provider's
encoded :class:`~reconciler.providers.base.Request` sent exactly as encoded."""
from __future__ import annotations

import httpx

from reconciler.manifest.models import Target
from reconciler.providers import get_provider
from reconciler.providers.base import Request


def open_client(target: Target, tuning, connections: int,
                transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client for ``target`` (its base URL, or the provider's), ``tuning``'s timeouts
    and at most ``connections`` connections; no redirects followed."""
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
