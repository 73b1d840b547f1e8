"""`reconciler import` against the in-process sandbox: one workspace populates the
remote catalogs with `apply`; a second one, with the same manifests and no state,
adopts them, so that its first plan is empty (or shows only the real differences)."""
from __future__ import annotations

import orjson
import pytest

from reconciler.state import State

from conftest import product
from test_drift import (  # noqa: F401 (env and sandbox are fixtures)
    assert_no_secret, bloomreach_partial, catalog_targets, env, meta_batch, sandbox, voucherify_metadata,
)

READABLE = ("-t", "meta", "-t", "bloom", "-t", "vouch")


def write(ws, sb, count: int = 4):
    ws.write("targets.yaml", {"targets": catalog_targets(sb)})
    ws.write("products.yaml", {"products": [product(f"SKU-{i}") for i in range(1, count + 1)]})
    return ws


@pytest.fixture
def remote(make_ws, sandbox, env):
    """The sandbox populated by another workspace's apply."""
    first = write(make_ws("first"), sandbox)
    result = first.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return sandbox


@pytest.fixture
def fresh(make_ws, remote):
    """A workspace with the same manifests and no state."""
    return write(make_ws("fresh"), remote)


def state_of(ws) -> State:
    return State(ws.root / "state" / "reconciler.db", create=False)


def plan_json(ws, *args: str) -> dict:
    result = ws.run("plan", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_import_makes_the_first_plan_empty(fresh):
    before = plan_json(fresh, *READABLE)
    assert all(t["summary"]["create"] == 4 for t in before["targets"].values())

    result = fresh.run("import", *READABLE)
    assert result.exit_code == 0, result.output
    for name, provider in (("meta", "meta_catalog"), ("bloom", "bloomreach"), ("vouch", "voucherify")):
        assert (f"{name} ({provider}): read 4 remote items; adopted 4 (4 new to the state, 0 already in the "
                "state and overwritten with the remote payload); 0 already matched the state.") in result.stdout
    assert "Imported 12 item(s)." in result.stdout
    assert_no_secret(result.output)

    assert fresh.run("plan", "--detailed-exitcode", *READABLE).exit_code == 0
    everything = plan_json(fresh)
    assert everything["targets"]["vtex"]["summary"]["create"] == 8  # not readable: not imported
    assert fresh.run("drift", *READABLE).exit_code == 0
    state = state_of(fresh)
    item = state.item("meta", "product", "SKU-1")
    assert (item.sku, item.last_action, item.last_outcome) == ("SKU-1", "import", "confirmed")
    assert state.serial == 3  # one bump per imported target: saved plans made before are stale


def test_import_then_plan_shows_only_the_real_differences(fresh, remote):
    meta_batch(remote, [{"method": "UPDATE", "retailer_id": "SKU-1", "data": {"price": 1299}}])
    assert fresh.run("import", "-t", "meta").exit_code == 0
    plan = plan_json(fresh, "-t", "meta")
    (change,) = plan["targets"]["meta"]["changes"]
    assert change["sku"] == "SKU-1" and change["action"] == "update"
    assert change["fields"] == {"changed": ["price"], "added": [], "removed": []}
    assert (change["before"]["price"], change["after"]["price"]) == (1299, 1000)


def test_items_already_in_the_state_are_overwritten_with_the_remote_truth(make_ws, remote):
    first = make_ws("first")
    meta_batch(remote, [{"method": "UPDATE", "retailer_id": "SKU-1", "data": {"price": 1299}}])
    serial = state_of(first).serial
    result = first.run("import", "-t", "meta")
    assert result.exit_code == 0, result.output
    assert ("adopted 1 (0 new to the state, 1 already in the state and overwritten with the remote payload); "
            "3 already matched the state.") in result.stdout
    state = state_of(first)
    assert state.item("meta", "product", "SKU-1").payload["price"] == 1299
    assert state.item("meta", "product", "SKU-2").last_action == "create"  # matched: untouched
    assert state.serial == serial + 1
    assert first.run("drift", "-t", "meta").exit_code == 0


def test_fields_another_system_owns_are_not_adopted(fresh, remote):
    bloomreach_partial(remote, [{"item_id": "SKU-1", "properties": {"color": "red"}}])
    voucherify_metadata(remote, ["SKU-1"], {"loyalty_tier": "gold"})
    assert fresh.run("import", "-t", "bloom", "-t", "vouch").exit_code == 0
    state = state_of(fresh)
    assert "color" not in state.item("bloom", "product", "SKU-1").payload
    assert state.item("vouch", "product", "SKU-1").payload["metadata"] == {"origin": "test"}
    # so the first plan does not blank them
    assert fresh.run("plan", "--detailed-exitcode", "-t", "bloom", "-t", "vouch").exit_code == 0


def test_remote_items_the_manifests_do_not_describe(fresh, remote):
    voucherify_metadata(remote, ["EXT-1"], {"owner": "crm"})
    result = fresh.run("import", "-t", "vouch")
    assert result.exit_code == 0, result.output
    assert "read 5 remote items; adopted 5" in result.stdout
    assert "1 adopted items are not in the manifests: the next plan deletes them" in result.stdout
    assert state_of(fresh).item("vouch", "product", "EXT-1").payload == {"source_id": "EXT-1",
                                                                          "metadata": {"owner": "crm"}}
    refused = fresh.run("plan", "-t", "vouch")  # 1 of 5 is more than max_delete_fraction 0.1
    assert refused.exit_code == 1 and "--allow-mass-delete" in refused.output


def test_import_refuses_a_provider_that_cannot_be_read(fresh):
    result = fresh.run("import", "-t", "meta", "-t", "vtex")
    assert result.exit_code == 1
    assert "cannot import vtex (vtex_ads): the provider cannot read its remote catalog" in result.output
    assert "readable providers: meta_catalog, bloomreach, venddor, voucherify" in result.output
    assert not (fresh.root / "state" / "reconciler.db").exists()


def test_import_needs_a_target(fresh):
    result = fresh.run("import")
    assert result.exit_code == 2 and "-t" in result.output


def test_a_failed_read_imports_nothing(fresh, env):
    env.setenv("BR_KEY_SECRET", "definitely-wrong-secret")
    result = fresh.run("import", *READABLE)
    assert result.exit_code == 1
    assert "nothing was imported" in result.output and "bloom" in result.output
    assert "definitely-wrong-secret" not in result.output
    assert not (fresh.root / "state" / "reconciler.db").exists()  # no empty state left behind
