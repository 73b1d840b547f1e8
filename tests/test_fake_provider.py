"""A sixth provider, defined only under tests/ (tests/fake_provider/: settings, mapping,
wire, reads and simulator) and registered from here, goes through validate, plan,
apply, status and drift through the CLI, over real sockets against its own
simulator: the proof that a provider is one folder and needs no edit in reconciler/."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import reconciler
from conftest import eventually, product
from reconciler.manifest.models import Target
from reconciler.providers import get_provider, names, register, unregister
from reconciler.sandbox import CREDENTIALS, Sandbox, SandboxConfig
from reconciler.state import State
from support import remote_view

TOKEN = {"FAKESHOP_TOKEN": "fake-token"}


@pytest.fixture
def fakeshop():
    """The sixth provider registered, and its simulator running alone."""
    register("fakeshop", "fake_provider:FakeShop")
    try:
        with Sandbox(SandboxConfig(port=0, async_delay=0.1, latency=0), providers=("fakeshop",)) as sandbox:
            yield sandbox
    finally:
        unregister("fakeshop")


def shop_target(sandbox: Sandbox, **extra) -> dict:
    return {"provider": "fakeshop", "base_url": sandbox.urls["fakeshop"], "auth": {"token": "${FAKESHOP_TOKEN}"},
            "settings": {"shop": "s1"}, **extra}


def remote_job(sandbox: Sandbox, *operations: dict) -> None:
    """Another system changes the shop: a job sent straight to the API, waited for."""
    url, headers = sandbox.urls["fakeshop"] + "/api/shops/s1/jobs", {"Authorization": "Bearer fake-token"}
    job = httpx.post(url, json={"operations": list(operations)}, headers=headers).json()["job_id"]
    eventually(lambda: httpx.get(f"{url}/{job}", headers=headers).json()["state"] == "done", "the remote job")


def test_it_lives_outside_the_package_and_comes_last(fakeshop):
    import fake_provider

    package = Path(reconciler.__file__).parent
    assert package not in Path(fake_provider.__file__).parents
    assert names()[-1] == "fakeshop" and get_provider("fakeshop") is fake_provider.FakeShop
    assert CREDENTIALS["fakeshop"] == {"token": "fake-token"}


def test_validate_plan_apply_status_and_drift_through_the_cli(ws, fakeshop, monkeypatch):
    for name, value in TOKEN.items():
        monkeypatch.setenv(name, value)
    ws.write("targets.yaml", {"targets": {"shop": shop_target(fakeshop)}})
    products = [product(f"P{i}", tags=["t"]) for i in range(5)]
    products[1]["overrides"] = {"shop": {"title": "Special"}}
    ws.write("products.yaml", {"products": products})

    validated = ws.run("validate")
    assert validated.exit_code == 0, validated.output
    assert "Valid: 1 targets, 5 products." in validated.output
    planned = ws.run("plan")
    assert planned.exit_code == 0 and "5 to create" in planned.output, planned.output

    applied = ws.run("apply", "--auto-approve", "--no-wait")
    assert applied.exit_code == 0, applied.output
    assert [e["method"] for e in fakeshop.log] == ["POST"]  # 5 operations, one job
    assert len(State(ws.root / "state" / "reconciler.db").pending_jobs()) == 1  # work for status
    eventually(lambda: "No pending jobs and no failed items." in ws.run("status").output, "status settling the job")

    target = Target(name="shop", **{**shop_target(fakeshop), "auth": {"token": "x"}})
    stored = remote_view(fakeshop, target)
    assert stored[("product", "P1")]["title"] == "Special"
    assert stored[("product", "P0")] == {"title": "Product P0", "price": 10, "url": "https://shop.example.com/p/P0",
                                         "tags": ["t"]}
    assert ws.run("plan", "--detailed-exitcode").exit_code == 0  # converged, by the planner
    clean = ws.run("drift")
    assert clean.exit_code == 0 and "No drift" in clean.output, clean.output

    remote_job(fakeshop, {"op": "upsert", "id": "P2", "fields": {"title": "Renamed", "price": 10}},
               {"op": "delete", "id": "P3"})
    drifted = ws.run("drift")
    assert drifted.exit_code == 2, drifted.output
    assert "~ product P2 (changed remotely)" in drifted.output
    assert "- product P3 (missing remotely)" in drifted.output
    repaired = ws.run("plan", "--refresh", "-o", str(ws.root / "repair.plan"))
    assert repaired.exit_code == 0, repaired.output
    assert ws.run("apply", str(ws.root / "repair.plan")).exit_code == 0
    assert eventually(lambda: ws.run("drift").exit_code == 0, "the repair applied")
    assert fakeshop.violations == []


def test_status_lists_the_items_its_jobs_refused(ws, fakeshop, monkeypatch):
    for name, value in TOKEN.items():
        monkeypatch.setenv(name, value)
    ws.write("targets.yaml", {"targets": {"shop": shop_target(fakeshop)}})
    ws.write("products.yaml", {"products": [product("A"), product("B", overrides={"shop": {"price": "free"}})]})
    assert ws.run("apply", "--auto-approve", "--no-wait").exit_code == 0
    status = eventually(lambda: (r := ws.run("status")).exit_code == 1 and r, "the job settled")
    assert "Failed items (1)" in status.output
    assert "shop: create product B: price must be a number >= 0" in status.output
    assert "+ product B" in ws.run("plan").output  # proposed again


def test_its_settings_and_override_typos_are_validation_errors(ws, fakeshop):
    ws.write("targets.yaml", {"targets": {"shop": shop_target(fakeshop, settings={"shopp": "s1"})},
                              "products": [product("A", overrides={"shop": {"titel": "x"}})]})
    out = ws.run("validate").output
    assert "manifests/targets.yaml:8: target 'shop': settings.shopp: unknown field (did you mean 'shop'?)" in out
    ws.write("targets.yaml", {"targets": {"shop": shop_target(fakeshop)},
                              "products": [product("A", overrides={"shop": {"titel": "x"}})]})
    out = ws.run("validate").output
    assert "sku A: overrides.shop: fakeshop has no field 'titel' (did you mean 'title'?)" in out


def test_reconciler_providers_describes_it(ws, fakeshop):
    out = ws.run("providers").output
    assert "fakeshop\n  key: id   records: product   update: full" in out
    assert "auth: token   settings: shop" in out
