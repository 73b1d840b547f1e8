"""Items a destination refuses in its documented way end failed, the others confirmed,
and the next plan proposes exactly the refused ones again (issue 10 items 2, 3, 6):
Voucherify's async action results (both documented shapes), Meta's sampled errors and
ids_of_invalid_requests, Meta's refusals that stop a target, what Voucherify and Meta
read back, and a 200 HTML page in their place, over real sockets (mostly through the
command line)."""
from __future__ import annotations

import orjson
import pytest

from reconciler.apply import NullReporter, apply_plan
from reconciler.providers.voucherify import Voucherify
from reconciler.state import State

from conftest import product, sandbox_fixture, target
from support import fast_tuning, make_products, plan_products, sandbox_targets

sandbox = sandbox_fixture(time_scale=0.001, async_delay=0.05, latency=0, scope="function")


def planned(ws, name: str) -> list[tuple[str, str]]:
    result = ws.run("plan", "--format", "json")
    assert result.exit_code == 0, result.output
    return sorted((c["action"], c["key"]) for c in orjson.loads(result.stdout)["targets"][name]["changes"])


def state_keys(ws, name: str) -> set[str]:
    state = State(ws.state_location)
    try:
        return {item.key for item in state.items(name)}
    finally:
        state.close()


def writes(sb, provider: str) -> list[dict]:
    return [e for e in sb.log if e["provider"] == provider and e["method"] == "POST"]


# -- Voucherify ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["current", "results"])
def test_voucherify_products_refused_by_the_metadata_schema(ws, sandbox, shape):
    simulator = sandbox.simulators["voucherify"]
    simulator.result_shape = shape
    simulator.set_metadata_schema({"size": {"type": "number"}})
    ws.write("targets.yaml", {"targets": {"vouch": target("voucherify", sandbox.urls["voucherify"])}})
    refused = {f"BAD-{i}" for i in range(3)}
    ws.write("products.yaml", {"products": [product(f"OK-{i}", metadata={"size": i}) for i in range(5)]
                               + [product(sku, metadata={"size": "XL"}) for sku in sorted(refused)]})
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    for sku in refused:
        assert sku in result.output
    assert state_keys(ws, "vouch") == {f"OK-{i}" for i in range(5)}
    assert {p["source_id"] for p in simulator.items()} == {f"OK-{i}" for i in range(5)}
    assert planned(ws, "vouch") == sorted(("create", sku) for sku in refused)


def test_voucherify_unattributable_failures_confirm_nothing_of_their_action(ws, sandbox):
    """The current result shape counts failures without naming products: in an action
    where one product of two was refused, neither is confirmed, and both are proposed again."""
    simulator = sandbox.simulators["voucherify"]
    ws.write("targets.yaml", {"targets": {"vouch": target("voucherify", sandbox.urls["voucherify"])}})
    ws.write("products.yaml", {"products": [product("KNOWN", metadata={"tier": "gold"})]})
    assert ws.run("apply", "--auto-approve").exit_code == 0
    simulator.set_metadata_schema({"tier": {"type": "string", "optional": False}})
    ws.write("products.yaml", {"products": [product("KNOWN", metadata={"tier": "gold", "x": 1}),
                                            product("NEW", metadata={"x": 1})]})
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "not confirmed" in result.output
    assert len(writes(sandbox, "voucherify")) == 2  # one change, one request, one action
    assert simulator.stored({})[("product", "KNOWN")]["metadata"] == {"tier": "gold", "x": 1}
    assert planned(ws, "vouch") == [("create", "NEW"), ("update", "KNOWN")]


def test_voucherify_delete_of_a_product_gone_creates_nothing(ws, sandbox):
    simulator = sandbox.simulators["voucherify"]
    ws.write("targets.yaml", {"targets": {"vouch": target("voucherify", sandbox.urls["voucherify"],
                                                          max_delete_fraction=1.0)}})
    ws.write("products.yaml", {"products": [product(f"P-{i}") for i in range(4)]})
    assert ws.run("apply", "--auto-approve").exit_code == 0
    with simulator.lock:  # someone deletes two products in the dashboard
        del simulator.products["P-0"], simulator.products["P-1"]
    sent = len(writes(sandbox, "voucherify"))
    ws.write("products.yaml", {"products": [product("P-3")]})
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert sorted(p["source_id"] for p in simulator.items()) == ["P-2", "P-3"]  # P-0, P-1 not upserted
    [post] = writes(sandbox, "voucherify")[sent:]
    assert post["items"] == 1  # only P-2 was nulled
    reads = [e["path"] for e in sandbox.log if e["path"].startswith("/v1/products/P-")]
    assert sorted(reads) == ["/v1/products/P-0", "/v1/products/P-1", "/v1/products/P-2"]
    assert state_keys(ws, "vouch") == {"P-3"} and planned(ws, "vouch") == []


def test_voucherify_past_9900_products_reads_one_by_one_and_never_asks_page_100(ws, sandbox, monkeypatch):
    """With pages of 2 the listing reaches 198 products (the production path with a
    smaller limit); the state's others are read one by one, and no request asks page > 99."""
    monkeypatch.setattr(Voucherify, "read_page_size", 2)
    ws.write("targets.yaml", {"targets": {"vouch": target("voucherify", sandbox.urls["voucherify"])}})
    ws.write("products.yaml", {"products": [product(f"S-{i:03d}") for i in range(205)]})
    assert ws.run("apply", "--auto-approve").exit_code == 0
    assert len(writes(sandbox, "voucherify")) == 1  # one metadata change for all
    simulator = sandbox.simulators["voucherify"]
    with simulator.lock:  # changed behind our back, past the listing's reach
        simulator.products["S-203"]["metadata"]["origin"] = "elsewhere"

    for command in (("drift",), ("plan", "--refresh"), ("import", "-t", "vouch")):
        mark = len(sandbox.log)
        result = ws.run(*command)
        assert result.exit_code == {"drift": 2}.get(command[0], 0), (command, result.output)
        listed = [e for e in sandbox.log[mark:] if e["path"] == "/v1/products"]
        assert len(listed) == 99
        one_by_one = [e["path"] for e in sandbox.log[mark:] if e["path"].startswith("/v1/products/")]
        assert sorted(one_by_one) == [f"/v1/products/S-{i}" for i in range(198, 205)]
        assert "the catalog has 205 products, and the API lists at most 198 (99 pages of 2)" in result.output
        assert sandbox.violations == []
        if command[0] == "drift":
            assert "product S-203 (changed remotely)" in result.output
            assert "the other items of the state were read one by one" in result.output
        if command[0] == "plan":
            assert "~ product S-203" in result.output and "1 to update" in result.output


# -- Meta -----------------------------------------------------------------------------------
def meta_ws(ws, sandbox, products, **extra):
    ws.write("targets.yaml", {"targets": {"meta": target("meta_catalog", sandbox.urls["meta_catalog"], **extra)}})
    ws.write("products.yaml", {"products": products})


def test_meta_more_invalid_lines_than_the_errors_sample(ws, sandbox):
    """25 invalid lines in one batch: the status shows 10 of them; ids_of_invalid_requests
    names all 25, which fail, and only they."""
    refused = [f"BAD-{i:02d}" for i in range(25)]
    products = ([product(f"OK-{i:02d}") for i in range(35)]
                + [product(sku, overrides={"meta": {"color": 5}}) for sku in refused])  # color must be a string
    meta_ws(ws, sandbox, products)
    result = ws.run("apply", "--auto-approve", "--format", "json")
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout)["targets"]["meta"]
    assert len(writes(sandbox, "meta_catalog")) == 1
    failed = {f["key"]: f["reason"] for f in report["failed_items"]}
    assert sorted(failed) == refused
    with_message = [k for k, reason in failed.items() if "color must be a string" in reason]
    assert len(with_message) == 10  # the sample's
    assert all("in ids_of_invalid_requests" in failed[k] for k in set(refused) - set(with_message))
    assert state_keys(ws, "meta") == {f"OK-{i:02d}" for i in range(35)}
    assert planned(ws, "meta") == [("create", sku) for sku in refused]
    polls = [e for e in sandbox.log if e["path"].endswith("/check_batch_request_status")]
    assert polls and sandbox.violations == []


def test_meta_too_much_data_splits_and_the_byte_limit_is_honoured(ws, sandbox):
    sandbox.simulators["meta_catalog"].max_batch_bytes = 8_000
    meta_ws(ws, sandbox, [product(f"P-{i:02d}") for i in range(40)])
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    batches = writes(sandbox, "meta_catalog")
    assert batches[0]["status"] == 500 and len(batches) > 2
    assert all((e["status"] == 200) == (e["bytes"] <= 8_000) for e in batches)  # halved until small enough
    assert state_keys(ws, "meta") == {f"P-{i:02d}" for i in range(40)}
    # a target's own byte limit: Meta documents none
    ws.write("products.yaml", {"products": [product(f"P-{i:02d}", name="Renamed") for i in range(40)]})
    ws.write("targets.yaml", {"targets": {"meta": target("meta_catalog", sandbox.urls["meta_catalog"],
                                                         limits={"max_bytes_per_request": 500})}})
    mark = len(sandbox.log)
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    sent = [e for e in sandbox.log[mark:] if e["method"] == "POST"]
    assert len(sent) > 1 and all(e["bytes"] <= 500 and e["status"] == 200 for e in sent)


def test_meta_refused_permission_stops_the_target_at_once(ws, sandbox):
    meta_ws(ws, sandbox, [product(f"P-{i}") for i in range(50)],  # five batches of 10
            auth={"access_token": "sandbox-limited-token"}, limits={"max_items_per_request": 10})
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "lacks a permission" in result.output and "code 200" in result.output
    assert "sandbox-limited-token" not in result.output
    assert len(writes(sandbox, "meta_catalog")) == 1  # not one call per batch


def test_meta_reads_formatted_prices_back(ws, sandbox):
    products = [product("USD", price="1299.00", currency="USD"), product("BRL", price="1299.90", currency="BRL"),
                product("EUR", price="1299.00", currency="EUR"), product("JPY", price="1299", currency="JPY"),
                product("KWD", price="1299.500", currency="KWD")]
    meta_ws(ws, sandbox, products)
    assert ws.run("apply", "--auto-approve").exit_code == 0
    result = ws.run("drift", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)["targets"]["meta"]["summary"]
    assert summary["in_sync"] == 5 and summary["changed"] == 0


# -- a 200 that is not the API's answer ------------------------------------------------------
@pytest.mark.parametrize("provider", ["meta_catalog", "voucherify"])
def test_a_200_html_page_records_nothing_as_applied(sandbox, tmp_path, provider):
    """A proxy answers every write with a 200 HTML page: nothing is confirmed, the target
    stops after the attempts (every one failed: one message, not one per item); then a
    proxy page on the status calls only delays them."""
    state = State(tmp_path / "reconciler.db")
    targets = sandbox_targets(sandbox.urls, providers=(provider,))
    simulator = sandbox.simulators[provider]
    products = make_products(5)
    simulator.serve_proxy_pages(writes=1000)
    result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                        tuning=fast_tuning(max_attempts=3))
    stopped = result.targets[provider]
    assert not result.ok and result.failures == [] and stopped.not_sent == 5
    assert stopped.error.startswith(f"{provider} kept failing: ")  # its requests' attempts, all failed
    assert "unexpected answer" in stopped.error and "Sign in to continue" in stopped.error
    assert list(state.items(provider)) == [] and simulator.stored(targets[provider].settings) == {}
    assert {e["fault"] for e in writes(sandbox, provider)} == {"proxy_page"}

    simulator.serve_proxy_pages(writes=-simulator.proxy_pages["write"], reads=2)
    result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                        tuning=fast_tuning())
    assert result.ok and len(list(state.items(provider))) == 5
    polls = [e for e in sandbox.log if e["provider"] == provider and e["method"] == "GET"]
    assert [e["fault"] for e in polls[:2]] == ["proxy_page"] * 2 and len(polls) > 2
    state.close()
