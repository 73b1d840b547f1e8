"""Limits are never exceeded: rate windows (strict sliding windows, shared across
applies through the persisted history), requests in flight, items and bytes per
request; and what the executor does with refusals: VTEX 422 by instancePath, Venddor
bisection, an oversize item rejected without being sent."""
from __future__ import annotations

import time


from reconciler.apply import NullReporter, apply_plan
from support import (
    convergence_problems, fast_tuning, make_product, make_products, plan_products, sandbox_targets,
)
from reconciler.manifest.models import Select
from reconciler.sandbox import Sandbox, SandboxConfig
from conftest import sandbox_writes


def assert_window(entries, limit, seconds):
    """The strict window, in the server's log: at no moment do more than ``limit``
    requests occupy it, a request from its arrival until ``seconds`` after it was
    answered. (The order in which requests arrive is not the order in which their
    slots were taken: concurrent requests, or two processes, may overtake each other.)"""
    for entry in entries:
        occupying = [e for e in entries if e["started"] <= entry["started"] < e["finished"] + seconds - 1e-3]
        assert len(occupying) <= limit, (entry, occupying)


class Waits(NullReporter):
    """When the apply said its requests wait until (wall clock: a window's next free slot)."""

    def __init__(self):
        self.until = []

    def waiting(self, target, until, why):
        if until is not None:
            self.until.append(until)


def test_bloomreach_rate_window_under_a_small_time_scale(state):
    scale = 0.02  # 5 requests per 0.2 s
    with Sandbox(SandboxConfig(port=0, time_scale=scale)) as sb:
        targets = sandbox_targets(sb.urls, providers=("bloomreach",),
                                  limits={"bloomreach": {"max_items_per_request": 20}})
        products = make_products(300)
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning(window_scale=scale))
        assert result.ok
        assert result.targets["bloomreach"].requests == 15
        assert result.targets["bloomreach"].wait_seconds > 0  # 3 windows: the 6th request waited at least
        assert sb.violations == []
        assert_window(sandbox_writes(sb, "bloomreach"), 5, 10 * scale)
        assert convergence_problems(sb, state, targets, products) == []


def test_a_lowered_window_and_in_flight_limit(state):
    with Sandbox(SandboxConfig(port=0, latency=0.01)) as sb:
        targets = sandbox_targets(sb.urls, providers=("venddor",), limits={"venddor": {
            "max_items_per_request": 10, "max_requests_per_window": 4, "window_seconds": 0.3, "max_in_flight": 2}})
        products = make_products(120)
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning(window_scale=1.0))
        assert result.ok and result.targets["venddor"].requests == 12
        entries = sandbox_writes(sb, "venddor")
        assert_window(entries, 4, 0.3)
        assert sb.simulators["venddor"].max_seen_in_flight <= 2
        assert max(e["items"] for e in entries) == 10


def test_meta_window_is_shared_by_consecutive_applies(state):
    # Meta allows 100 calls per hour; lowered to 5 per (hour * 0.001 = 3.6 s) here.
    limits = {"meta_catalog": {"max_requests_per_window": 5, "max_items_per_request": 10}}
    with Sandbox(SandboxConfig(port=0, time_scale=0.001, async_delay=0.02)) as sb:
        targets = sandbox_targets(sb.urls, providers=("meta_catalog",), limits=limits)
        first = make_products(40)
        result = apply_plan(plan_products(state, targets, first), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning())
        assert result.ok and result.targets["meta_catalog"].requests == 4
        assert len(state.request_times("meta_catalog", 0)) == 4
        first_sent = min(state.request_times("meta_catalog", 0))
        second = [make_product(i, version=1) for i in range(40)]
        told = Waits()
        result = apply_plan(plan_products(state, targets, second), targets, state, reporter=told,
                            tuning=fast_tuning())
        assert result.ok and result.targets["meta_catalog"].requests == 4
        # 8 calls, 5 per window: the second apply waited for the first one's first call to leave the window
        assert told.until and max(told.until) >= first_sent + 3600 * 0.001
        assert result.targets["meta_catalog"].wait_seconds > 0
        assert_window(sandbox_writes(sb, "meta_catalog", "POST"), 5, 3600 * 0.001)
        assert sb.violations == []
        assert convergence_problems(sb, state, targets, second) == []


def test_vtex_in_flight_and_items_per_request(state):
    with Sandbox(SandboxConfig(port=0, latency=0.03)) as sb:
        targets = sandbox_targets(sb.urls, providers=("vtex_ads",))
        products = make_products(3000)
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning())
        assert result.ok and result.targets["vtex_ads"].requests == 12
        assert sb.violations == []
        assert sb.simulators["vtex_ads"].max_seen_in_flight == 3
        assert max(e["items"] for e in sandbox_writes(sb, "vtex_ads")) == 500


def test_oversize_item_rejected_and_never_sent(state):
    with Sandbox(SandboxConfig(port=0)) as sb:
        targets = sandbox_targets(sb.urls, providers=("bloomreach",),
                                  limits={"bloomreach": {"max_bytes_per_request": 4000}})
        products = make_products(40)
        products[7] = make_product(7, description="x" * 5000)
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning())
        assert [f.sku for f in result.failures] == ["SKU-000007"]
        assert "bytes" in result.failures[0].reason
        entries = sandbox_writes(sb, "bloomreach")
        assert sum(e["items"] for e in entries) == 39
        assert max(e["bytes"] for e in entries) <= 4000
        stored = {row["item_id"] for row in sb.catalog("bloomreach", catalog_id="cat-1")}
        assert "SKU-000007" not in stored and len(stored) == 39
        assert [f["sku"] for f in state.failures("bloomreach")] == ["SKU-000007"]
        assert sb.violations == []


def test_vtex_422_rejects_the_named_items_and_resends_the_others(state):
    with Sandbox(SandboxConfig(port=0)) as sb:
        targets = sandbox_targets(sb.urls, providers=("vtex_ads",))
        products = make_products(600)
        bad = {3, 250, 555}
        for i in bad:
            # VTEX takes tags of at most 64 characters: validation refuses such a product,
            # not an override (set as written, for the API to judge)
            products[i] = make_product(i, overrides={"vtex_ads": {"tags": ["x" * 80]}})
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning())
        assert sorted(f.sku for f in result.failures) == [f"SKU-{i:06d}" for i in sorted(bad)]
        assert all(f.record == "product" for f in result.failures)
        target = result.targets["vtex_ads"]
        assert target.accepted == 1200 - 3 and target.retried == 0
        assert target.requests == 2 + 2 + 2  # products: 500 -> 422, 498; 100 -> 422, 99; inventories: 2
        stored = {p["product_sku"] for p in sb.catalog("vtex_ads", record="product")}
        assert len(stored) == 597 and not stored & {f"SKU-{i:06d}" for i in bad}


def test_venddor_bisects_a_refused_request_down_to_the_bad_product(state):
    with Sandbox(SandboxConfig(port=0)) as sb:
        targets = sandbox_targets(sb.urls, providers=("venddor",))
        products = make_products(60)
        products[41] = make_product(41, overrides={"venddor": {"price": "8.99"}})  # a decimal point
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning())
        assert [f.sku for f in result.failures] == ["SKU-000041"]
        target = result.targets["venddor"]
        assert target.confirmed == 59
        assert target.requests <= 1 + 2 * 6  # bisection: two halves per level, log2(60) < 6 levels
        assert len(sb.catalog("venddor")) == 59
        assert sb.violations == []


def test_request_history_is_kept_as_long_as_a_window_needs_it(state):
    now = time.time()
    for target, ago in (("venddor", 7200), ("venddor", 600), ("meta_catalog", 7200), ("meta_catalog", 5000)):
        state.log_request(target, "batch", now - ago, 200, 1, 10)
    # Meta's window lowered to 100 calls per 6000 s: its history is kept that long
    limits = {"meta_catalog": {"window_seconds": 6000}}
    with Sandbox(SandboxConfig(port=0, async_delay=0.01)) as sb:
        targets = sandbox_targets(sb.urls, providers=("venddor", "meta_catalog"), limits=limits)
        result = apply_plan(plan_products(state, targets, make_products(10)), targets, state,
                            reporter=NullReporter(), tuning=fast_tuning(window_scale=1.0))
        assert result.ok
    assert [round(now - t) for t in state.request_times("venddor", 0)[:1]] == [600]
    assert len(state.request_times("venddor", 0)) == 2  # and the one this apply sent
    assert [round(now - t) for t in state.request_times("meta_catalog", 0)[:1]] == [5000]


def sibling_targets(urls, provider, limits, selects):
    """Targets of one provider on one catalog, named after their select tags."""
    base = sandbox_targets(urls, providers=(provider,), limits={provider: limits})[provider]
    return {f"{provider}-{tags[0]}": base.model_copy(update={"name": f"{provider}-{tags[0]}", "select": Select(tags=tags)})
            for tags in selects}


def test_targets_on_one_catalog_share_its_rate_window(state):
    scale = 0.02  # Bloomreach: 5 requests per 0.2 s per catalog
    with Sandbox(SandboxConfig(port=0, time_scale=scale)) as sb:
        targets = sibling_targets(sb.urls, "bloomreach", {"max_items_per_request": 10}, (["t0"], ["t1", "t2"]))
        products = make_products(150)  # 50 + 100 items: 5 + 10 requests to one catalog
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning(window_scale=scale))
        assert result.ok and [t.requests for t in result.targets.values()] == [5, 10]
        assert sb.violations == []
        assert_window(sandbox_writes(sb, "bloomreach"), 5, 10 * scale)
        assert len(sb.catalog("bloomreach", catalog_id="cat-1")) == 150


def test_a_target_applied_alone_counts_its_siblings_recent_requests(state):
    # Meta: 100 calls per hour per catalog, lowered to 5 per (hour * 0.001 = 3.6 s)
    with Sandbox(SandboxConfig(port=0, time_scale=0.001, async_delay=0.01)) as sb:
        targets = sibling_targets(sb.urls, "meta_catalog", {"max_requests_per_window": 5, "max_items_per_request": 10},
                                  (["t0"], ["t1"]))
        products = make_products(90)  # 30 items each: 3 calls each
        first = apply_plan(plan_products(state, targets, products, names=["meta_catalog-t0"]), targets, state,
                           reporter=NullReporter(), tuning=fast_tuning())
        first_sent = min(state.request_times("meta_catalog-t0", 0))
        told = Waits()
        second = apply_plan(plan_products(state, targets, products, names=["meta_catalog-t1"]), targets, state,
                            reporter=told, tuning=fast_tuning())
        assert first.ok and second.ok
        # 6 calls to one catalog, 5 per window: the sibling's third call waited for its first call to leave it
        assert told.until and max(told.until) >= first_sent + 3600 * 0.001
        assert second.targets["meta_catalog-t1"].wait_seconds > 0
        assert sb.violations == []
        assert_window(sandbox_writes(sb, "meta_catalog", "POST"), 5, 3600 * 0.001)


def test_targets_at_one_vtex_url_share_its_three_requests_in_flight(state):
    with Sandbox(SandboxConfig(port=0, latency=0.03)) as sb:
        targets = sibling_targets(sb.urls, "vtex_ads", {"max_items_per_request": 50}, (["t0"], ["t1", "t2"]))
        result = apply_plan(plan_products(state, targets, make_products(1500)), targets, state,
                            reporter=NullReporter(), tuning=fast_tuning())
        assert result.ok and sum(t.requests for t in result.targets.values()) == 60
        assert sb.violations == []
        assert sb.simulators["vtex_ads"].max_seen_in_flight == 3
