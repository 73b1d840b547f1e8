"""Helpers for exercising the engine against the sandbox (the apply tests, the
subprocess of the kill -9 test, and benchmarks/apply_scale.py):

* :func:`make_products`: deterministic products, valid at every provider;
* :func:`sandbox_targets`: one target per provider at a running sandbox, with its
  simulator's credentials;
* :func:`plan_products`: the real planner's plan for products given as Python objects
  (the manifests are built in memory);
* :func:`remote_view` / :func:`expected_view`: what a destination stores and what it
  should, both as ``{(record, key): payload}`` in the mapping's shape;
* :func:`convergence_problems`: why the destinations and the state do not (yet) match
  the products;
* :class:`HoldAfter`: a transport over real sockets that holds a destination's writes
  after its first few (for an interrupt to land while they wait).
"""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import httpx

from reconciler.apply import Tuning
from reconciler.manifest.loader import Location, Manifests
from reconciler.manifest.models import Product, Target
from reconciler.mapping import item_key, records
from reconciler.plan import Plan, build_plan
from reconciler.sandbox import CREDENTIALS, Sandbox
from reconciler.state import State

PROVIDERS = ("vtex_ads", "meta_catalog", "bloomreach", "venddor", "voucherify")  # SPEC's, in port order

SANDBOX_SETTINGS: dict[str, dict[str, Any]] = {
    "meta_catalog": {"catalog_id": "100200300", "api_version": "v21.0"},
    "bloomreach": {"project_id": "proj-1", "catalog_id": "cat-1",
                   # the sandbox catalog's fixed fields (attributes such as ncm are not)
                   "fields": ["title", "url", "image", "price", "brand", "category", "availability",
                              "description", "stock", "color"]},
}

# What a delete leaves at a destination whose API cannot delete (SPEC's delete table);
# anywhere else the item is gone (Voucherify's, every key nulled, reads as no item).
LEFT_BY_DELETE: dict[tuple[str, str], Callable[[dict], dict]] = {
    ("vtex_ads", "inventory"): lambda payload: {**payload, "is_available": False},
    ("vtex_ads", "product"): lambda payload: payload,  # cannot be deleted: stays as it was
    ("venddor", "product"): lambda payload: {**payload, "status": "D"},
}


def gtin13(n: int) -> str:
    body = f"789{n % 10**9:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def make_product(i: int, version: int = 0, **changes: Any) -> Product:
    """Product ``i``; a different ``version`` changes its name, price and metadata."""
    suffix = f" v{version}" if version else ""
    metadata: dict[str, Any] = {"season": ("spring", "summer", "fall", "winter")[i % 4], "line": f"L{i % 5}"}
    if version:
        metadata["rev"] = version
    fields: dict[str, Any] = dict(
        sku=f"SKU-{i:06d}",
        name=f"Product {i}{suffix}",
        description=f"Description of product {i}",
        url=f"https://shop.example/p/{i}",
        image_url=f"https://img.example/p/{i}.jpg",
        brand=f"Brand {i % 7}",
        categories=["Home", f"Category {i % 10}"],
        tags=[f"t{i % 3}"],
        gtin=gtin13(i),
        price=Decimal(10 + i % 90) + Decimal(i % 100) / 100 + version,
        currency="USD",
        stock=i % 50,
        weight_grams=100 + i % 900,
        metadata=metadata,
        attributes={"ncm": "61091000"},
    )
    fields.update(changes)
    return Product(**fields)


def make_products(n: int, start: int = 0, version: int = 0) -> list[Product]:
    return [make_product(i, version) for i in range(start, start + n)]


def sandbox_targets(urls: Mapping[str, str], providers: Sequence[str] = PROVIDERS,
                    limits: Mapping[str, Mapping[str, Any]] | None = None,
                    auth: Mapping[str, Mapping[str, str]] | None = None,
                    settings: Mapping[str, Mapping[str, Any]] | None = None,
                    **extra: Any) -> dict[str, Target]:
    """One target per provider, named after it, at the sandbox's URL."""
    targets = {}
    for provider in providers:
        targets[provider] = Target(
            name=provider, provider=provider, base_url=urls[provider],
            auth=dict((auth or {}).get(provider, CREDENTIALS[provider])),
            settings=dict((settings or {}).get(provider, SANDBOX_SETTINGS.get(provider, {}))),
            limits=(limits or {}).get(provider), **extra,
        )
    return targets


def in_memory_manifests(targets: Mapping[str, Target], products: Iterable[Product]) -> Manifests:
    """Manifests holding ``targets`` and ``products``, as if read from files."""
    where = Location("<memory>", 0)
    return Manifests(root=Path("<memory>"), targets=dict(targets),
                     target_locations={name: where for name in targets},
                     documents=[(Location("<memory>", line), product.model_dump(mode="json", exclude_none=True))
                                for line, product in enumerate(products, 1)])


def plan_products(state: State, targets: Mapping[str, Target], products: Iterable[Product],
                  names: Sequence[str] = ()) -> Plan:
    """The real planner's plan (mass deletes allowed: the guard is tested on its own)."""
    return build_plan(in_memory_manifests(targets, products), state, names, allow_mass_delete=True)


def desired(target: Target, products: Iterable[Product]) -> dict[tuple[str, str], dict]:
    """``{(record, key): payload}`` the products map to at ``target``."""
    return {(record, item_key(target, product)): payload
            for product in products if target.wants(product)
            for record, payload in records(target, product).items()}


def remote_view(sandbox: Sandbox, target: Target) -> dict[tuple[str, str], dict]:
    """What the target's simulator stores for it, in the mapping's shape."""
    return sandbox.simulators[target.provider].stored(target.settings)


def expected_view(target: Target, products: Sequence[Product],
                  deleted: Sequence[Product] = ()) -> dict[tuple[str, str], dict]:
    """What :func:`remote_view` should show after applying ``products`` to a target that
    held ``deleted`` too."""
    view = desired(target, products)
    for (record, key), payload in desired(target, deleted).items():
        left = LEFT_BY_DELETE.get((target.provider, record))
        if (record, key) not in view and left is not None:
            view[(record, key)] = left(payload)
    return view


def fast_tuning(**changes: Any) -> Tuning:
    """Executor tuning for tests against a sandbox at ``time_scale=0.001``."""
    base = dict(backoff_base=0.02, backoff_cap=0.3, poll_initial=0.02, poll_factor=1.5, poll_cap=0.2,
                window_scale=0.001, connect_timeout=5.0, request_timeout_seconds=30.0)
    base.update(changes)
    return Tuning(**base)


def eventually(probe: Callable[[], Any], what: str, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """The first result of ``probe()`` that is neither None nor False, polled until
    ``timeout`` seconds; an AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(interval)


def queued_work_done(sandbox: Sandbox) -> None:
    """Wait until every simulator has done the work it queued so far (VTEX Ads and
    Bloomreach store what they accepted ``async_delay`` seconds later)."""
    for simulator in sandbox.simulators.values():
        simulator.finish_queued()


def convergence_problems(sandbox: Sandbox, state: State, targets: Mapping[str, Target],
                         products: Sequence[Product], deleted: Sequence[Product] = ()) -> list[str]:
    """Why the destinations and the state do not (yet) match the products: the remote
    catalog differs from the expected one, or a fresh plan (the real planner's) is not
    empty. Waits for the work the simulators queued first."""
    queued_work_done(sandbox)
    problems = []
    for name, target in targets.items():
        remote, expected = remote_view(sandbox, target), expected_view(target, products, deleted)
        if remote != expected:
            wrong = [k for k in expected.keys() | remote.keys() if remote.get(k) != expected.get(k)]
            k = sorted(wrong)[0]
            problems.append(f"{name}: {len(wrong)} items differ, e.g. {k}: remote {remote.get(k)} "
                            f"!= expected {expected.get(k)}")
    for name, tp in plan_products(state, targets, products).targets.items():
        if tp.changes:
            problems.append(f"{name}: a fresh plan is not empty: {tp.summary}")
    return problems


class HoldAfter(httpx.AsyncBaseTransport):
    """Real sockets, except that the write requests to ``url`` after its first ``n``
    are held, never sent (until the interrupt cuts them off): the apply cannot finish
    first, however slowly the state's thread commits on a loaded machine. Shared by the
    clients of every target: the network closes with the last one."""

    def __init__(self, url: str, n: int):
        self.network = httpx.AsyncHTTPTransport()
        self.port = httpx.URL(url).port
        self.left = n
        self.clients = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.port == self.port and request.method == "POST":
            if self.left == 0:
                await asyncio.Event().wait()
            self.left -= 1
        return await self.network.handle_async_request(request)

    async def __aenter__(self) -> "HoldAfter":
        self.clients += 1
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.clients -= 1
        if self.clients == 0:
            await self.network.aclose()
