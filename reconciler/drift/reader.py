"""Reading remote catalogs: every page of every readable target, paced and retried.

``read_catalogs(targets)`` reads the targets concurrently (one asyncio loop, one
``httpx.AsyncClient`` per target) and returns, per target, a :class:`RemoteCatalog`
or the :class:`~reconciler.errors.ReconcilerError` that stopped it (the others go on).

Pacing, within a target:

* pages are read one after another, since each page's cursor comes from the answer
  to the previous one; requests in flight per target are therefore 1, within any
  ``max_in_flight`` (documented or lowered by the target's ``limits``), and the
  client's connection pool is capped by that limit too;
* reads are not writes (``Request.write`` is false): they take no slot of the
  target's write rate window, and are not logged in the state's request history;
* every answer goes through the engine's HTTP rules first
  (:func:`reconciler.apply.http.exchange`): refused credentials (401, 403) stop the
  target; 429, 5xx and transport errors (timeouts, dropped connections) are retried,
  as is an answer the provider calls transient (``ReadError.transient``: Graph's
  throttling codes), by the one retry policy of writes and polls
  (:attr:`reconciler.apply.tuning.Tuning.retry`: at most ``max_attempts`` times per
  page, full-jitter backoff, never sooner than ``Retry-After``, within the target's
  retry budget);
* a request has the target's deadline and answer size cap, and a redirect, an answer
  too large or a TLS failure stops the target (:mod:`reconciler.apply.http`);
* anything else the provider refuses (a 4xx) stops that target with one message,
  redacted of the target's credentials.

A listing that ends before the catalog does, or that cannot be trusted to list it all
(``Page.incomplete``: Bloomreach lists at most 1,001 items, Voucherify 9,900, and Meta
calls its own pagination incomplete) is completed item by item for the keys the caller
knows (the state's; for an import, the manifests' too), ``max_in_flight`` reads at a
time, where the provider can read one item (``capabilities.item_reads``); the catalog
is then marked ``incomplete``: remote items the caller does not know, that the listing
did not return, cannot be found. Without known keys such a listing is an error.
``read_items(target, keys)`` reads only given items, the same way (``status --verify``
reads back the items a destination only accepted).
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Callable, Collection, Mapping, Sequence, TypeVar

import httpx

from reconciler import credentials
from reconciler.apply.http import open_client, read
from reconciler.apply.retry import RetryBudget
from reconciler.apply.tuning import Tuning
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.manifest.models import Target
from reconciler.providers import ReadError, get_provider, limits_for
from reconciler.providers.base import Provider, Request

Progress = Callable[[str], None]
T = TypeVar("T")


class DriftError(ReconcilerError):
    """Reading a remote catalog failed, or what was read cannot be used."""


@dataclass
class RemoteCatalog:
    """What one target's remote catalog holds: ``{(record, key): payload}`` in the
    mapping's shape (see each provider's ``decode_read``)."""

    target: str
    provider: str
    items: dict[tuple[str, str], dict]
    pages: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    incomplete: str | None = None   # why the listing missed items; those known were read one by one


class _TargetReader:
    def __init__(self, target: Target, tuning: Tuning, environ: Mapping[str, str] | None,
                 transport: httpx.AsyncBaseTransport | None, progress: Progress | None,
                 known: Collection[tuple[str, str]] | None = None):
        self.target = target
        self.known = known
        self.tuning = tuning.for_target(target)  # its request deadline, answer size and retry budget
        self.budget = RetryBudget(self.tuning.retry, target.provider)
        self.transport = transport
        self.progress = progress
        self.cls = get_provider(target.provider)
        resolved = credentials.resolve(target, self.cls.auth_keys, environ)
        self.secrets = credentials.secrets_of(resolved)
        self.provider: Provider = self.cls(target.settings, resolved)
        self.in_flight = limits_for(target).max_in_flight or tuning.default_in_flight
        self.rng = random.Random()

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(f"{self.target.name}: {credentials.redact(text, self.secrets)}")

    async def read(self) -> RemoteCatalog:
        started = time.monotonic()
        catalog = RemoteCatalog(self.target.name, self.target.provider, {})
        tuning = self.tuning
        connections = max(1, self.in_flight)
        async with open_client(self.target, tuning, connections, self.transport) as client:
            cursor: str | None = None
            seen: set[str] = set()
            while True:
                page = await self._fetch(client, self.provider.read_request(cursor), self.provider.decode_read,
                                         catalog)
                catalog.pages += 1
                for record, key, payload in page.items:
                    catalog.items[(record, key)] = payload
                if page.incomplete is not None:
                    await self._read_items(client, page.incomplete, catalog)
                if page.cursor is None:
                    break
                if page.cursor in seen:
                    raise DriftError(f"{self.target.provider}: the catalog listing returned cursor "
                                     f"{page.cursor!r} twice; stopped reading to avoid a loop")
                seen.add(page.cursor)
                cursor = page.cursor
                if catalog.pages % 50 == 0:
                    self.say(f"read {len(catalog.items)} items in {catalog.pages} pages so far")
        catalog.seconds = time.monotonic() - started
        return catalog

    async def read_keys(self, keys: Collection[tuple[str, str]]) -> RemoteCatalog:
        """The items of ``keys`` that the destination holds, read one by one."""
        started = time.monotonic()
        catalog = RemoteCatalog(self.target.name, self.target.provider, {})
        async with open_client(self.target, self.tuning, max(1, self.in_flight), self.transport) as client:
            await self._each(client, list(keys), catalog)
        catalog.seconds = time.monotonic() - started
        return catalog

    async def _read_items(self, client: httpx.AsyncClient, why: str, catalog: RemoteCatalog) -> None:
        """Read the known items the listing did not reach, one request each."""
        if self.known is None or not self.cls.capabilities.item_reads:
            raise DriftError(f"{self.target.provider}: {why}, so the catalog cannot be read whole")
        catalog.incomplete = why
        keys = [key for key in self.known if key not in catalog.items]
        self.say(f"{why}: reading {len(keys)} other known items one by one")
        await self._each(client, keys, catalog)

    async def _each(self, client: httpx.AsyncClient, keys: list[tuple[str, str]], catalog: RemoteCatalog) -> None:
        """Read ``keys`` into ``catalog``, ``in_flight`` requests at a time."""
        slots = asyncio.Semaphore(self.in_flight)
        done = 0

        async def one(record: str, key: str) -> None:
            nonlocal done
            async with slots:
                item = await self._fetch(client, self.provider.read_item_request(record, key),
                                         self.provider.decode_read_item, catalog)
            if item is not None:
                catalog.items[(item[0], item[1])] = item[2]
            done += 1
            if done % 1000 == 0:
                self.say(f"read {done} of {len(keys)} items one by one")

        tasks = [asyncio.ensure_future(one(record, key)) for record, key in keys]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _fetch(self, client: httpx.AsyncClient, request: Request,
                     decode: Callable[[httpx.Response], T], catalog: RemoteCatalog) -> T:
        """Send a read and decode its answer, retrying what is transient."""
        def retrying(reason: str, delay: float) -> None:
            catalog.requests += 1
            catalog.retries += 1
            self.say(f"retrying a read in {delay:.1f}s: {reason}")

        catalog.requests += 1
        try:
            return await read(client, request, self.provider, decode, self.tuning, self.budget, self.rng, retrying)
        except ReadError as exc:
            raise DriftError(str(exc)) from None


def read_catalogs(targets: Sequence[Target], *, environ: Mapping[str, str] | None = None,
                  tuning: Tuning | None = None, transport: httpx.AsyncBaseTransport | None = None,
                  progress: Progress | None = None,
                  known: Mapping[str, Collection[tuple[str, str]]] | None = None,
                  ) -> dict[str, RemoteCatalog | ReconcilerError]:
    """Read every target's remote catalog (each must be readable). A target that
    cannot be read maps to the error that stopped it, its message free of secrets.
    ``known``: per target, the ``(record, key)`` items to read one by one where the
    listing cannot reach them (the module doc)."""
    tuning = tuning or Tuning()

    async def one(reader: _TargetReader) -> RemoteCatalog:
        if progress is not None:
            progress(f"{reader.target.name}: reading the remote catalog ({reader.target.provider})")
        catalog = await reader.read()
        if progress is not None:
            retried = f", {catalog.retries} retried" if catalog.retries else ""
            progress(f"{reader.target.name}: read {len(catalog.items)} items in {catalog.pages} page(s)"
                     f"{retried} in {catalog.seconds:.1f}s")
        return catalog

    return _run({t.name: (t, one) for t in targets}, tuning, environ, transport, progress,
                lambda target: None if known is None else known.get(target.name, ()))


def read_items(targets: Mapping[str, Collection[tuple[str, str]]], by_name: Mapping[str, Target], *,
               environ: Mapping[str, str] | None = None, tuning: Tuning | None = None,
               transport: httpx.AsyncBaseTransport | None = None, progress: Progress | None = None,
               ) -> dict[str, RemoteCatalog | ReconcilerError]:
    """Read, per target name, the ``(record, key)`` items given, one request each (the
    provider must read one item: ``capabilities.item_reads``); a target's catalog holds
    those the destination has. Errors as for :func:`read_catalogs`."""
    tuning = tuning or Tuning()

    async def one(reader: _TargetReader) -> RemoteCatalog:
        keys = targets[reader.target.name]
        if progress is not None:
            progress(f"{reader.target.name}: reading back {len(keys)} items one by one ({reader.target.provider})")
        return await reader.read_keys(keys)

    return _run({name: (by_name[name], one) for name in targets}, tuning, environ, transport, progress,
                lambda target: None)


def _run(jobs: Mapping[str, tuple[Target, Callable]], tuning: Tuning, environ, transport, progress,
         known: Callable[[Target], Collection[tuple[str, str]] | None]) -> dict[str, RemoteCatalog | ReconcilerError]:
    """Run ``job(reader)`` for every target at once; an error stops its target only."""
    results: dict[str, RemoteCatalog | ReconcilerError] = {}

    async def one(target: Target, job: Callable) -> None:
        secrets: list[str] = []
        try:
            reader = _TargetReader(target, tuning, environ, transport, progress, known(target))
            secrets = reader.secrets
            results[target.name] = await job(reader)
        except ReconcilerError as exc:
            kind = ConfigError if isinstance(exc, ConfigError) else DriftError
            results[target.name] = kind(credentials.redact(str(exc), secrets))
        except Exception as exc:  # an unexpected answer: this target only
            results[target.name] = DriftError(
                credentials.redact(f"{target.provider}: reading failed ({type(exc).__name__}: {exc})", secrets))

    async def main() -> None:
        await asyncio.gather(*(one(target, job) for target, job in jobs.values()))

    if jobs:
        asyncio.run(main())
    return {name: results[name] for name in jobs}
