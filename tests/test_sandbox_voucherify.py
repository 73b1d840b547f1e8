"""Voucherify simulator over real sockets."""
from __future__ import annotations

import httpx
import orjson
import pytest

from conftest import emptied_before_each_test, eventually, sandbox_fixture

AUTH = {"X-App-Id": "sandbox-app", "X-App-Token": "sandbox-token"}
DELAY = 0.5


sb = sandbox_fixture(async_delay=DELAY, latency=0)


fresh = emptied_before_each_test()


@pytest.fixture
def base(sb):
    return sb.urls["voucherify"] + "/v1"


def update(base, source_ids, metadata):
    r = httpx.post(base + "/products/metadata/async", json={"source_ids": source_ids, "metadata": metadata},
                   headers=AUTH)
    assert r.status_code == 202, r.text
    return r.json()["async_action_id"]


def action(base, action_id):
    r = httpx.get(f"{base}/async-actions/{action_id}", headers=AUTH)
    assert r.status_code == 200
    return r.json()


def wait_done(base, action_id):
    return eventually(lambda: (a := action(base, action_id))["status"] == "DONE" and a, "the action being done")


@pytest.fixture
def clock(sb, monkeypatch):
    """The simulator's queue clock, moved by the test: ``clock[0]`` is now."""
    now = [1000.0]
    monkeypatch.setattr(sb.simulators["voucherify"], "now", lambda: now[0])
    return now


def test_status_progression_and_apply(sb, base, clock):
    aid = update(base, ["a", "b"], {"label": True, "origin": "PL"})
    assert aid.startswith("aa_")
    a = action(base, aid)
    assert a["status"] == "ENQUEUED" and a["type"] == "PRODUCTS.METADATA_UPDATE"
    assert a["object"] == "async_action" and a["operation_status"] is None and a["progress"] == 0
    assert a["result"] == {"done_count": 0, "failed_count": 0, "reports": [], "reports_available_till": None,
                           "errors": []}
    assert {"id", "progress", "created_at", "updated_at", "request_id", "processing_time"} <= set(a)
    assert sb.catalog("voucherify") == []
    clock[0] += DELAY * 0.6
    a = action(base, aid)
    assert a["status"] == "IN_PROGRESS" and 0 < a["progress"] < 100
    assert sb.catalog("voucherify") == []
    clock[0] += DELAY * 0.4
    a = action(base, aid)
    assert a["status"] == "DONE" and a["progress"] == 100 and a["operation_status"] == "SUCCESS"
    assert a["result"] == {"done_count": 2, "failed_count": 0, "reports": [], "reports_available_till": None,
                           "errors": []}
    products = sb.catalog("voucherify")
    assert [(p["source_id"], p["metadata"]) for p in products] == [
        ("a", {"label": True, "origin": "PL"}), ("b", {"label": True, "origin": "PL"})]
    assert products[0]["object"] == "product" and products[0]["id"].startswith("prod_")


def test_actions_run_one_after_another(sb, base, clock):
    first = update(base, ["a"], {"k": 1})
    second = update(base, ["a"], {"k": 2})
    clock[0] += DELAY
    assert action(base, first)["status"] == "DONE"
    assert action(base, second)["status"] == "DONE"  # due at the same time, after the first
    assert sb.catalog("voucherify")[0]["metadata"] == {"k": 2}
    third = update(base, ["a"], {"k": 3})
    clock[0] += DELAY * 0.4
    assert action(base, third)["status"] == "ENQUEUED"


def test_fifo_null_and_never_removed(sb, base):
    update(base, ["a"], {"k": 1, "keep": "x"})
    update(base, ["a"], {"k": 2})
    last = update(base, ["a"], {"k": None})
    wait_done(base, last)
    assert sb.catalog("voucherify")[0]["metadata"] == {"k": None, "keep": "x"}


@pytest.mark.parametrize("shape", ["current", "results"])
def test_metadata_schema_refuses_products(sb, base, shape, clock):
    def finish(base, aid):  # the action's time has come
        clock[0] += DELAY
        return action(base, aid)

    simulator = sb.simulators["voucherify"]
    simulator.result_shape = shape
    finish(base, update(base, ["old"], {"tier": "gold"}))
    simulator.set_metadata_schema({"tier": {"type": "string", "optional": False},
                                   "size": {"type": "number", "gte": 1, "lt": 50}})
    a = finish(base, update(base, ["old", "new"], {"size": 3}))
    assert a["operation_status"] == "UNKNOWN"  # one updated, one refused
    if shape == "results":
        assert a["result"] == {"done_count": 2, "results": [{"source_id": "old", "updated": True, "found": True},
                                                            {"source_id": "new", "updated": False, "found": False}]}
    else:
        assert a["result"]["done_count"] == 1 and a["result"]["failed_count"] == 1
        assert a["result"]["errors"] == [{"message": "Invalid metadata", "details": "property tier is required",
                                          "key": "invalid_metadata"}]
    a = finish(base, update(base, ["old"], {"size": 50.5}))
    assert a["operation_status"] == "FAILED"
    simulator.set_metadata_schema({"tier": {"type": "string"}}, allow_defined_only=True)
    assert finish(base, update(base, ["old"], {"other": 1}))["operation_status"] == "FAILED"
    assert finish(base, update(base, ["old"], {"tier": None}))["operation_status"] == "SUCCESS"
    assert sb.catalog("voucherify")[0]["metadata"] == {"tier": None, "size": 3}
    assert [p["source_id"] for p in sb.catalog("voucherify")] == ["old"]  # the refused new one was not created


def test_bad_requests(sb, base):
    url = base + "/products/metadata/async"
    for body in ({"metadata": {}}, {"source_ids": ["a"]}, {"source_ids": "a", "metadata": {}},
                 {"source_ids": [1], "metadata": {}}, {"source_ids": ["a"], "metadata": []}, []):
        r = httpx.post(url, json=body, headers=AUTH)
        assert r.status_code == 400, body
        assert r.json()["code"] == 400 and r.json()["key"] and r.json()["message"]
    r = httpx.post(url, content=b"{nope", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == 400
    assert sb.violations == []


def test_payload_too_large(sb, base):
    url = base + "/products/metadata/async"
    body = orjson.dumps({"source_ids": ["a"], "metadata": {"big": "x" * 10_485_760}})
    r = httpx.post(url, content=body, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"statusCode": 413, "error": "Request Entity Too Large",
                        "message": "Payload content length greater than maximum allowed: 10485760"}
    assert len(sb.violations) == 1 and sb.violations[0]["bytes"] == len(body)
    ok = orjson.dumps({"source_ids": ["a"], "metadata": {"big": "x"}})
    padding = 10_485_760 - len(ok)
    ok = orjson.dumps({"source_ids": ["a"], "metadata": {"big": "x" * (padding + 1)}})
    assert len(ok) == 10_485_760
    r = httpx.post(url, content=ok, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 202 and len(sb.violations) == 1


def test_auth_and_unknown_action(sb, base):
    expected = {"code": 401, "message": "Unauthorized", "key": "unauthorized"}
    r = httpx.post(base + "/products/metadata/async", json={"source_ids": ["a"], "metadata": {}},
                   headers={"X-App-Id": "sandbox-app", "X-App-Token": "bad"})
    assert r.status_code == 401 and r.json() == expected
    assert httpx.get(base + "/products").json() == expected
    assert httpx.get(base + "/async-actions/aa_1").status_code == 401
    r = httpx.get(base + "/async-actions/aa_unknown", headers=AUTH)
    assert r.status_code == 404 and r.json() == {
        "code": 404, "message": "Resource not found", "details": "Cannot find async_action with id aa_unknown",
        "key": "not_found", "resource_id": "aa_unknown", "resource_type": "async_action"}


def test_products_read(sb, base):
    last = update(base, [f"s{i:03d}" for i in range(150)], {"k": "v"})
    wait_done(base, last)
    r = httpx.get(base + "/products", headers=AUTH)
    body = r.json()
    assert body["object"] == "list" and body["data_ref"] == "products" and body["total"] == 150
    assert len(body["products"]) == 10
    seen = []
    for page in (1, 2):
        body = httpx.get(base + "/products", params={"limit": 100, "page": page, "order": "created_at"},
                         headers=AUTH).json()
        seen += [p["source_id"] for p in body["products"]]
    assert seen == [f"s{i:03d}" for i in range(150)]
    p = body["products"][0]
    assert {"id", "source_id", "metadata"} <= set(p)
    assert httpx.get(base + "/products", params={"limit": 101}, headers=AUTH).status_code == 400
    assert httpx.get(base + "/products", params={"order": "price"}, headers=AUTH).status_code == 400
    assert httpx.get(base + "/products", params={"page": 3, "limit": 100},
                     headers=AUTH).json()["products"] == []
    assert sb.violations == []


def test_products_page_cap(sb, base):
    assert httpx.get(base + "/products", params={"page": 99, "limit": 100}, headers=AUTH).status_code == 200
    r = httpx.get(base + "/products", params={"page": 100, "limit": 100}, headers=AUTH)
    assert r.status_code == 400 and r.json()["key"] == "invalid_query_params"
    assert len(sb.violations) == 1 and "page 100 > 99" in sb.violations[0]["violation"]


def test_one_product_by_source_id_or_id(sb, base):
    wait_done(base, update(base, ["a/1"], {"k": "v"}))
    by_source = httpx.get(base + "/products/a%2F1", headers=AUTH)
    assert by_source.status_code == 200
    product = by_source.json()
    assert product["source_id"] == "a/1" and product["metadata"] == {"k": "v"}
    assert product["skus"] == {"object": "list", "data_ref": "data", "data": [], "total": 0}
    assert httpx.get(base + f"/products/{product['id']}", headers=AUTH).json()["source_id"] == "a/1"
    r = httpx.get(base + "/products/nope", headers=AUTH)
    assert r.status_code == 404 and r.json() == {
        "code": 404, "message": "Resource not found", "details": "Cannot find product with id nope",
        "key": "not_found", "resource_id": "nope", "resource_type": "product"}
    assert httpx.get(base + "/products/a%2F1").status_code == 401
