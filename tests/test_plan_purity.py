"""The planner is pure: planning or validating the same manifests twice gives the same
result, and neither the manifests nor the state is changed by it."""
from __future__ import annotations

import copy

import pytest

from conftest import product, target
from reconciler.errors import ManifestError
from reconciler.manifest.loader import load
from reconciler.plan import build_plan
from reconciler.plan.planner import validate
from reconciler.state import State


def write_bad(ws) -> None:
    broken = target("venddor")
    del broken["auth"]["password"]  # a target check
    ws.write("targets.yaml", {"targets": {"vend": broken, "vtex": target("vtex_ads")}})
    ws.write("products.yaml", {"products": [product("A"), product("A"), product("B", price="abc")]})
    ws.write("more.csv", "sku,name\nC,Product C\nD,Product D,extra\n")  # a problem found while streaming
    ws.write("more.jsonl", [product("E", currency="XXX")])


def test_validating_twice_finds_the_same_problems_and_leaves_the_manifests_alone(ws):
    write_bad(ws)
    manifests = load(ws.manifests)
    before = copy.deepcopy(manifests)
    found = []
    for _ in range(2):
        with pytest.raises(ManifestError) as info:
            validate(manifests)
        found.append(info.value.problems)
        with pytest.raises(ManifestError) as info:
            build_plan(manifests, State(":memory:"))
        found.append(info.value.problems)
    assert len(found[0]) >= 5
    assert found == [found[0]] * 4
    assert manifests == before


def test_planning_twice_gives_the_same_plan_and_changes_nothing(ws, state):
    ws.write("targets.yaml", {"targets": {"vtex": target("vtex_ads"), "vouch": target("voucherify")}})
    ws.write("products.yaml", {"products": [product("A"), product("B")]})
    ws.write("more.jsonl", [product("C")])
    manifests = load(ws.manifests)
    before = copy.deepcopy(manifests)
    serial = state.serial
    plans = [build_plan(manifests, state).to_json() for _ in range(2)]
    assert plans[0] == plans[1] and plans[0]["targets"]["vtex"]["summary"]["create"] == 6
    assert validate(manifests) == validate(manifests) == 3
    assert manifests == before
    assert state.serial == serial and list(state.items("vtex")) == []
