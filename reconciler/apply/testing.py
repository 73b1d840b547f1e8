"""Helpers for exercising the executor against the sandbox (tests, the benchmark, and
the subprocess of the kill -9 test). Not used by the CLI.

* :func:`make_products`: deterministic, valid products for every provider;
* :func:`sandbox_targets`: one target per provider pointing at a running sandbox,
  with the sandbox credentials from SPEC;
* :func:`simple_plan`: a plan from products and the state (the planner's rules:
  digest comparison, ignore_fields kept, deletes of what the state has and the
  products no longer produce), without manifest files;
* :func:`remote_view` / :func:`expected_view`: a destination's stored catalog and what
  it should hold, both as ``{(record, key): payload}`` in comparable shapes.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

from reconciler.manifest.models import Product, Target
from reconciler.mapping import item_key, records
from reconciler.plan.model import Change, FieldDiff, Plan, TargetPlan
from reconciler.providers import get_provider, names
from reconciler.sandbox import CREDENTIALS
from reconciler.state.store import State, payload_digest

PROVIDERS = names()

SANDBOX_SETTINGS: dict[str, dict[str, Any]] = {
    "meta_catalog": {"catalog_id": "100200300", "api_version": "v21.0"},
    "bloomreach": {"project_id": "proj-1", "catalog_id": "cat-1",
                   # the sandbox catalog's fixed fields (attributes such as ncm are not)
                   "fields": ["title", "url", "image", "price", "brand", "category", "availability",
                              "description", "stock", "color"]},
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


def desired(target: Target, products: Iterable[Product]) -> dict[tuple[str, str], tuple[str, dict]]:
    """``{(record, key): (sku, payload)}`` the products map to at ``target``."""
    out = {}
    for product in products:
        if not target.wants(product):
            continue
        key = item_key(target, product)
        for record, payload in records(target, product).items():
            out[(record, key)] = (product.sku, payload)
    return out


def simple_plan(state: State, targets: Mapping[str, Target], products: Sequence[Product],
                names: Sequence[str] | None = None) -> Plan:
    plans = {}
    for name, target in targets.items():
        if names is not None and name not in names:
            continue
        ignore = tuple(target.ignore_fields)
        known = state.hashes(name)
        changes, unchanged = [], 0
        for (record, key), (sku, payload) in desired(target, products).items():
            digest = known.pop((record, key), None)
            if digest is None:
                changes.append(Change("create", record, key, sku, None, payload, FieldDiff(added=tuple(payload))))
                continue
            if digest == payload_digest(payload, ignore):
                unchanged += 1
                continue
            item = state.item(name, record, key)
            after = dict(payload)
            for field in ignore:
                after.pop(field, None)
                if field in item.payload:
                    after[field] = item.payload[field]
            if after == item.payload:
                unchanged += 1
                continue
            changes.append(Change("update", record, key, sku, item.payload, after, FieldDiff(), item.remote_id))
        for record, key in known:
            item = state.item(name, record, key)
            changes.append(Change("delete", record, key, item.sku, item.payload, None, FieldDiff(), item.remote_id))
        order = {r: i for i, r in enumerate(get_provider(target.provider).capabilities.records)}
        changes.sort(key=lambda c: (c.sku, order.get(c.record, 9)))
        plans[name] = TargetPlan(name, target.provider, tuple(changes), unchanged)
    return Plan(lineage=state.lineage, serial=state.serial, targets=plans)


def _drop_none(value: dict) -> dict:
    return {k: v for k, v in value.items() if v is not None}


def remote_view(catalog: Callable[..., list[dict]], target: Target) -> dict[tuple[str, str], dict]:
    """The destination's stored items, as ``{(record, key): payload}`` in the mapping's
    shape. ``catalog`` is ``Sandbox.catalog``. Blanked (null) fields are dropped."""
    provider = target.provider
    view: dict[tuple[str, str], dict] = {}
    if provider == "vtex_ads":
        for row in catalog("vtex_ads"):
            row = dict(row)
            record = row.pop("record")
            view[(record, row["product_sku"])] = row
    elif provider == "meta_catalog":
        for row in catalog("meta_catalog", catalog_id=target.settings["catalog_id"]):
            row = dict(row)
            key = row.pop("retailer_id")
            view[("product", key)] = _drop_none(row)
    elif provider == "bloomreach":
        for row in catalog("bloomreach", catalog_id=target.settings["catalog_id"],
                           project_id=target.settings["project_id"]):
            view[("product", row["item_id"])] = _drop_none(row["properties"])
    elif provider == "venddor":
        for row in catalog("venddor"):
            row = dict(row)
            row.pop("product_id", None)
            view[("product", row["product_code"])] = row
    elif provider == "voucherify":
        for row in catalog("voucherify"):
            metadata = _drop_none(row.get("metadata") or {})
            if metadata:
                view[("product", row["source_id"])] = {"source_id": row["source_id"], "metadata": metadata}
    else:  # pragma: no cover
        raise ValueError(provider)
    return view


def expected_view(target: Target, products: Sequence[Product],
                  deleted: Sequence[Product] = ()) -> dict[tuple[str, str], dict]:
    """What :func:`remote_view` should show after applying ``products`` to a target that
    held ``deleted`` too (SPEC's delete table: what a delete becomes per provider)."""
    view = {rk: payload for rk, (_, payload) in desired(target, products).items()}
    provider = target.provider
    for rk, (_, payload) in desired(target, deleted).items():
        if rk in view:
            continue
        if provider == "vtex_ads":
            if rk[0] == "inventory":
                view[rk] = {**payload, "is_available": False}
            else:
                view[rk] = payload  # a product cannot be deleted: it stays as it was
        elif provider == "venddor":
            view[rk] = {**payload, "status": "D"}
        # meta_catalog, bloomreach: gone; voucherify: every key null, i.e. no metadata
    return view


def fast_tuning(**changes: Any):
    """Executor tuning for tests against a sandbox at ``time_scale=0.001``."""
    from reconciler.apply import Tuning

    base = dict(backoff_base=0.02, backoff_cap=0.3, poll_initial=0.02, poll_factor=1.5, poll_cap=0.2,
                window_scale=0.001, connect_timeout=5.0, timeout=30.0)
    base.update(changes)
    return Tuning(**base)


def convergence_problems(catalog: Callable[..., list[dict]], state: State, targets: Mapping[str, Target],
                         products: Sequence[Product], deleted: Sequence[Product] = ()) -> list[str]:
    """Why the destinations and the state do not (yet) match the products: the remote
    catalog differs from the expected one, or a fresh plan is not empty."""
    problems = []
    for name, target in targets.items():
        remote, expected = remote_view(catalog, target), expected_view(target, products, deleted)
        if remote != expected:
            wrong = [k for k in expected.keys() | remote.keys() if remote.get(k) != expected.get(k)]
            k = sorted(wrong)[0]
            problems.append(f"{name}: {len(wrong)} items differ, e.g. {k}: remote {remote.get(k)} "
                            f"!= expected {expected.get(k)}")
    replan = simple_plan(state, targets, products)
    for name, tp in replan.targets.items():
        if tp.changes:
            problems.append(f"{name}: a fresh plan is not empty: {tp.summary}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reconciler.apply.testing STATE URLS_JSON N [VERSION]``: plan products
    ``0..N-1`` (at ``VERSION``) for the sandbox targets at ``URLS_JSON`` and apply them
    (a separate process to kill in tests). Exit 0 when the apply was ok."""
    import json
    import sys

    from reconciler.apply import NullReporter, apply_plan

    args = list(sys.argv[1:] if argv is None else argv)
    state_path, urls, n = args[0], json.loads(args[1]), int(args[2])
    version = int(args[3]) if len(args) > 3 else 0
    limits = json.loads(args[4]) if len(args) > 4 else None
    state = State(state_path)
    targets = sandbox_targets(urls, providers=tuple(urls), limits=limits)
    plan = simple_plan(state, targets, make_products(n, version=version))
    print("planned", flush=True)
    result = apply_plan(plan, targets, state, reporter=NullReporter(), tuning=fast_tuning())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
