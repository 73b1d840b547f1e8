"""``status`` lists the items a destination only accepted; ``status --verify`` reads them
back where the provider can read an item (issue 10 item 1), over real sockets."""
from __future__ import annotations

import orjson
import pytest

from conftest import eventually, product, sandbox_fixture, target
from reconciler.state import State

sandbox = sandbox_fixture(async_delay=0.05, latency=0.001)


@pytest.fixture
def shop(ws, sandbox):
    sandbox.reset()
    ws.write("targets.yaml", {"targets": {"bloom": target("bloomreach", sandbox.urls["bloomreach"]),
                                          "vtex": target("vtex_ads", sandbox.urls["vtex_ads"])}})
    ws.write("products.yaml", {"products": [product(f"P{i}") for i in range(3)]})
    return ws


def bloom_items(sandbox) -> dict[str, dict]:
    """The catalog's items, once the work Bloomreach queued by now is done."""
    simulator = sandbox.simulators["bloomreach"]
    simulator.catch_up()
    return simulator.catalogs.setdefault(("p1", "c1"), {})


def planned(ws, name: str) -> list[tuple[str, str]]:
    plan = orjson.loads(ws.run("plan", "-t", name, "--format", "json").stdout)
    return [(c["sku"], c["action"]) for c in plan["targets"][name]["changes"]]


def test_status_lists_what_was_only_accepted(shop, sandbox):
    applied = shop.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "0 confirmed, 3 only accepted" in applied.output and "6 only accepted" in applied.output
    status = shop.run("status")
    assert status.exit_code == 0, status.output
    assert "Accepted, not confirmed (9)" in status.output
    assert "bloom: 3 (`reconciler status --verify -t bloom` reads them back): create product P0" in status.output
    assert "vtex: 6 (vtex_ads cannot be read back: its API has no endpoint to read an item)" in status.output
    assert planned(shop, "bloom") == []  # planned like confirmed items


def test_verify_confirms_what_is_there_and_fails_what_is_not(shop, sandbox):
    assert shop.run("apply", "--auto-approve").exit_code == 0
    items = eventually(lambda: len(bloom_items(sandbox)) == 3 and bloom_items(sandbox), "bloomreach applying")
    with sandbox.simulators["bloomreach"].lock:  # queued work that never happened, or someone else's edit
        del items["P1"]
        items["P2"]["title"] = "Changed elsewhere"
    verify = shop.run("status", "--verify")
    assert verify.exit_code == 1, verify.output
    assert "bloom: read back: 1 confirmed, 2 failed" in verify.output
    assert "vtex: 6 accepted items stay accepted: vtex_ads cannot be read back" in verify.output
    assert "create product P1: accepted, but not found when read back" in verify.output
    assert "create product P2: accepted, but read back with other values (title)" in verify.output
    state = State(shop.root / "state" / "reconciler.db", create=False)
    assert {i.key: i.last_outcome for i in state.items("bloom")} == {"P0": "confirmed", "P2": "failed"}
    assert [a["target"] for a in state.accepted()] == ["vtex"] * 6
    state.close()
    # the next plan proposes exactly what was not applied
    assert planned(shop, "bloom") == [("P1", "create"), ("P2", "update")]
    assert shop.run("apply", "--auto-approve", "-t", "bloom").exit_code == 0
    eventually(lambda: "P1" in bloom_items(sandbox), "bloomreach applying")
    again = shop.run("status", "--verify", "-t", "bloom")
    assert again.exit_code == 0 and "bloom: read back: 2 confirmed, 0 failed" in again.output, again.output
    assert planned(shop, "bloom") == []


def test_a_delete_still_there_when_read_back_is_deleted_again(shop, sandbox):
    assert shop.run("apply", "--auto-approve", "-t", "bloom").exit_code == 0
    eventually(lambda: len(bloom_items(sandbox)) == 3, "bloomreach applying")
    shop.run("status", "--verify", "-t", "bloom")
    shop.write("products.yaml", {"products": [product(f"P{i}") for i in range(2)]})
    deleted = shop.run("apply", "--auto-approve", "-t", "bloom", "--allow-mass-delete")
    assert deleted.exit_code == 0, deleted.output
    eventually(lambda: "P2" not in bloom_items(sandbox), "bloomreach deleting")
    with sandbox.simulators["bloomreach"].lock:
        bloom_items(sandbox)["P2"] = {"title": "back again"}
    verify = shop.run("status", "--verify", "-t", "bloom")
    assert verify.exit_code == 1 and "delete product P2: deleted, but still found when read back" in verify.output
    plan = orjson.loads(shop.run("plan", "-t", "bloom", "--format", "json", "--allow-mass-delete").stdout)
    assert [(c["sku"], c["action"]) for c in plan["targets"]["bloom"]["changes"]] == [("P2", "delete")]
