"""Voucherify simulator over real sockets."""
from __future__ import annotations

import time

import httpx
import orjson
import pytest

from conftest import eventually, sandbox_fixture

AUTH = {"X-App-Id": "sandbox-app", "X-App-Token": "sandbox-token"}
DELAY = 0.5


sb = sandbox_fixture(async_delay=DELAY, latency=0)


@pytest.fixture(autouse=True)
def fresh(sb):
    sb.reset()
    yield


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


def test_status_progression_and_apply(sb, base):
    start = time.monotonic()
    aid = update(base, ["a", "b"], {"label": True, "origin": "PL"})
    assert aid.startswith("aa_")
    a = action(base, aid)
    assert time.monotonic() - start < DELAY / 2
    assert a["status"] == "ENQUEUED" and a["type"] == "products.metadata.update"
    assert a["object"] == "async_action" and a["operation_status"] is None
    assert a["result"] == {"done_count": 0, "failed_count": 0, "errors": []}
    assert {"id", "progress", "created_at", "updated_at"} <= set(a)
    assert sb.catalog("voucherify") == []
    time.sleep(DELAY * 0.6)
    a = action(base, aid)
    assert a["status"] == "IN_PROGRESS" and 0 <= a["progress"] < 100
    assert sb.catalog("voucherify") == []
    a = wait_done(base, aid)
    assert a["progress"] == 100 and a["operation_status"] == "SUCCESS"
    assert a["result"] == {"done_count": 2, "failed_count": 0, "errors": []}
    products = sb.catalog("voucherify")
    assert [(p["source_id"], p["metadata"]) for p in products] == [
        ("a", {"label": True, "origin": "PL"}), ("b", {"label": True, "origin": "PL"})]
    assert products[0]["object"] == "product" and products[0]["id"].startswith("prod_")


def test_fifo_null_and_never_removed(sb, base):
    update(base, ["a"], {"k": 1, "keep": "x"})
    update(base, ["a"], {"k": 2})
    last = update(base, ["a"], {"k": None})
    wait_done(base, last)
    assert sb.catalog("voucherify")[0]["metadata"] == {"k": None, "keep": "x"}


def test_object_values_fail_per_product(sb, base):
    aid = update(base, ["a", "b"], {"nested": {"x": 1}})
    a = wait_done(base, aid)
    assert a["result"]["failed_count"] == 2 and a["result"]["done_count"] == 0
    assert [e["source_id"] for e in a["result"]["errors"]] == ["a", "b"]
    assert all(e["message"] for e in a["result"]["errors"])
    assert a["operation_status"] == "FAILED"
    assert sb.catalog("voucherify") == []


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
    assert r.status_code == 404 and r.json()["code"] == 404


def test_products_read(sb, base):
    last = update(base, [f"s{i:03d}" for i in range(150)], {"k": "v"})
    wait_done(base, last)
    r = httpx.get(base + "/products", headers=AUTH)
    body = r.json()
    assert body["object"] == "list" and body["data_ref"] == "products" and body["total"] == 150
    assert len(body["products"]) == 10
    seen = []
    for page in (1, 2):
        body = httpx.get(base + "/products", params={"limit": 100, "page": page}, headers=AUTH).json()
        seen += [p["source_id"] for p in body["products"]]
    assert seen == [f"s{i:03d}" for i in range(150)]
    p = body["products"][0]
    assert {"id", "source_id", "metadata"} <= set(p)
    assert httpx.get(base + "/products", params={"limit": 101}, headers=AUTH).status_code == 400
    assert httpx.get(base + "/products", params={"page": 3, "limit": 100},
                     headers=AUTH).json()["products"] == []
