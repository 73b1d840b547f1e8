"""vtex_ads: encode/decode on documented shapes, and contract tests against the sandbox."""
from __future__ import annotations

import threading

import httpx
import orjson
import pytest

from reconciler.errors import ConfigError
from reconciler.providers import get_provider
from test_provider_common import client  # noqa: F401 (a fixture)
from test_provider_common import CREDENTIALS, assert_no_secret, op, response, send, through_engine
from reconciler.apply.http import Failed, classify
from conftest import queued_work_done, sandbox_fixture

VtexAds = get_provider("vtex_ads")


def product(sku: str, **extra) -> dict:
    payload = {"product_sku": sku, "name": f"Laptop {sku}", "url": f"https://x/{sku}",
               "image_url": f"https://x/{sku}.jpg", "categories": ["Computers", "Laptops"]}
    payload.update(extra)
    return payload


def inventory(sku: str, price=10.5, promo=0, available=True) -> dict:
    return {"product_sku": sku, "price": price, "promotional_price": promo, "is_available": available}


@pytest.fixture
def provider():
    return VtexAds({}, CREDENTIALS["vtex_ads"])


# -- unit ---------------------------------------------------------------------------
def test_encode_products_is_a_full_upsert(provider):
    ops = [op("create", "a", after=product("a")),
           op("update", "b", before=product("b"), after=product("b", brand="B"))]
    request = provider.encode(ops)
    assert (request.method, request.path, request.endpoint) == ("POST", "/product/bulk/products", "products")
    assert request.body == orjson.dumps([product("a"), product("b", brand="B")])
    assert request.headers["x-app-id"] == "sandbox-app"
    assert request.headers["x-api-key"] == "sandbox-key"
    assert request.operations == tuple(ops)
    assert_no_secret(provider, request)


def test_inventory_delete_is_unavailable_at_the_last_price(provider):
    ops = [op("delete", "a", before=inventory("a", price=8.99, promo=7.5), record="inventory"),
           op("update", "b", before=inventory("b"), after=inventory("b", price=3), record="inventory")]
    request = provider.encode(ops)
    assert request.path == "/product/bulk/inventories"
    assert orjson.loads(request.body) == [
        {"product_sku": "a", "price": 8.99, "promotional_price": 7.5, "is_available": False},
        inventory("b", price=3)]


def test_group_key_separates_records_and_product_delete_is_local(provider):
    assert provider.group_key(op("create", "a", record="product")) != provider.group_key(
        op("create", "a", record="inventory"))
    assert VtexAds.capabilities.local_deletes == ("product",)
    with pytest.raises(ValueError):
        provider.encode([op("delete", "a", before=product("a"))])
    with pytest.raises(ValueError):
        provider.encode([op("create", "a", after=product("a")),
                         op("create", "a", after=inventory("a"), record="inventory")])


def test_decode_202_applies_everything(provider):
    ops = [op("create", k, after=product(k)) for k in "abc"]
    request = provider.encode(ops)
    outcomes = provider.decode(request, response(202, {"messages": ["products will be processed soon"]}))
    assert [o.status for o in outcomes] == ["accepted"] * 3
    assert [o.operation for o in outcomes] == ops


def test_decode_422_maps_instance_paths_to_operations(provider):
    ops = [op("create", k, after=product(k)) for k in "abcd"]
    request = provider.encode(ops)
    errors = [
        {"instancePath": "/1", "schemaPath": "#/items/required", "keyword": "required",
         "params": {"missingProperty": "url"}, "message": "must have required property 'url'"},
        {"instancePath": "/1", "schemaPath": "#/items/required", "keyword": "required",
         "params": {"missingProperty": "image_url"}, "message": "must have required property 'image_url'"},
        {"instancePath": "/3/name", "schemaPath": "#/items/properties/name/type", "keyword": "type",
         "params": {"type": "string"}, "message": "must be string"},
    ]
    outcomes = provider.decode(request, response(422, errors))
    assert [o.status for o in outcomes] == ["retry", "failed", "retry", "failed"]
    assert outcomes[1].reason == "must have required property 'url'; must have required property 'image_url'"
    assert outcomes[3].reason == "name: must be string"


def test_decode_422_without_item_paths(provider):
    ops = [op("create", k, after=product(k)) for k in "ab"]
    errors = [{"instancePath": "", "keyword": "maxItems", "message": "must NOT have more than 500 items"}]
    outcomes = provider.decode(provider.encode(ops), response(422, errors))
    assert {o.status for o in outcomes} == {"split"}
    assert "500 items" in outcomes[0].reason


# -- contract, against the sandbox ----------------------------------------------------
sandbox = sandbox_fixture(async_delay=0.05, latency=0.05)


@pytest.fixture
def url(sandbox):
    return sandbox.urls["vtex_ads"]


def test_sandbox_products_and_inventories_round_trip(sandbox, client, url, provider):
    products = [op("create", f"p{i}", after=product(f"p{i}", brand="B", tags=["t"])) for i in range(5)]
    inventories = [op("create", f"p{i}", after=inventory(f"p{i}"), record="inventory") for i in range(5)]
    for ops in (products, inventories):
        request = provider.encode(ops)
        outcomes = provider.decode(request, send(client, url, request))
        assert [o.status for o in outcomes] == ["accepted"] * 5
    queued_work_done(sandbox)  # processed later, as documented
    assert sorted(sandbox.catalog("vtex_ads", record="product"), key=lambda p: p["product_sku"]) == [
        product(f"p{i}", brand="B", tags=["t"]) for i in range(5)]

    delete = op("delete", "p0", before=inventory("p0"), record="inventory")
    request = provider.encode([delete])
    assert provider.decode(request, send(client, url, request))[0].status == "accepted"
    queued_work_done(sandbox)
    stored = {i["product_sku"]: i for i in sandbox.catalog("vtex_ads", record="inventory")}
    assert stored["p0"] == inventory("p0", available=False)
    assert sandbox.violations == []


def test_sandbox_422_rejects_the_bad_item_and_retries_the_rest(sandbox, client, url, provider):
    bad = {k: v for k, v in product("bad").items() if k != "url"}
    ops = [op("create", "ok1", after=product("ok1")), op("create", "bad", after=bad),
           op("create", "ok2", after=product("ok2", tags=["x" * 65]))]
    request = provider.encode(ops)
    outcomes = provider.decode(request, send(client, url, request))
    assert [o.status for o in outcomes] == ["retry", "failed", "failed"]
    assert "url" in outcomes[1].reason
    assert "tags/0" in outcomes[2].reason and "64" in outcomes[2].reason
    assert sandbox.catalog("vtex_ads", record="product") == []  # a 422 stores nothing
    retry = provider.encode([o.operation for o in outcomes if o.status == "retry"])
    assert provider.decode(retry, send(client, url, retry))[0].status == "accepted"


def test_sandbox_bad_credentials(client, url):
    provider = VtexAds({}, {"app_id": "sandbox-app", "api_key": "wrong"})
    request = provider.encode([op("create", "a", after=product("a"))])
    with pytest.raises(ConfigError, match="vtex_ads.*app_id, api_key"):
        classify(send(client, url, request), provider)


def test_sandbox_refuses_over_500_items(sandbox, client, url, provider):
    ops = [op("create", f"p{i}", after=product(f"p{i}")) for i in range(501)]
    request = provider.encode(ops)  # built by hand, past the documented limit
    outcomes = provider.decode(request, send(client, url, request))
    assert {o.status for o in outcomes} == {"split"}
    [violation] = sandbox.violations
    assert "501 items" in violation["violation"]
    sandbox.reset()


def test_sandbox_refuses_a_fourth_request_in_flight(sandbox, url, provider):
    request = provider.encode([op("create", "a", after=product("a"))])
    barrier = threading.Barrier(4)
    results = []

    def fire():
        with httpx.Client(timeout=10) as c:
            barrier.wait()
            results.append(through_engine(provider, request, send(c, url, request)))

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [r for r in results if isinstance(r, Failed)]
    assert sorted(r[0].status for r in results if r not in refused) == ["accepted"] * 3
    assert [r.rate_limited for r in refused] == [True]  # a 429
    assert any("in flight" in (v["violation"] or "") for v in sandbox.violations)
    sandbox.reset()
