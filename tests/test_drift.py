"""`reconciler drift` and `plan --refresh` against the in-process sandbox over real
sockets: the remote is populated with `apply`, then changed behind our back through
the providers' own APIs, and every drift category, format and exit code is checked."""
from __future__ import annotations

import base64
import time

import httpx
import orjson
import pytest

from reconciler.apply import Tuning
from reconciler.drift import DriftReport, ItemDrift, TargetDrift
from reconciler.drift.compare import Comparer, FieldDrift
from reconciler.drift.reader import DriftError, read_catalogs
from reconciler.drift.render import render_markdown
from reconciler.errors import ConfigError
from reconciler.manifest.models import Target
from reconciler.providers.meta_catalog import MetaCatalog
from reconciler.providers.voucherify import Voucherify
from reconciler.state import State

from conftest import product, queued_work_done, sandbox_fixture, target
from reconciler.sandbox import Sandbox, SandboxConfig

ENV = {
    "META_TOKEN": "sandbox-token",
    "BR_KEY_ID": "sandbox-key", "BR_KEY_SECRET": "sandbox-secret",
    "VF_APP_ID": "sandbox-app", "VF_APP_TOKEN": "sandbox-token",
    "VTEX_APP_ID": "sandbox-app", "VTEX_API_KEY": "sandbox-key",
}
SECRETS = ("sandbox-token", "sandbox-secret", base64.b64encode(b"sandbox-key:sandbox-secret").decode())
META_BATCH = "/v21.0/1234567890/batch"
BLOOM_ITEMS = "/data/v2/projects/p1/catalogs/c1/items"


sandbox = sandbox_fixture(time_scale=0.001, async_delay=0.05, scope="function")


@pytest.fixture
def env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def catalog_targets(sb: Sandbox, **extra) -> dict:
    targets = {
        "meta": target("meta_catalog", sb.urls["meta_catalog"], auth={"access_token": "${META_TOKEN}"}),
        "bloom": target("bloomreach", sb.urls["bloomreach"],
                        auth={"key_id": "${BR_KEY_ID}", "key_secret": "${BR_KEY_SECRET}"}),
        "vouch": target("voucherify", sb.urls["voucherify"],
                        auth={"app_id": "${VF_APP_ID}", "app_token": "${VF_APP_TOKEN}"}),
        "vtex": target("vtex_ads", sb.urls["vtex_ads"],
                       auth={"app_id": "${VTEX_APP_ID}", "api_key": "${VTEX_API_KEY}"}),
    }
    for name, changes in extra.items():
        targets[name].update(changes)
    return targets


def applied_ws(ws, sb, count: int = 4, **extra):
    ws.write("targets.yaml", {"targets": catalog_targets(sb, **extra)})
    ws.write("products.yaml", {"products": [product(f"SKU-{i}") for i in range(1, count + 1)]})
    result = ws.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    queued_work_done(sb)  # Bloomreach stores what it accepted a moment later
    return ws


# -- changing the remote behind our back ---------------------------------------------------
def clock_moved_to(sb: Sandbox, provider: str, due: float) -> None:
    """Move ``provider``'s simulator clock on to ``due`` (when a job of its ends) at
    once; it goes on from there. The job is done when the test asks, however loaded
    the machine: no waiting on wall time."""
    simulator = sb.simulators[provider]
    clock, ahead = simulator.now, max(0.0, due - simulator.now())
    simulator.now = lambda: clock() + ahead


def meta_batch(sb: Sandbox, requests: list[dict]) -> None:
    base = sb.urls["meta_catalog"]
    headers = {"Authorization": "Bearer sandbox-token"}
    answer = httpx.post(base + META_BATCH, headers=headers, json={"requests": requests})
    answer.raise_for_status()
    handle = answer.json()["handles"][0]
    clock_moved_to(sb, "meta_catalog", sb.simulators["meta_catalog"].batches[handle].due)
    status = httpx.get(base + "/v21.0/1234567890/check_batch_request_status", headers=headers,
                       params={"handle": handle}).json()["data"][0]
    assert status["status"] == "finished" and status["errors"] == [], status


def voucherify_metadata(sb: Sandbox, source_ids: list[str], metadata: dict) -> None:
    base = sb.urls["voucherify"]
    headers = {"X-App-Id": "sandbox-app", "X-App-Token": "sandbox-token"}
    answer = httpx.post(base + "/v1/products/metadata/async", headers=headers,
                        json={"source_ids": source_ids, "metadata": metadata})
    answer.raise_for_status()
    action = answer.json()["async_action_id"]
    clock_moved_to(sb, "voucherify", sb.simulators["voucherify"].actions[action].due)
    status = httpx.get(f"{base}/v1/async-actions/{action}", headers=headers).json()
    assert status["status"] == "DONE", status


def bloomreach_partial(sb: Sandbox, items: list[dict]) -> None:
    answer = httpx.post(sb.urls["bloomreach"] + BLOOM_ITEMS + "/partial-update",
                        auth=("sandbox-key", "sandbox-secret"), json=items)
    answer.raise_for_status()
    assert all(r["success"] == "True" for r in answer.json()), answer.text
    sb.simulators["bloomreach"].finish_queued()


def drift_behind_our_back(sb: Sandbox) -> None:
    meta_batch(sb, [
        {"method": "UPDATE", "retailer_id": "SKU-1", "data": {"price": 1299, "sale_price": 500, "category": ""}},
        {"method": "DELETE", "retailer_id": "SKU-2"},
        {"method": "CREATE", "retailer_id": "SKU-9", "data": {
            "name": "Stray", "description": "Made elsewhere", "url": "https://x.example/9",
            "image_url": "https://x.example/9.jpg", "price": 100, "currency": "USD",
            "availability": "in stock", "condition": "new", "brand": "Other"}},
    ])
    voucherify_metadata(sb, ["SKU-3"], {"origin": "elsewhere"})
    bloomreach_partial(sb, [{"item_id": "SKU-4", "properties": {"title": "Renamed"}}])


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def drift_json(ws, *args: str) -> tuple[int, dict]:
    result = ws.run("drift", "--format", "json", *args)
    return result.exit_code, orjson.loads(result.stdout)


# -- the categories, formats and exit codes ---------------------------------------------------
def test_no_drift_right_after_apply(ws, sandbox, env):
    applied_ws(ws, sandbox)
    result = ws.run("drift")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("No drift. The readable destinations match the state.")
    assert "vtex_ads cannot be read" in result.stdout
    code, data = drift_json(ws)
    assert code == 0 and data["drift"] is False and data["errors"] is False
    assert data["targets"]["meta"]["summary"] == {"remote": 4, "state": 4, "in_sync": 4,
                                                  "changed": 0, "missing": 0, "unknown": 0}


def test_every_category_in_text(ws, sandbox, env):
    applied_ws(ws, sandbox)
    drift_behind_our_back(sandbox)
    result = ws.run("drift")
    assert result.exit_code == 2, result.output
    out = result.stdout
    assert out.startswith("Drift found.")
    assert out.index("Summary:") < out.index("Target meta")
    assert "~ product SKU-1 (changed remotely)" in out
    assert "~ price = 1000 -> 1299" in out
    assert "+ sale_price = 500   (only remotely)" in out
    assert '- category = "Home > Kitchen"   (only in the state)' in out
    assert "- product SKU-2 (missing remotely)" in out
    assert "+ product SKU-9 (unknown to the state)" in out
    assert '~ metadata.origin = "test" -> "elsewhere"' in out
    assert '~ title = "Product SKU-4" -> "Renamed"' in out
    assert "Drift: 3 changed remotely, 1 missing remotely, 1 unknown to the state." in out
    assert "reconciler plan --refresh" in out and "reconciler import -t meta" in out
    assert_no_secret(result.output)


def test_json_shape(ws, sandbox, env):
    applied_ws(ws, sandbox)
    drift_behind_our_back(sandbox)
    code, data = drift_json(ws)
    assert code == 2
    assert set(data) == {"format_version", "lineage", "state_serial", "drift", "errors", "summary", "targets"}
    state = State(ws.root / "state" / "reconciler.db")
    assert (data["lineage"], data["state_serial"]) == (state.lineage, state.serial)
    assert data["summary"] == {"changed": 3, "missing": 1, "unknown": 1}
    meta = data["targets"]["meta"]
    assert meta["summary"] == {"remote": 4, "state": 4, "in_sync": 2, "changed": 1, "missing": 1, "unknown": 1}
    assert meta["changed"] == [{"sku": "SKU-1", "key": "SKU-1", "record": "product", "fields": [
        {"field": "category", "kind": "removed", "state": "Home > Kitchen"},
        {"field": "price", "kind": "changed", "state": 1000, "remote": 1299},
        {"field": "sale_price", "kind": "added", "remote": 500},
    ]}]
    assert meta["missing"] == [{"sku": "SKU-2", "key": "SKU-2", "record": "product"}]
    assert meta["unknown"][0]["key"] == "SKU-9" and meta["unknown"][0]["remote"]["name"] == "Stray"
    assert meta["pending"] == {"create": 0, "update": 0, "delete": 0, "unchanged": 4}
    vouch = data["targets"]["vouch"]["changed"][0]
    assert vouch["fields"] == [{"field": "metadata.origin", "kind": "changed", "state": "test", "remote": "elsewhere"}]
    vtex = data["targets"]["vtex"]
    assert vtex["readable"] is False and vtex["summary"] is None and "cannot be read" in vtex["note"]
    assert vtex["pending"]["unchanged"] == 8


def test_markdown_is_summary_first(ws, sandbox, env):
    applied_ws(ws, sandbox)
    drift_behind_our_back(sandbox)
    result = ws.run("drift", "--format", "markdown")
    assert result.exit_code == 2
    md = result.stdout
    assert md.startswith("## reconciler drift\n")
    assert "**Drift found.** 3 changed remotely, 1 missing remotely, 1 unknown to the state." in md
    table = md.index("| target | provider | remote | state | changed | missing | unknown |")
    assert table < md.index("<details>")
    assert "| `meta` | `meta_catalog` | 4 | 4 | 1 | 1 | 1 |" in md
    assert "| `vtex` | `vtex_ads` | not readable |" in md
    assert md.count("```diff") == md.count("</details>") == 3
    assert "-     price = 1000\n+     price = 1299" in md
    assert_no_secret(result.output)


def test_markdown_truncates_to_fit_a_comment():
    changed = [ItemDrift("product", f"SKU-{i}", f"SKU-{i}",
                         (FieldDrift(("description",), "changed", "x" * 100, "y" * 100),)) for i in range(2000)]
    report = DriftReport("l", 1, {"meta": TargetDrift("meta", "meta_catalog", True, remote_count=2000,
                                                      state_count=2000, changed=changed)})
    md = render_markdown(report)
    assert len(md) <= 60_000
    assert "Report truncated" in md and md.count("```") % 2 == 0
    assert md.count("<details>") == md.count("</details>")


def test_ignore_fields_are_never_reported(ws, sandbox, env):
    applied_ws(ws, sandbox, meta={"ignore_fields": ["availability"]},
               vouch={"ignore_fields": ["metadata.origin"]})
    meta_batch(sandbox, [{"method": "UPDATE", "retailer_id": "SKU-1", "data": {"availability": "out of stock"}}])
    voucherify_metadata(sandbox, ["SKU-2"], {"origin": "elsewhere"})
    result = ws.run("drift")
    assert result.exit_code == 0, result.output
    assert "availability" not in result.stdout and "origin" not in result.stdout
    meta_batch(sandbox, [{"method": "UPDATE", "retailer_id": "SKU-1", "data": {"price": 1500}}])
    code, data = drift_json(ws)
    assert code == 2
    assert [f["field"] for f in data["targets"]["meta"]["changed"][0]["fields"]] == ["price"]
    # and the repair leaves the ignored field alone
    plan = orjson.loads(ws.run("plan", "--refresh", "--format", "json").stdout)
    (change,) = plan["targets"]["meta"]["changes"]
    assert change["fields"] == {"changed": ["price"], "added": [], "removed": []}


def test_fields_another_system_owns_are_not_drift(ws, sandbox, env):
    applied_ws(ws, sandbox)
    # Bloomreach in partial mode: a catalog property our mapping never produces
    bloomreach_partial(sandbox, [{"item_id": "SKU-1", "properties": {"color": "red"}}])
    # Voucherify merges metadata: a key we never set
    voucherify_metadata(sandbox, ["SKU-1"], {"loyalty_tier": "gold"})
    result = ws.run("drift")
    assert result.exit_code == 0, result.output
    # a property our mapping does produce is ours, and its appearance is drift
    bloomreach_partial(sandbox, [{"item_id": "SKU-1", "properties": {"availability": "preorder"}}])
    code, data = drift_json(ws, "-t", "bloom")
    assert code == 2
    assert data["targets"]["bloom"]["changed"][0]["fields"] == [
        {"field": "availability", "kind": "changed", "state": "in stock", "remote": "preorder"}]


def test_pending_changes_are_a_line_not_drift(ws, sandbox, env):
    applied_ws(ws, sandbox)
    ws.write("products.yaml", {"products": [product(f"SKU-{i}", price="12.00" if i == 1 else "10.00")
                                            for i in range(1, 6)]})
    result = ws.run("drift")
    assert result.exit_code == 0, result.output
    assert "1 to create, 1 to update, 0 to delete" in result.stdout
    assert "No drift" in result.stdout


def test_target_selection(ws, sandbox, env):
    applied_ws(ws, sandbox)
    drift_behind_our_back(sandbox)
    code, data = drift_json(ws, "-t", "bloom", "-t", "vtex")
    assert code == 2 and set(data["targets"]) == {"bloom", "vtex"}
    result = ws.run("drift", "-t", "nope")
    assert result.exit_code == 1 and "unknown target 'nope'" in result.output


def test_only_unreadable_providers(ws):
    ws.write("targets.yaml", {"targets": {"vtex": target("vtex_ads")}})
    ws.write("products.yaml", {"products": [product("SKU-1", gtin="4006381333931")]})
    result = ws.run("drift")  # no network: nothing can be read
    assert result.exit_code == 0, result.output
    assert "vtex_ads cannot be read" in result.stdout
    assert "2 to create" in result.stdout
    code, data = drift_json(ws)
    assert code == 0 and data["drift"] is False


def test_unset_variable_is_an_error_and_the_others_are_reported(ws, sandbox, env):
    applied_ws(ws, sandbox)
    env.delenv("META_TOKEN")
    result = ws.run("drift")
    assert result.exit_code == 1
    assert "environment variable META_TOKEN is not set" in result.stdout
    assert "bloom" in result.stdout and "error" in result.stdout
    # what could not be read was not compared: the headline claims no match for it, and names it
    assert result.stdout.startswith("No drift where the catalogs could be read. Could not read meta.\n")
    assert "match the state" not in result.stdout
    markdown = ws.run("drift", "--format", "markdown").stdout
    assert "**No drift where the catalogs could be read.** Could not read `meta`.\n" in markdown
    # drift where the others could be read: found, and still not claimed for what was not read
    bloomreach_partial(sandbox, [{"item_id": "SKU-4", "properties": {"title": "Renamed"}}])
    result = ws.run("drift")
    assert result.exit_code == 1
    assert result.stdout.startswith("Drift found. Could not read meta.\n")
    markdown = ws.run("drift", "--format", "markdown").stdout
    assert ("**Drift found.** 1 changed remotely, 0 missing remotely, 0 unknown to the state. "
            "Could not read `meta`.\n") in markdown


def test_refused_credentials_exit_1_without_echoing_them(ws, sandbox, env):
    applied_ws(ws, sandbox)
    env.setenv("META_TOKEN", "wrong-but-secret-token")
    env.setenv("BR_KEY_SECRET", "another-wrong-secret")
    result = ws.run("drift", "--format", "markdown")
    assert result.exit_code == 1
    assert "refused the target's access token" in result.stdout
    assert "refused the target's credentials" in result.stdout
    assert "wrong-but-secret-token" not in result.output and "another-wrong-secret" not in result.output


def test_items_past_bloomreachs_listing_are_read_one_by_one(ws, sandbox, env, monkeypatch):
    import reconciler.providers.bloomreach.reads as bloomreach

    monkeypatch.setattr(bloomreach, "READ_REACH", 3)  # as if it listed 3 items, not 1,001
    applied_ws(ws, sandbox, count=6)
    bloomreach_partial(sandbox, [{"item_id": "SKU-5", "properties": {"title": "Renamed"}}])
    gone = httpx.request("DELETE", sandbox.urls["bloomreach"] + BLOOM_ITEMS + "/bulk-delete", json=["SKU-6"],
                         headers={"Authorization": "Basic " + base64.b64encode(b"sandbox-key:sandbox-secret").decode()})
    assert gone.json() == [{"success": True, "queued": True}]
    sandbox.simulators["bloomreach"].finish_queued()
    mark = time.monotonic()
    result = ws.run("drift", "-t", "bloom")
    assert result.exit_code == 2, result.output
    assert "the catalog has 5 items, and the API lists at most 3" in result.stdout
    assert "~ product SKU-5 (changed remotely)" in result.stdout
    assert "- product SKU-6 (missing remotely)" in result.stdout
    item_reads = [e["path"] for e in sandbox.log if e["started"] >= mark and e["path"].count("/items/")]
    assert sorted(item_reads) == [f"{BLOOM_ITEMS}/SKU-{i}" for i in (4, 5, 6)]
    # import reads the items of the state and the manifests past the listing, and says what it cannot see
    mark = time.monotonic()
    imported = ws.run("import", "-t", "bloom")
    assert imported.exit_code == 0, imported.output
    assert ("the other items of the state and the manifests were read one by one, and remote items unknown to the "
            "state and the manifests that the listing did not return cannot be found") in imported.output
    assert "adopted 1 (0 new to the state, 1 already in the state" in imported.output  # SKU-5, renamed
    item_reads = [e["path"] for e in sandbox.log if e["started"] >= mark and e["path"].count("/items/")]
    assert sorted(item_reads) == [f"{BLOOM_ITEMS}/SKU-{i}" for i in (4, 5, 6)]


def test_pages_are_read_one_at_a_time(ws, sandbox, env, monkeypatch):
    import reconciler.providers.bloomreach.reads as bloomreach

    applied_ws(ws, sandbox, count=5)
    monkeypatch.setattr(MetaCatalog, "read_page_size", 2)
    monkeypatch.setattr(bloomreach, "READ_PAGE", 2)
    monkeypatch.setattr(Voucherify, "read_page_size", 2)
    mark = time.monotonic()
    result = ws.run("drift")
    assert result.exit_code == 0, result.output
    for name in ("meta", "bloom", "vouch"):
        assert f"{name}: read 5 items in 3 page(s)" in result.stderr
    reads = [e for e in sandbox.log if e["started"] >= mark and e["method"] == "GET"]
    for provider in ("meta_catalog", "bloomreach", "voucherify"):
        mine = sorted((e for e in reads if e["provider"] == provider), key=lambda e: e["started"])
        assert len(mine) == 3
        assert all(b["started"] >= a["finished"] for a, b in zip(mine, mine[1:]))  # never two in flight
    assert sandbox.violations == []


def test_apply_and_drift_get_through_faulty_reads(ws, env, monkeypatch):
    """Job status polls and catalog reads answered 500/503/429 or dropped, over real
    sockets: apply settles every job, drift reads every page, and nothing is drift."""
    import reconciler.providers.bloomreach.reads as bloomreach

    monkeypatch.setattr(MetaCatalog, "read_page_size", 2)
    monkeypatch.setattr(bloomreach, "READ_PAGE", 2)
    monkeypatch.setattr(Voucherify, "read_page_size", 2)
    config = SandboxConfig(port=0, time_scale=0.001, async_delay=0.05, read_fault_rate=0.4, seed=3)
    with Sandbox(config) as sb:
        applied_ws(ws, sb, count=6)
        polls = [e for e in sb.log if "check_batch_request_status" in e["path"] or "async-actions" in e["path"]]
        assert any(e["fault"] for e in polls)  # and yet every job was settled
        assert State(ws.root / "state" / "reconciler.db").pending_jobs() == []
        result = ws.run("drift")
        assert result.exit_code == 0, result.output
        assert "No drift" in result.stdout
        for name in ("meta", "bloom", "vouch"):
            assert f"{name}: read 6 items in" in result.stderr
        assert "retrying a read" in result.stderr
        # seed 3: the first read of each simulator is faulted (Meta's and Voucherify's a poll)
        assert any(e["fault"] for e in sb.log if e["provider"] == "bloomreach" and e["method"] == "GET")


# -- plan --refresh ---------------------------------------------------------------------------
def test_refresh_plans_the_repair_without_touching_the_state(ws, sandbox, env):
    applied_ws(ws, sandbox)
    drift_behind_our_back(sandbox)
    db = ws.root / "state" / "reconciler.db"
    before = State(db)
    lineage, serial, payload = before.lineage, before.serial, before.item("meta", "product", "SKU-1").payload
    before.close()

    result = ws.run("plan", "--refresh", "--format", "json")
    assert result.exit_code == 0, result.output
    assert "refreshed: 1 changed remotely" in result.stderr
    plan = orjson.loads(result.stdout)
    assert (plan["lineage"], plan["state_serial"]) == (lineage, serial)
    meta = {c["sku"]: c for c in plan["targets"]["meta"]["changes"]}
    assert set(meta) == {"SKU-1", "SKU-2"}  # SKU-9 is unknown to the state: left out
    assert meta["SKU-1"]["action"] == "update"
    assert meta["SKU-1"]["before"]["price"] == 1299 and meta["SKU-1"]["after"]["price"] == 1000
    assert meta["SKU-1"]["fields"] == {"changed": ["price"], "added": ["category"], "removed": ["sale_price"]}
    assert meta["SKU-2"]["action"] == "create"
    (vouch,) = plan["targets"]["vouch"]["changes"]
    assert vouch["before"]["metadata"] == {"origin": "elsewhere"} and vouch["after"]["metadata"] == {"origin": "test"}
    (bloom,) = plan["targets"]["bloom"]["changes"]
    assert bloom["fields"]["changed"] == ["title"]
    assert plan["targets"]["vtex"]["changes"] == []
    assert "vtex: vtex_ads cannot be read" in result.stderr
    assert_no_secret(result.output)

    after = State(db)
    assert (after.lineage, after.serial) == (lineage, serial)
    assert after.item("meta", "product", "SKU-1").payload == payload
    assert after.item("meta", "product", "SKU-2") is not None
    after.close()
    assert ws.run("plan", "--detailed-exitcode").exit_code == 0  # a plain plan sees no drift


def test_apply_a_refreshed_plan_and_the_drift_is_gone(ws, sandbox, env):
    applied_ws(ws, sandbox)
    meta_batch(sandbox, [{"method": "UPDATE", "retailer_id": "SKU-1", "data": {"price": 1299}},
                         {"method": "DELETE", "retailer_id": "SKU-2"}])
    voucherify_metadata(sandbox, ["SKU-3"], {"origin": None})
    bloomreach_partial(sandbox, [{"item_id": "SKU-4", "properties": {"description": "Changed elsewhere"}}])
    assert ws.run("drift").exit_code == 2

    planfile = ws.root / "refresh.plan"
    result = ws.run("plan", "--refresh", "-o", str(planfile))
    assert result.exit_code == 0, result.output
    assert "~ price = 1299 -> 1000" in result.stdout
    assert "Plan: 2 to create, 2 to update, 0 to delete." in result.stdout  # SKU-3 reads as absent at voucherify
    result = ws.run("apply", str(planfile), "--auto-approve")
    assert result.exit_code == 0, result.output

    result = ws.run("drift")
    assert result.exit_code == 0, result.output
    assert "No drift" in result.stdout
    assert sandbox.catalog("meta_catalog", catalog_id="1234567890")[0]["price"] == 1000
    assert ws.run("plan", "--refresh", "--detailed-exitcode").exit_code == 0


def test_refresh_fails_when_a_readable_target_cannot_be_read(ws, sandbox, env):
    applied_ws(ws, sandbox)
    env.setenv("VF_APP_TOKEN", "not-the-token")
    result = ws.run("plan", "--refresh")
    assert result.exit_code == 1
    assert "cannot refresh the state" in result.output and "vouch" in result.output
    assert "not-the-token" not in result.output


# -- the reader: pacing and retries ------------------------------------------------------------------
def voucherify_target(**changes) -> Target:
    fields = dict(name="v", provider="voucherify", base_url="http://voucherify.test",
                  auth={"app_id": "app-id-1", "app_token": "token-secret-1234"})
    fields.update(changes)
    return Target(**fields)


def fast(**changes) -> Tuning:
    return Tuning(**{"backoff_base": 0.01, "backoff_cap": 0.05, **changes})


def test_reads_retry_429_5xx_and_dropped_connections_honouring_retry_after():
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-app-token"] == "token-secret-1234"
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.3"}, json={"code": 429, "message": "Too many"})
        if len(calls) == 2:
            return httpx.Response(503, json={"message": "unavailable"})
        if len(calls) == 3:
            raise httpx.ConnectError("connection refused", request=request)
        page = int(request.url.params["page"])
        return httpx.Response(200, json={"object": "list", "data_ref": "products", "total": 150,
                                         "products": [{"source_id": f"S-{page}", "metadata": {"a": page}}]})

    lines: list[str] = []
    result = read_catalogs([voucherify_target()], transport=httpx.MockTransport(handler), tuning=fast(),
                           progress=lines.append)["v"]
    assert not isinstance(result, Exception), result
    assert result.items == {("product", "S-1"): {"source_id": "S-1", "metadata": {"a": 1}},
                            ("product", "S-2"): {"source_id": "S-2", "metadata": {"a": 2}}}
    assert (result.pages, result.requests, result.retries) == (2, 5, 3)
    assert calls[1] - calls[0] >= 0.3  # Retry-After honoured
    assert any("retrying a read" in line for line in lines)
    assert all("token-secret-1234" not in line for line in lines)


def test_a_read_gives_up_after_max_attempts():
    handler = lambda request: httpx.Response(500, json={"message": "broken"})  # noqa: E731
    result = read_catalogs([voucherify_target()], transport=httpx.MockTransport(handler),
                           tuning=fast(max_attempts=3))["v"]
    assert isinstance(result, DriftError)  # every attempt of the target failed: it stopped, saying so
    assert str(result).startswith("voucherify kept failing: 3 attempts in a row")
    assert "(last: voucherify: server error (HTTP 500))" in str(result)


def test_a_client_error_is_not_retried_and_credentials_are_redacted():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(400, json={"message": "bad token token-secret-1234 in request"})

    result = read_catalogs([voucherify_target()], transport=httpx.MockTransport(handler), tuning=fast())["v"]
    assert isinstance(result, DriftError) and len(calls) == 1
    assert "token-secret-1234" not in str(result) and "***" in str(result)


def test_refused_credentials_stop_the_target():
    handler = lambda request: httpx.Response(401, json={"code": 401, "message": "Unauthorized"})  # noqa: E731
    result = read_catalogs([voucherify_target()], transport=httpx.MockTransport(handler), tuning=fast())["v"]
    assert isinstance(result, ConfigError) and "refused the target's credentials" in str(result)


def test_a_looping_cursor_is_stopped():
    def handler(request):
        return httpx.Response(200, json={"data": [{"retailer_id": "A", "name": "a"}],
                                         "paging": {"cursors": {"after": "A"}, "next": "https://next"}})

    meta = Target(name="m", provider="meta_catalog", base_url="http://meta.test", auth={"access_token": "t"},
                  settings={"catalog_id": "1", "api_version": "v21.0"})
    result = read_catalogs([meta], transport=httpx.MockTransport(handler), tuning=fast())["m"]
    assert isinstance(result, DriftError) and "twice" in str(result)


# -- normalisation --------------------------------------------------------------------------------
def test_normalisation_of_what_apis_return_differently():
    meta = Comparer(Target(name="m", provider="meta_catalog"))
    assert meta.diff({"price": 899, "gtin": "", "additional_image_urls": []}, {"price": 899.0}) == []
    assert meta.diff({"in": True}, {"in": 1}) != []
    bloom = Comparer(Target(name="b", provider="bloomreach", settings={"update_mode": "full"}))
    assert bloom.diff({"price": 8, "stock": None}, {"price": 8.0}) == []
    assert [f.field for f in bloom.diff({"price": 8}, {"price": 8, "color": "red"})] == ["color"]  # full: ours
    vouch = Comparer(Target(name="v", provider="voucherify"))
    assert vouch.diff({"source_id": "A", "metadata": {"a": 1, "b": None}},
                      {"source_id": "A", "metadata": {"a": 1, "other": 2}}) == []
    assert vouch.expected_absent({"source_id": "A", "metadata": {"b": None}})
