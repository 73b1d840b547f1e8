"""End to end through the CLI: manifests -> plan -> apply -> the sandbox's catalogs.

After an apply, every sandbox catalog must equal the manifests' mapping exactly, a
fresh plan must be empty, and the sandbox's request log must show no limit exceeded.
"""
from __future__ import annotations

import orjson
import pytest

from conftest import eventually, moved_clock, product, sandbox_fixture, target, with_check_digit
from reconciler.manifest.loader import load, parse_product
from reconciler.mapping import item_key, records
from reconciler.state import State


sandbox = sandbox_fixture(async_delay=0.05, latency=0.001)


@pytest.fixture
def shop(ws, sandbox):
    sandbox.reset()
    urls = sandbox.urls
    ws.write("targets.yaml", {"targets": {
        "vtex": target("vtex_ads", urls["vtex_ads"]),
        "meta": target("meta_catalog", urls["meta_catalog"], select={"tags": ["meta"]}),
        "bloom": target("bloomreach", urls["bloomreach"]),
        "vend": target("venddor", urls["venddor"], select={"tags": ["vend"]}),
        "vouch": target("voucherify", urls["voucherify"]),
    }})
    return ws


GTINS = ["7891404130317", "7898915633481", "4006381333931", "5012345678900", "0737963000128", "8711252045320"]


def catalog(n=12, **changes):
    items = []
    for i in range(n):
        extra = {"tags": ["meta"] + (["vend"] if i < len(GTINS) else [])}
        if i < len(GTINS):
            extra["gtin"] = GTINS[i]
        extra.update(changes.get(f"P{i:02d}", {}))
        items.append(product(f"P{i:02d}", **extra))
    return items


def expected(ws) -> dict[str, dict[tuple[str, str], dict]]:
    manifests = load(ws.manifests)
    out = {name: {} for name in manifests.targets}
    for where, raw in manifests.documents:
        model, _ = parse_product(raw, where)
        for name, t in manifests.targets.items():
            if t.wants(model):
                for record, payload in records(t, model).items():
                    out[name][(record, item_key(t, model))] = payload
    return out


def remote(sandbox) -> dict[str, dict[tuple[str, str], dict]]:
    """Each sandbox catalog in the mapping's shape."""
    vtex = {("product", p["product_sku"]): p for p in sandbox.catalog("vtex_ads", record="product")}
    vtex |= {("inventory", i["product_sku"]): i for i in sandbox.catalog("vtex_ads", record="inventory")}
    meta = {("product", row.pop("retailer_id")): row for row in sandbox.catalog("meta_catalog", catalog_id="1234567890")}
    bloom = {("product", row["item_id"]): row["properties"] for row in sandbox.catalog("bloomreach", catalog_id="c1")}
    vend = {}
    for row in sandbox.catalog("venddor"):
        row.pop("product_id")
        vend[("product", row["product_code"])] = row
    vouch = {("product", p["source_id"]): {"source_id": p["source_id"], "metadata": p.get("metadata") or {}}
             for p in sandbox.catalog("voucherify")}
    return {"vtex": vtex, "meta": meta, "bloom": bloom, "vend": vend, "vouch": vouch}


def test_apply_makes_every_catalog_equal_the_manifests(shop, sandbox):
    shop.write("products.yaml", {"products": catalog()})
    result = shop.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert remote(sandbox) == expected(shop)
    assert shop.run("plan", "--detailed-exitcode").exit_code == 0
    assert sandbox.violations == []

    # Updates and deletes, each as its provider's delete semantics say.
    shop.write("products.yaml", {"products": catalog(10, P00={"price": "99.90", "metadata": {"origin": "x"}},
                                                    P01={"name": "Renamed", "metadata": {"new": 1}})})
    result = shop.run("apply", "--auto-approve", "--allow-mass-delete")
    assert result.exit_code == 0, result.output
    got, want = remote(sandbox), expected(shop)
    for name in ("meta", "bloom", "vend"):
        if name != "vend":
            assert got[name] == want[name]
    # vtex cannot delete: P10/P11 products stay, their inventories say unavailable
    assert got["vtex"][("inventory", "P10")]["is_available"] is False
    assert {k: v for k, v in got["vtex"].items() if k[1] not in ("P10", "P11")} == want["vtex"]
    # venddor: everything as mapped (P10/P11 never went there: no gtin)
    assert got["vend"] == want["vend"]
    # voucherify cannot remove keys: a removed key is null
    assert got["vouch"][("product", "P01")]["metadata"] == {"origin": None, "new": 1}
    assert got["vouch"][("product", "P10")]["metadata"] == {"origin": None}
    assert shop.run("plan", "--detailed-exitcode").exit_code == 0
    assert sandbox.violations == []


def test_venddor_delete_resends_with_status_d(shop, sandbox):
    shop.write("products.yaml", {"products": catalog(6)})
    assert shop.run("apply", "--auto-approve").exit_code == 0
    shop.write("products.yaml", {"products": catalog(5)})
    assert shop.run("apply", "--auto-approve", "--allow-mass-delete").exit_code == 0
    venddor = {row["product_code"]: row for row in sandbox.catalog("venddor")}
    assert venddor[GTINS[5]]["status"] == "D"
    assert State(shop.root / "state" / "reconciler.db").items_of_sku("P05") == []


def test_saved_plan_applies_exactly_and_is_refused_once_stale(shop, sandbox):
    shop.write("products.yaml", {"products": catalog(3)})
    planfile = shop.root / "plan.out"
    assert shop.run("plan", "-o", str(planfile)).exit_code == 0
    shop.write("products.yaml", {"products": catalog(4)})  # the saved plan does not know P03
    refused = shop.run("apply", str(planfile))
    assert refused.exit_code == 1 and "the manifests and state now give create P03 (product), which the plan " \
        "does not have" in refused.output
    assert sandbox.log == []
    shop.write("products.yaml", {"products": catalog(3)})  # as the plan was made
    result = shop.run("apply", str(planfile))
    assert result.exit_code == 0, result.output
    assert [p["product_sku"] for p in sandbox.catalog("vtex_ads", record="product")] == ["P00", "P01", "P02"]
    stale = shop.run("apply", str(planfile))
    assert stale.exit_code == 1 and "Traceback" not in stale.output
    assert "stale" in stale.output.lower() or "changed since" in stale.output


def test_apply_asks_for_confirmation_and_refuses_without_a_terminal(shop):
    shop.write("products.yaml", {"products": catalog(2)})
    result = shop.run("apply")
    assert result.exit_code == 1
    assert "refusing to apply without --auto-approve" in result.output


def test_no_wait_then_status_settles(shop, sandbox, monkeypatch):
    # the asynchronous APIs' clocks move when the test says: their jobs are running until then
    clocks = [moved_clock(sandbox, provider, monkeypatch) for provider in ("meta_catalog", "voucherify")]
    shop.write("products.yaml", {"products": catalog(3)})
    result = shop.run("apply", "--auto-approve", "--no-wait")
    assert result.exit_code == 0, result.output
    state = State(shop.root / "state" / "reconciler.db")
    assert state.pending_jobs()  # meta and voucherify confirm later
    for clock in clocks:
        clock.advance(0.05)  # the sandbox's async_delay: every job is done
    status = shop.run("status")
    assert "No pending jobs and no failed items." in status.output, status.output
    assert status.exit_code == 0, status.output
    assert state.pending_jobs() == []
    assert shop.run("plan", "--detailed-exitcode").exit_code == 0


def test_rejected_items_are_listed_exit_1_and_planned_again(shop, sandbox):
    # A Bloomreach catalog field that does not exist: the API refuses that item only.
    shop.write("products.yaml", {"products": catalog(3, P01={"attributes": {"no_such_field": "x"}})})
    result = shop.run("apply", "--auto-approve", "-t", "bloom")
    assert result.exit_code == 1
    assert "P01" in result.output and "no_such_field" in result.output
    assert [row["item_id"] for row in sandbox.catalog("bloomreach", catalog_id="c1")] == ["P00", "P02"]
    plan = orjson.loads(shop.run("plan", "-t", "bloom", "--format", "json").output)
    assert [c["sku"] for c in plan["targets"]["bloom"]["changes"]] == ["P01"]
    status = shop.run("status", "-t", "bloom")
    assert status.exit_code == 1 and "P01" in status.output


def test_secrets_never_reach_output_or_state(shop, sandbox, monkeypatch):
    monkeypatch.setenv("META_SECRET_TOKEN", "sandbox-token")
    shop.write("targets.yaml", {"targets": {"meta": target(
        "meta_catalog", sandbox.urls["meta_catalog"], auth={"access_token": "${META_SECRET_TOKEN}"})}})
    shop.write("products.yaml", {"products": catalog(2)})
    result = shop.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "sandbox-token" not in result.output
    db = (shop.root / "state" / "reconciler.db").read_bytes()
    wal = shop.root / "state" / "reconciler.db-wal"
    assert b"sandbox-token" not in db + (wal.read_bytes() if wal.exists() else b"")
    monkeypatch.delenv("META_SECRET_TOKEN")
    shop.write("products.yaml", {"products": catalog(3)})
    missing = shop.run("apply", "--auto-approve")
    assert missing.exit_code == 1 and "META_SECRET_TOKEN is not set" in missing.output


@pytest.mark.parametrize("signum, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_cli_apply_then_apply_again_converges(ws, sandbox, signum, code, processes):
    import signal
    import subprocess
    import sys

    sandbox.reset()
    ws.write("targets.yaml", {"targets": {"vend": target(
        "venddor", sandbox.urls["venddor"], limits={"max_in_flight": 1, "max_items_per_request": 1})}})
    products = [product(f"P{i:03d}", gtin=with_check_digit(f"789100{i:06d}")) for i in range(300)]
    ws.write("p.yaml", {"products": products})
    venddor = sandbox.simulators["venddor"]
    venddor.hold_writes_after(20)  # the signal lands mid-apply, however loaded the machine
    proc = processes.start([sys.executable, "-m", "reconciler", "-C", str(ws.root), "apply", "--auto-approve"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: venddor.holding == 1, "venddor holding the 21st request", timeout=60, interval=0.01)
        proc.send_signal(getattr(signal, signum))
        _, err = proc.communicate(timeout=30)
        eventually(lambda: venddor.holding == 0, "venddor dropping the request of a client gone", timeout=30)
    finally:
        venddor.resume_writes()
    assert proc.returncode == code, err
    assert "Interrupted." in err and "Traceback" not in err
    confirmed = len(State(ws.root / "state" / "reconciler.db").hashes("vend"))
    assert confirmed == 20  # the 20 answered; the held 21st was never processed
    assert len(sandbox.catalog("venddor")) == 20
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert f"{300 - confirmed} to create" in result.output
    assert len(sandbox.catalog("venddor")) == 300
    assert ws.run("plan", "--detailed-exitcode").exit_code == 0
