"""Meta Catalog Batch API simulator over real sockets."""
from __future__ import annotations

import httpx
import pytest

from reconciler.sandbox import Sandbox, SandboxConfig
from conftest import emptied_before_each_test, moved_clock

TOKEN = "sandbox-token"
DELAY = 0.15


@pytest.fixture(scope="module")
def sb():
    # 100 calls per hour scaled to 100 calls per 1.8 s
    with Sandbox(SandboxConfig(port=0, time_scale=0.0005, async_delay=DELAY, latency=0)) as sandbox:
        yield sandbox


fresh = emptied_before_each_test()


@pytest.fixture(autouse=True)
def clock(sb, fresh, monkeypatch):
    """The simulator's clock (its window and batches), moved by the test alone."""
    return moved_clock(sb, "meta_catalog", monkeypatch)


@pytest.fixture
def base(sb):
    return sb.urls["meta_catalog"] + "/v21.0/cat1"


def data(**extra):
    d = {"availability": "in stock", "condition": "new", "currency": "USD", "name": "Shirt",
         "description": "A shirt", "image_url": "https://x/i.jpg", "url": "https://x/p",
         "price": 899, "brand": "Nike"}
    d.update(extra)
    return d


def batch(base, requests, **extra):
    body = {"access_token": TOKEN, "requests": requests, **extra}
    return httpx.post(base + "/batch", json=body)


def status(base, handle, **params):
    r = httpx.get(base + "/check_batch_request_status", params={"handle": handle, "access_token": TOKEN, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"][0]


def wait_finished(clock, base, handle, **params):
    """The batch's status once its time has come (``async_delay`` later)."""
    clock.advance(DELAY)
    s = status(base, handle, **params)
    assert s["status"] == "finished", s
    return s


def test_create_async_applied_only_when_finished(sb, base, clock):
    r = batch(base, [{"method": "CREATE", "retailer_id": "r1", "data": data(price="100")},
                     {"method": "CREATE", "retailer_id": "r2", "data": data(gtin="123", brand="")}])
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert len(body["handles"]) == 1 and body["validation_status"] == []
    handle = body["handles"][0]
    s = status(base, handle)
    assert s["status"] == "started"
    assert sb.catalog("meta_catalog", catalog_id="cat1") == []
    s = wait_finished(clock, base, handle)
    assert s == {"handle": handle, "status": "finished", "errors_total_count": 0, "errors": [],
                 "warnings": [], "warnings_total_count": 0}
    items = sb.catalog("meta_catalog", catalog_id="cat1")
    assert [i["retailer_id"] for i in items] == ["r1", "r2"]
    assert items[0]["price"] == 100
    assert "brand" not in items[1]
    assert sb.log[0]["items"] == 2
    assert sb.catalog("meta_catalog", catalog_id="other") == []


def test_line_errors_and_update_delete_semantics(sb, base, clock):
    r = batch(base, [{"method": "CREATE", "retailer_id": "a", "data": data(description="x", color="red")},
                     {"method": "CREATE", "retailer_id": "b", "data": data()}])
    wait_finished(clock, base, r.json()["handles"][0])
    requests = [
        {"method": "CREATE", "retailer_id": "c", "data": data(availability=None) | {"availability": "maybe"}},
        {"method": "CREATE", "retailer_id": "d", "data": {"name": "x"}},
        {"method": "UPDATE", "retailer_id": "zz", "data": {"name": "y"}},
        {"method": "UPDATE", "retailer_id": "a", "data": {"color": "", "price": 1000}},
        {"method": "UPDATE", "retailer_id": "b", "data": {"name": ""}},
        {"method": "DELETE", "retailer_id": "nope"},
        {"method": "DELETE", "retailer_id": "b"},
        {"method": "CREATE", "retailer_id": "e", "data": data(price="1.5")},
        {"method": "CREATE", "retailer_id": "f", "data": data(price=-1)},
        {"method": "CREATE", "retailer_id": "g", "data": data(bogus=1)},
        {"method": "CREATE", "retailer_id": "h", "data": data(brand="")},
        {"method": "UPSERT", "retailer_id": "i", "data": data()},
        {"method": "CREATE", "data": data()},
        {"method": "CREATE", "retailer_id": "j", "data": "nope"},
    ]
    r = batch(base, requests)
    body = r.json()
    assert body["validation_status"] == [
        {"retailer_id": "i", "errors": [{"message": body["validation_status"][0]["errors"][0]["message"]}],
         "warnings": []},
        {"retailer_id": None, "errors": body["validation_status"][1]["errors"], "warnings": []},
        {"retailer_id": "j", "errors": body["validation_status"][2]["errors"], "warnings": []},
    ]
    s = wait_finished(clock, base, body["handles"][0], load_ids_of_invalid_requests="true",
                      fields="status,errors,errors_total_count,ids_of_invalid_requests")
    assert set(s) == {"status", "errors", "errors_total_count", "ids_of_invalid_requests"}
    failed = {e["id"]: e for e in s["errors"]}
    assert set(failed) == {"c", "d", "zz", "b", "nope", "e", "f", "g", "h"}
    assert failed["d"]["line"] == 1
    assert "required field" in failed["d"]["message"]
    assert s["errors_total_count"] == 9
    assert set(s["ids_of_invalid_requests"]) == set(failed)
    items = {i["retailer_id"]: i for i in sb.catalog("meta_catalog", catalog_id="cat1")}
    # b failed its bad update, then was deleted; a lost its color and got the new price
    assert set(items) == {"a"}
    assert "color" not in items["a"] and items["a"]["price"] == 1000


def test_allow_upsert_and_null(sb, base, clock):
    r = batch(base, [{"method": "UPDATE", "retailer_id": "u", "data": data()},
                     {"method": "UPDATE", "retailer_id": "v", "data": {"name": "only"}}], allow_upsert=True)
    s = wait_finished(clock, base, r.json()["handles"][0])
    assert [e["id"] for e in s["errors"]] == ["v"]
    r = batch(base, [{"method": "UPDATE", "retailer_id": "u", "data": {"name": None}}])
    s = wait_finished(clock, base, r.json()["handles"][0])
    assert s["errors"] == [] and s["warnings_total_count"] == 1
    assert sb.catalog("meta_catalog", catalog_id="cat1")[0]["name"] == "Shirt"


def test_errors_are_a_sample_and_ids_come_only_on_request(sb, base, clock):
    bad = [{"method": "DELETE", "retailer_id": f"gone{i:02d}"} for i in range(25)]
    handle = batch(base, bad + [{"method": "CREATE", "retailer_id": "ok", "data": data()}]).json()["handles"][0]
    s = wait_finished(clock, base, handle, fields=",".join(
        ("handle", "status", "errors", "errors_total_count", "ids_of_invalid_requests")))
    assert s["errors_total_count"] == 25 and len(s["errors"]) == 10
    assert s["ids_of_invalid_requests"] == []  # "unless load_ids_of_invalid_requests is set to true"
    s = status(base, handle, load_ids_of_invalid_requests="true", fields="ids_of_invalid_requests,errors")
    assert s["ids_of_invalid_requests"] == [f"gone{i:02d}" for i in range(25)] and len(s["errors"]) == 10
    assert [i["retailer_id"] for i in sb.catalog("meta_catalog", catalog_id="cat1")] == ["ok"]


def test_too_much_data_and_permissions(sb, base):
    sb.simulators["meta_catalog"].max_batch_bytes = 2_000
    small = [{"method": "CREATE", "retailer_id": f"r{i}", "data": data()} for i in range(5)]
    assert batch(base, small).status_code == 200
    r = batch(base, small * 3)
    assert r.status_code == 500
    assert r.json()["error"]["code"] == 1
    assert r.json()["error"]["message"] == ("Please reduce the amount of data you're asking for, then retry "
                                            "your request")
    r = httpx.post(base + "/batch", json={"requests": small}, headers={"Authorization": "Bearer sandbox-limited-token"})
    assert r.status_code == 400 and r.json()["error"]["code"] == 200
    assert httpx.get(base + "/products", params={"access_token": "sandbox-limited-token"}).status_code == 200
    assert sb.violations == []


def test_auth(sb, base):
    ok = {"requests": [{"method": "DELETE", "retailer_id": "x"}]}
    r = httpx.post(base + "/batch", json=ok)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 190 and err["type"] == "OAuthException" and "fbtrace_id" in err
    r = httpx.post(base + "/batch", json={**ok, "access_token": "bad"})
    assert r.status_code == 400 and r.json()["error"]["code"] == 190
    assert httpx.post(base + "/batch", json=ok, params={"access_token": TOKEN}).status_code == 200
    assert httpx.post(base + "/batch", json=ok, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(base + "/products").json()["error"]["code"] == 190
    assert httpx.get(base + "/check_batch_request_status", params={"handle": "x"}).json()["error"]["code"] == 190
    # form-encoded with requests as a JSON string, as the Graph API also accepts
    r = httpx.post(base + "/batch", data={"access_token": TOKEN,
                                          "requests": '[{"method":"DELETE","retailer_id":"x"}]'})
    assert r.status_code == 200 and len(r.json()["handles"]) == 1


def test_bad_bodies_and_unknown_handle(sb, base):
    r = httpx.post(base + "/batch", content=b"{bad", params={"access_token": TOKEN},
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    r = batch(base, {"not": "a list"})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    r = httpx.post(base + "/batch", json={"access_token": TOKEN})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    r = httpx.get(base + "/check_batch_request_status", params={"handle": "nope", "access_token": TOKEN})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    r = batch(base, [{"method": "BAD", "retailer_id": "x"}])
    assert r.json()["handles"] == []
    assert sb.violations == []


def test_too_many_requests_per_call(sb, base):
    r = batch(base, [{"method": "DELETE", "retailer_id": str(i)} for i in range(5001)])
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    assert len(sb.violations) == 1 and sb.violations[0]["items"] == 5001
    r = batch(base, [{"method": "DELETE", "retailer_id": str(i)} for i in range(5000)])
    assert r.status_code == 200 and len(sb.violations) == 1


def test_rate_limit_sliding_window_per_catalog(sb, clock):
    base = sb.urls["meta_catalog"] + "/v21.0/ratecat"
    other = sb.urls["meta_catalog"] + "/v21.0/othercat"
    line = [{"method": "DELETE", "retailer_id": "x"}]
    with httpx.Client() as client:
        for _ in range(100):
            assert client.post(base + "/batch", json={"access_token": TOKEN, "requests": line}).status_code == 200
        clock.advance(1.79)  # the 101st call, still within the (scaled) hour of the first
        r = client.post(base + "/batch", json={"access_token": TOKEN, "requests": line})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == 80014 and err["is_transient"] is True
        assert err["message"] == ("(#80014) There have been too many calls for this Product Catalog. "
                                  "Wait a bit and try again.")
        assert "error_subcode" in err and "fbtrace_id" in err
        assert len(sb.violations) == 1 and "calls" in sb.violations[0]["violation"]
        # another catalog has its own window
        assert client.post(other + "/batch", json={"access_token": TOKEN, "requests": line}).status_code == 200
        clock.advance(0.02)  # the first 100 left the window
        assert client.post(base + "/batch", json={"access_token": TOKEN, "requests": line}).status_code == 200
    assert len(sb.violations) == 1


def test_products_read_paging(sb, base, clock):
    r = batch(base, [{"method": "CREATE", "retailer_id": f"r{i:02d}", "data": data()} for i in range(5)])
    wait_finished(clock, base, r.json()["handles"][0])
    seen = []
    url = base + "/products"
    params = {"access_token": TOKEN, "limit": 2, "fields": "name,price"}
    pages = 0
    while url:
        page = httpx.get(url, params=params).json()
        params = None  # next carries everything
        pages += 1
        for row in page["data"]:
            assert set(row) == {"retailer_id", "name", "price"}
        seen += [row["retailer_id"] for row in page["data"]]
        assert set(page["paging"]["cursors"]) == {"before", "after"}
        url = page["paging"].get("next")
    assert seen == [f"r{i:02d}" for i in range(5)] and pages == 3
    full = httpx.get(base + "/products", params={"access_token": TOKEN}).json()
    assert len(full["data"]) == 5 and "next" not in full["paging"]
    assert full["data"][0]["brand"] == "Nike" and full["data"][0]["price"] == "$8.99"
    after = httpx.get(base + "/products", params={"access_token": TOKEN, "limit": 1,
                                                  "after": full["paging"]["cursors"]["before"]}).json()
    assert after["data"][0]["retailer_id"] == "r01"
    empty = httpx.get(sb.urls["meta_catalog"] + "/v21.0/empty/products",
                      params={"access_token": TOKEN}).json()
    assert empty == {"data": []}


def test_products_limit_default_and_cap(sb, base, clock):
    r = batch(base, [{"method": "CREATE", "retailer_id": f"r{i:04d}", "data": data()} for i in range(1001)])
    wait_finished(clock, base, r.json()["handles"][0])
    page = httpx.get(base + "/products", params={"access_token": TOKEN}).json()
    assert len(page["data"]) == 25
    page = httpx.get(base + "/products", params={"access_token": TOKEN, "limit": 5000}).json()
    assert len(page["data"]) == 1000 and "next" in page["paging"]
    last = httpx.get(page["paging"]["next"]).json()
    assert [row["retailer_id"] for row in last["data"]] == ["r1000"] and "next" not in last["paging"]


def test_products_read_prices_formatted_and_filtered(sb, base, clock):
    prices = {"u": (129900, "USD"), "b": (129990, "BRL"), "e": (129900, "EUR"), "j": (1299, "JPY"),
              "k": (1299500, "KWD"), "c": (5, "CHF")}
    r = batch(base, [{"method": "CREATE", "retailer_id": rid, "data": data(price=p, currency=c, sale_price=p)}
                     for rid, (p, c) in prices.items()])
    wait_finished(clock, base, r.json()["handles"][0])
    page = httpx.get(base + "/products", params={"access_token": TOKEN, "fields": "price,sale_price"}).json()
    read = {row["retailer_id"]: row["price"] for row in page["data"]}
    assert read == {"u": "$1,299.00", "b": "R$\u00a01.299,90", "e": "1.299,00\u00a0€", "j": "¥1,299",
                    "k": "1,299.500 KWD", "c": "0.05 CHF"}
    assert all(row["sale_price"] == row["price"] for row in page["data"])
    assert sb.catalog("meta_catalog", catalog_id="cat1")[0]["price"] == 129990  # stored in minor units
    one = httpx.get(base + "/products", params={"access_token": TOKEN, "filter": '{"retailer_id":{"eq":"j"}}'}).json()
    assert [row["retailer_id"] for row in one["data"]] == ["j"]
    some = httpx.get(base + "/products", params={"access_token": TOKEN,
                                                 "filter": '{"retailer_id":{"is_any":["u","e","x"]}}'}).json()
    assert [row["retailer_id"] for row in some["data"]] == ["e", "u"]
    r = httpx.get(base + "/products", params={"access_token": TOKEN, "filter": '{"name":{"i_contains":"x"}}'})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
