"""VTEX Ads simulator over real sockets."""
from __future__ import annotations

import threading

import httpx
import pytest

from conftest import emptied_before_each_test, queued_work_done, sandbox_fixture

AUTH = {"x-app-id": "sandbox-app", "x-api-key": "sandbox-key"}


sb = sandbox_fixture(latency=0.001)


fresh = emptied_before_each_test()


@pytest.fixture
def url(sb):
    return sb.urls["vtex_ads"]


def product(sku="p1", **extra):
    item = {"product_sku": sku, "name": "Laptop", "url": "https://x/p1",
            "image_url": "https://x/p1.jpg", "categories": ["Computers", "Laptops"]}
    item.update(extra)
    return item


def inventory(sku="p1", **extra):
    item = {"product_sku": sku, "price": 10.5, "promotional_price": 0, "is_available": True}
    item.update(extra)
    return item


def test_products_success_and_storage(sb, url):
    body = [product("a", brand="B", gtins=["7898915633481"], metadata={"k": "v"},
                    tags=["Mega Maio"], parent_sku="x", sellers=["s1"]), product("b")]
    r = httpx.post(url + "/product/bulk/products", json=body, headers=AUTH)
    assert r.status_code == 202
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"messages": ["products will be processed soon"]}
    queued_work_done(sb)
    assert sb.catalog("vtex_ads", record="product") == body
    # full upsert: replaced whole
    r = httpx.post(url + "/product/bulk/products", json=[product("a")], headers=AUTH)
    assert r.status_code == 202
    queued_work_done(sb)
    assert sb.catalog("vtex_ads", record="product")[0] == product("a")
    entry = sb.log[-1]
    assert entry["provider"] == "vtex_ads" and entry["items"] == 1 and entry["status"] == 202
    assert entry["bytes"] == len(r.request.content) and entry["violation"] is None


def test_inventories_success(sb, url):
    r = httpx.post(url + "/product/bulk/inventories", json=[inventory("a"), inventory("b", store_id="1")],
                   headers=AUTH)
    assert r.status_code == 202
    assert r.json() == {"messages": ["inventories will be processed soon"]}
    queued_work_done(sb)
    assert sb.catalog("vtex_ads", record="product") == []
    queued_work_done(sb)
    assert [i["product_sku"] for i in sb.catalog("vtex_ads", record="inventory")] == ["a", "b"]
    queued_work_done(sb)
    assert {i["record"] for i in sb.catalog("vtex_ads")} == {"inventory"}


def test_seed_required_errors_exactly(sb, url):
    body = [{"name": "n", "categories": ["c"]}, {"product_sku": "s", "categories": ["c"]}]
    r = httpx.post(url + "/product/bulk/products", json=body, headers=AUTH)
    assert r.status_code == 422
    def req(i, prop):
        return {"instancePath": f"/{i}", "schemaPath": "#/items/required", "keyword": "required",
                "params": {"missingProperty": prop}, "message": f"must have required property '{prop}'"}
    assert r.json() == [req(0, "product_sku"), req(0, "url"), req(0, "image_url"),
                        req(1, "name"), req(1, "url"), req(1, "image_url")]


def test_field_errors_and_nothing_stored(sb, url):
    body = [product("ok"), product("b", name=5), product("c", extra=1),
            product("d", tags=["t"] * 11), product("e", tags=["x" * 65]),
            product("f", categories=[]), product("g", categories=[1])]
    r = httpx.post(url + "/product/bulk/products", json=body, headers=AUTH)
    assert r.status_code == 422
    errors = r.json()
    by_path = {(e["instancePath"], e["keyword"]): e for e in errors}
    assert by_path[("/1/name", "type")] == {
        "instancePath": "/1/name", "schemaPath": "#/items/properties/name/type", "keyword": "type",
        "params": {"type": "string"}, "message": "must be string"}
    assert by_path[("/2", "additionalProperties")]["params"] == {"additionalProperty": "extra"}
    assert by_path[("/3/tags", "maxItems")]["params"] == {"limit": 10}
    assert by_path[("/4/tags/0", "maxLength")]["message"] == "must NOT have more than 64 characters"
    assert ("/5/categories", "minItems") in by_path
    assert ("/6/categories/0", "type") in by_path
    assert not any(e["instancePath"].startswith("/0") for e in errors)
    queued_work_done(sb)
    assert sb.catalog("vtex_ads") == []


def test_inventory_errors(sb, url):
    body = [inventory("a", price=-1), inventory("b", is_available="yes"),
            inventory("c", promotional_price="3"), {"product_sku": "d"}, "x"]
    r = httpx.post(url + "/product/bulk/inventories", json=body, headers=AUTH)
    assert r.status_code == 422
    keys = {(e["instancePath"], e["keyword"]) for e in r.json()}
    assert ("/0/price", "minimum") in keys
    assert ("/1/is_available", "type") in keys
    assert ("/2/promotional_price", "type") in keys
    assert ("/3", "required") in keys
    assert ("/4", "type") in keys
    minimum = next(e for e in r.json() if e["keyword"] == "minimum")
    assert minimum["params"] == {"comparison": ">=", "limit": 0} and minimum["message"] == "must be >= 0"
    queued_work_done(sb)
    assert sb.catalog("vtex_ads") == []


def test_too_many_items_is_violation(sb, url):
    r = httpx.post(url + "/product/bulk/products", json=[product(str(i)) for i in range(501)], headers=AUTH)
    assert r.status_code == 422
    assert r.json() == [{"instancePath": "", "schemaPath": "#/maxItems", "keyword": "maxItems",
                         "params": {"limit": 500}, "message": "must NOT have more than 500 items"}]
    assert len(sb.violations) == 1 and sb.violations[0]["items"] == 501
    queued_work_done(sb)
    assert sb.catalog("vtex_ads") == []
    r = httpx.post(url + "/product/bulk/products", json=[product(str(i)) for i in range(500)], headers=AUTH)
    assert r.status_code == 202 and len(sb.violations) == 1


def test_not_json_not_array_and_auth(sb, url):
    r = httpx.post(url + "/product/bulk/products", content=b"[{", headers=AUTH)
    assert r.status_code == 400 and "message" in r.json()
    r = httpx.post(url + "/product/bulk/products", content=b"[NaN]", headers=AUTH)
    assert r.status_code == 400
    r = httpx.post(url + "/product/bulk/products", json={"a": 1}, headers=AUTH)
    assert r.status_code == 422 and r.json()[0]["keyword"] == "type"
    r = httpx.post(url + "/product/bulk/products", json=[product()],
                   headers={"x-app-id": "sandbox-app", "x-api-key": "nope"})
    assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
    r = httpx.post(url + "/product/bulk/inventories", json=[inventory()])
    assert r.status_code == 401
    queued_work_done(sb)
    assert sb.catalog("vtex_ads") == [] and sb.violations == []


def test_in_flight_limit_across_endpoints(sb, url):
    sb.config.latency = 0.4
    try:
        results = []
        barrier = threading.Barrier(6)

        def send(i):
            path = "/product/bulk/products" if i % 2 else "/product/bulk/inventories"
            body = [product(str(i))] if i % 2 else [inventory(str(i))]
            barrier.wait()
            results.append(httpx.post(url + path, json=body, headers=AUTH, timeout=10).status_code)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sb.config.latency = 0.001
    assert sorted(results) == [202, 202, 202, 429, 429, 429]
    assert len(sb.violations) == 3
    assert all(v["status"] == 429 and "in flight" in v["violation"] for v in sb.violations)
    # sequential requests never violate
    for i in range(5):
        assert httpx.post(url + "/product/bulk/products", json=[product()], headers=AUTH).status_code == 202
    assert len(sb.violations) == 3


def test_sandbox_endpoints(sb, url):
    httpx.post(url + "/product/bulk/products", json=[product("z")], headers=AUTH)
    queued_work_done(sb)
    assert httpx.get(url + "/_sandbox/items", params={"record": "product"}).json() == [product("z")]
    log = httpx.get(url + "/_sandbox/log").json()
    assert [e["status"] for e in log] == [202]
    assert httpx.post(url + "/_sandbox/reset").status_code == 200
    assert httpx.get(url + "/_sandbox/items").json() == []
    assert sb.log == []
