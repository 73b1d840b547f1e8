"""The state records only what each destination really took (issue 10), through the CLI
and over real sockets against the sandbox, for VTEX Ads, Bloomreach and Venddor:

* a batch in which some items are refused, in the way each API documents, ends with
  exactly those items failed, the others confirmed (Venddor) or accepted (VTEX Ads's
  202, Bloomreach's queue), exit 1, and a fresh plan proposes exactly them again;
* a 200 with an HTML page (a proxy's) is no success: nothing is recorded;
* queued work Bloomreach never did is found by ``status --verify``.
"""
from __future__ import annotations

import orjson
import pytest

from conftest import product, queued_work_done, sandbox_fixture, target
from reconciler.apply import NullReporter, apply_plan
from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.state import State
from support import fast_tuning, make_products, plan_products, sandbox_targets

GTINS = ["7891404130317", "7898915633481", "4006381333931", "5012345678900", "0737963000128", "8711252045320"]
MINE = ("vtex_ads", "bloomreach", "venddor")
# per provider: the override by which the API refuses a product, as documented
REFUSED = {
    "vtex_ads": {"tags": ["x" * 80]},             # a 422 naming the item (tags of at most 64 characters)
    "bloomreach": {"no_such_field": "x"},         # a per-item error (a property not in the catalog)
    "venddor": {"price": "8.99"},                 # the bare 400 (a decimal point): found by bisection
}
OUTCOME = {"vtex_ads": "accepted", "bloomreach": "accepted", "venddor": "confirmed"}

sandbox = sandbox_fixture(async_delay=0.05, latency=0.001)


def products(refused: dict[int, dict]) -> list[dict]:
    return [product(f"P{i}", gtin=gtin, **({"overrides": refused[i]} if i in refused else {}))
            for i, gtin in enumerate(GTINS)]


def workspace(ws, urls, name):
    ws.write("targets.yaml", {"targets": {"t": target(name, urls[name])}})
    return ws


def planned(ws) -> list[tuple[str, str]]:
    plan = orjson.loads(ws.run("plan", "--format", "json").stdout)
    return sorted((c["sku"], c["record"]) for c in plan["targets"]["t"]["changes"])


@pytest.mark.parametrize("name", MINE)
def test_refused_items_fail_alone_and_are_planned_again(ws, sandbox, name):
    sandbox.reset()
    workspace(ws, sandbox.urls, name)
    refused = {1: {"t": REFUSED[name]}, 4: {"t": REFUSED[name]}}  # overrides by target name
    ws.write("products.yaml", {"products": products(refused)})
    result = ws.run("apply", "--auto-approve", "--format", "json")
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout)["targets"]["t"]
    assert sorted(f["sku"] for f in report["failed_items"]) == ["P1", "P4"]
    state = State(ws.root / "state" / "reconciler.db", create=False)
    outcomes = {(i.sku, i.record): i.last_outcome for i in state.items("t")}
    refused_items = {("P1", "product"), ("P4", "product")}  # VTEX: their inventory records went through
    assert {sku for sku, _ in outcomes} >= {"P0", "P2", "P3", "P5"} and not refused_items & set(outcomes)
    assert set(outcomes.values()) == {OUTCOME[name]}
    assert {(f["sku"], f["record"]) for f in state.failures("t")} == refused_items
    state.close()
    assert planned(ws) == sorted(refused_items)
    queued_work_done(sandbox)
    stored = sandbox.simulators[name].stored(ws_target_settings(name))
    assert {key for _, key in stored} >= {key_of(name, i) for i in (0, 2, 3, 5)}
    assert not {key for record, key in stored if record == "product"} & {key_of(name, i) for i in (1, 4)}


def ws_target_settings(name: str) -> dict:
    return dict(target(name)["settings"])


def key_of(name: str, i: int) -> str:
    return GTINS[i] if name == "venddor" else f"P{i}"


@pytest.mark.parametrize("name", MINE)
def test_a_proxy_page_with_200_records_nothing(state, name):
    with Sandbox(SandboxConfig(port=0, latency=0)) as proxied:
        proxied.simulators[name].serve_proxy_pages(writes=1000)
        targets = sandbox_targets(proxied.urls, providers=(name,))
        products = make_products(5)
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning(max_attempts=3))
        counts = result.targets[name]
        assert counts.confirmed == counts.accepted == counts.failed == 0 and counts.not_sent == counts.total > 0
        # every attempt failed: the target stops with one message, not a failure per item
        assert result.failures == [] and counts.error.startswith(f"{name} kept failing: "), counts.error
        assert f"(last: unexpected answer from {name} (HTTP 200): <!DOCTYPE html>" in counts.error
        assert list(state.items(name)) == [] and state.accepted() == []
        assert proxied.log and all(entry["fault"] == "proxy_page" for entry in proxied.log)  # none reached the API
        assert len(plan_products(state, targets, products).targets[name].changes) == counts.total


def test_verify_finds_the_queued_work_bloomreach_never_did(ws):
    with Sandbox(SandboxConfig(port=0, queue_drop_rate=0.5, seed=3, async_delay=0.02, latency=0)) as lossy:
        workspace(ws, lossy.urls, "bloomreach")
        ws.write("products.yaml", {"products": [product(f"P{i:02d}") for i in range(20)]})
        assert ws.run("apply", "--auto-approve").exit_code == 0  # everything accepted
        queued_work_done(lossy)
        done = {key for _, key in lossy.simulators["bloomreach"].stored(ws_target_settings("bloomreach"))}
        assert 0 < len(done) < 20
        verify = ws.run("status", "--verify")
        assert verify.exit_code == 1
        assert f"t: read back: {len(done)} confirmed, {20 - len(done)} failed" in verify.output
        state = State(ws.root / "state" / "reconciler.db", create=False)
        assert {i.key for i in state.items("t") if i.last_outcome == "confirmed"} == done
        assert {f["key"] for f in state.failures("t")} == {f"P{i:02d}" for i in range(20)} - done
        state.close()
        assert {sku for sku, _ in planned(ws)} == {f"P{i:02d}" for i in range(20)} - done


def test_a_property_partial_update_cannot_remove_is_planned_with_a_warning(ws, sandbox):
    sandbox.reset()
    workspace(ws, sandbox.urls, "bloomreach")
    ws.write("products.yaml", {"products": [product("P0", attributes={"color": "red"}), product("P1")]})
    assert ws.run("apply", "--auto-approve").exit_code == 0
    ws.write("products.yaml", {"products": [product("P0"), product("P1")]})  # color removed
    for _ in range(2):  # applied, and planned again: Bloomreach still holds it
        plan = ws.run("plan")
        assert "Warning: Target t: 1 update(s) remove properties (color) that Bloomreach's partial update " \
               "cannot remove" in plan.stdout
        assert "update_mode: full" in plan.stdout
        document = orjson.loads(ws.run("plan", "--format", "json").stdout)
        assert document["targets"]["t"]["warnings"][0].startswith("1 update(s) remove properties (color)")
        applied = ws.run("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        queued_work_done(sandbox)
        assert sandbox.simulators["bloomreach"].stored(ws_target_settings("bloomreach"))[("product", "P0")][
            "color"] == "red"
        state = State(ws.root / "state" / "reconciler.db", create=False)
        assert state.item("t", "product", "P0").payload["color"] == "red"  # what Bloomreach holds
        state.close()
    # a full replace is the documented way: no warning, and the property is gone
    ws.write("targets.yaml", {"targets": {"t": {**target("bloomreach", sandbox.urls["bloomreach"]),
                                                 "settings": {**ws_target_settings("bloomreach"),
                                                              "update_mode": "full"}}}})
    plan = ws.run("plan")
    assert "Warning" not in plan.stdout and "- color" in plan.stdout
    assert ws.run("apply", "--auto-approve").exit_code == 0
    queued_work_done(sandbox)
    assert "color" not in sandbox.simulators["bloomreach"].stored(ws_target_settings("bloomreach"))[("product", "P0")]
    assert ws.run("plan", "--detailed-exitcode").exit_code == 0


def test_bisection_of_requests_refused_as_a_whole_is_bounded(state):
    """A global 400 that comes back whatever is sent (no single item at fault): the
    engine bisects at most ``Tuning.split_requests`` requests, then fails the rest."""
    import httpx

    from reconciler.apply import Tuning
    from reconciler.manifest.models import Target
    from reconciler.plan.model import Change, FieldDiff, Plan, TargetPlan

    sent = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(len(orjson.loads(request.content)))
        return httpx.Response(400, json={"errors": {"_global": ["Item parsing error"]}, "success": False})

    bloom = Target(name="bloom", provider="bloomreach", base_url="http://bloomreach.test",
                   auth={"key_id": "k", "key_secret": "s"}, settings={"project_id": "p", "catalog_id": "c"})
    changes = tuple(Change("create", "product", f"K{i:03d}", f"K{i:03d}", None, {"title": str(i)},
                           FieldDiff(added=("title",))) for i in range(200))
    plan = Plan(state.lineage, state.serial, {"bloom": TargetPlan("bloom", "bloomreach", changes, 0)})
    result = apply_plan(plan, {"bloom": bloom}, state, reporter=NullReporter(), transport=httpx.MockTransport(refuse),
                        tuning=Tuning(split_requests=8, backoff_base=0.001, backoff_cap=0.01, window_scale=0.001))
    assert result.targets["bloom"].failed == 200
    assert len(sent) <= 1 + 8 and sent[0] == 200  # the first, then at most 8 bisected ones
    assert any("not bisected further" in f.reason for f in result.failures)
