"""Bloomreach catalog simulator over real sockets."""
from __future__ import annotations

import httpx
import orjson
import pytest

from reconciler.providers.bloomreach.simulator import CATALOG_FIELDS
from conftest import emptied_before_each_test, moved_clock, queued_work_done, sandbox_fixture

AUTH = ("sandbox-key", "sandbox-secret")
WINDOW = 10 * 0.04  # 5 requests per 0.4 s


sb = sandbox_fixture(time_scale=0.04, latency=0)


fresh = emptied_before_each_test()


@pytest.fixture
def base(sb):
    return sb.urls["bloomreach"] + "/data/v2/projects/p1/catalogs/c1/items"


def put(base, items, **kw):
    return httpx.put(base, json=items, auth=AUTH, **kw)


def partial(base, items):
    return httpx.post(base + "/partial-update", json=items, auth=AUTH)


def delete(base, ids):
    return httpx.request("DELETE", base + "/bulk-delete", json=ids, auth=AUTH)


def test_catalog_fields():
    assert CATALOG_FIELDS == ("title", "url", "image", "price", "brand", "category", "availability",
                              "description", "stock", "color", "size", "material", "gender")


def test_put_full_replace_and_per_item_results(sb, base):
    r = put(base, [{"item_id": "a", "properties": {"title": "A", "price": 9.5, "color": "red"}},
                   {"item_id": "b", "properties": {"title": "B", "price_discounted": 1}},
                   {"item_id": "x/y", "properties": {"title": "C"}}])
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == [
        {"success": "True", "queued": "True"},
        {"success": "False", "queued": "False",
         "errors": {"properties": ["Fields ['price_discounted'] are not properly defined."]}},
        {"success": "False", "queued": "False", "errors": {"item_id": ["Item ID must not contain '/'."]}},
    ]
    r = put(base, [{"item_id": "a", "properties": {"title": "A2"}}])
    assert r.json() == [{"success": "True", "queued": "True"}]
    queued_work_done(sb)
    assert sb.catalog("bloomreach", catalog_id="c1") == [{"item_id": "a", "properties": {"title": "A2"}}]
    queued_work_done(sb)
    assert sb.catalog("bloomreach") == [{"project_id": "p1", "catalog_id": "c1", "item_id": "a",
                                         "properties": {"title": "A2"}}]
    assert sb.log[0]["items"] == 3


def test_malformed_items(sb, base):
    r = put(base, [{"properties": {}}, {"item_id": 5, "properties": {}}, {"item_id": "a", "properties": []},
                   {"item_id": "b"}, {"item_id": "c", "properties": {}, "upsert": True},
                   {"item_id": "d", "properties": {"price": "9.99"}}])
    res = r.json()
    assert r.status_code == 200 and all(x["success"] == "False" for x in res)
    assert res[0]["errors"] == {"item_id": ["Missing data for required field."]}
    assert res[1]["errors"] == {"item_id": ["Not a valid string."]}
    assert res[2]["errors"] == {"properties": ["Not a valid mapping type."]}
    assert res[3]["errors"] == {"properties": ["Missing data for required field."]}
    assert res[4]["errors"] == {"upsert": ["Unknown field."]}
    assert "price" in res[5]["errors"]["properties"][0]
    queued_work_done(sb)
    assert sb.catalog("bloomreach", catalog_id="c1") == []


def test_partial_update_merge_and_upsert(sb, base):
    put(base, [{"item_id": "a", "properties": {"title": "A", "price": 1}}])
    r = partial(base, [{"item_id": "a", "properties": {"price": 2}},
                       {"item_id": "new", "properties": {"title": "N"}},
                       {"item_id": "new2", "properties": {"title": "N2"}, "upsert": True},
                       {"item_id": "a", "properties": {"nope": 1}}])
    res = r.json()
    assert res[0] == {"success": "True", "queued": "True"}
    assert res[1] == {"success": "True", "queued": "True"}  # queued; then nothing: it does not exist
    assert res[2] == {"success": "True", "queued": "True"}
    assert res[3]["errors"] == {"properties": ["Fields ['nope'] are not properly defined."]}
    queued_work_done(sb)
    items = {i["item_id"]: i["properties"] for i in sb.catalog("bloomreach", catalog_id="c1", project_id="p1")}
    assert items == {"a": {"title": "A", "price": 2}, "new2": {"title": "N2"}}


def test_bulk_delete(sb, base):
    put(base, [{"item_id": "a", "properties": {}}, {"item_id": "b", "properties": {}}])
    r = delete(base, ["a", "zzz", "x/y"])
    assert r.status_code == 200
    res = r.json()
    assert res[:2] == [{"success": True, "queued": True}] * 2  # a missing item: queued, then nothing
    assert res[2]["success"] is False and res[2]["queued"] is False and res[2]["errors"]["_global"]
    queued_work_done(sb)
    assert [i["item_id"] for i in sb.catalog("bloomreach", catalog_id="c1")] == ["b"]
    r = delete(base, ["b", 5])
    assert r.status_code == 400 and r.json() == {"errors": {"_global": ["Item parsing error"]}, "success": False}


def _global(r, message, status=400):
    assert r.status_code == status
    assert r.json() == {"errors": {"_global": [message]}, "success": False}


def test_global_errors(sb, base, monkeypatch):
    clock = moved_clock(sb, "bloomreach", monkeypatch)  # a window passes when the test says so
    _global(httpx.put(base, content=b"[{", auth=AUTH, headers={"content-type": "application/json"}),
            "Invalid JSON")
    _global(httpx.put(base, content=b"[]", auth=AUTH, headers={"content-type": "text/plain"}), "Invalid JSON")
    clock.advance(WINDOW)
    _global(put(base, {"item_id": "a"}), "Payload not a list")
    _global(put(base, ["a"]), "Item parsing error")
    clock.advance(WINDOW)
    assert sb.violations == []
    _global(put(base, [{"item_id": str(i), "properties": {}} for i in range(5001)]), "Too many items")
    big = orjson.dumps([{"item_id": "a", "properties": {"description": "x" * 10_000_000}}])
    assert len(big) > 10_000_000
    _global(httpx.put(base, content=big, auth=AUTH, headers={"content-type": "application/json"}),
            "Payload size exceeded")
    assert [v["violation"] is not None for v in sb.violations] == [True, True]
    assert sb.violations[0]["items"] == 5001 and sb.violations[1]["bytes"] == len(big)
    clock.advance(WINDOW)
    r = put(base, [{"item_id": str(i), "properties": {}} for i in range(5000)])
    assert r.status_code == 200 and len(r.json()) == 5000
    clock.advance(WINDOW)  # the queued work is due
    queued_work_done(sb)
    assert sb.catalog("bloomreach", catalog_id="c1")[0] == {"item_id": "0", "properties": {}}
    assert len(sb.violations) == 2


def test_auth(sb, base):
    r = httpx.put(base, json=[], auth=("sandbox-key", "wrong"))
    assert r.status_code == 401 and r.json()["success"] is False and r.json()["errors"]["_global"]
    assert httpx.get(base).status_code == 401
    assert httpx.get(base + "/a").status_code == 401
    assert httpx.request("DELETE", base + "/bulk-delete", json=[]).status_code == 401


def test_rate_window_shared_by_bulk_endpoints(sb, monkeypatch):
    clock = moved_clock(sb, "bloomreach", monkeypatch)
    with httpx.Client(auth=AUTH) as client:
        base = sb.urls["bloomreach"] + "/data/v2/projects/p1/catalogs/c1/items"
        other = base.replace("/c1/", "/c2/")
        assert client.put(base, json=[]).status_code == 200
        assert client.put(base, json=[]).status_code == 200
        assert client.post(base + "/partial-update", json=[]).status_code == 200
        clock.advance(WINDOW / 2)
        assert client.post(base + "/partial-update", json=[]).status_code == 200
        assert client.request("DELETE", base + "/bulk-delete", json=[]).status_code == 200
        clock.advance(WINDOW / 2 - 0.01)  # the 6th, just within the window of the first
        r = client.request("DELETE", base + "/bulk-delete", json=[])
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["success"] is False and r.json()["errors"]["_global"]
        assert len(sb.violations) == 1 and sb.violations[0]["status"] == 429
        assert client.put(other, json=[]).status_code == 200  # per catalog
        assert client.get(base).status_code == 200  # reads are not limited
        clock.advance(0.02)  # the first three left the window
        assert client.put(base, json=[]).status_code == 200
        assert client.put(base, json=[]).status_code == 200
        assert client.put(base, json=[]).status_code == 200
        assert client.put(base, json=[]).status_code == 429  # the 4th and 5th are still in it
        assert len(sb.violations) == 2


def test_reads(sb, base):
    items = [{"item_id": f"i{n:04d}", "properties": {"title": str(n)}} for n in range(1200)]
    assert put(base, items).status_code == 200
    queued_work_done(sb)
    r = httpx.get(base, params={"count": 3, "skip": 2, "order": "item_id asc"}, auth=AUTH)
    body = r.json()
    assert body["success"] is True and body["total"] == 1200
    assert body["data"] == items[2:5]
    # no default order is documented: the simulator's is not item_id's
    assert httpx.get(base, params={"count": 3}, auth=AUTH).json()["data"] != items[:3]
    descending = httpx.get(base, params={"count": 2, "order": "title desc, item_id asc"}, auth=AUTH).json()["data"]
    assert [i["item_id"] for i in descending] == ["i0999", "i0998"]  # titles compare as text
    assert httpx.get(base, params={"order": "item_id sideways"}, auth=AUTH).status_code == 400
    assert len(httpx.get(base, auth=AUTH).json()["data"]) == 20
    assert httpx.get(base, params={"count": 1000, "skip": 1}, auth=AUTH).status_code == 200
    r = httpx.get(base, params={"count": 1000, "skip": 2}, auth=AUTH)
    assert r.status_code == 400 and r.json()["success"] is False
    r = httpx.get(base + "/i0007", auth=AUTH)
    assert r.json() == {"success": True, "data": items[7]}
    r = httpx.get(base + "/missing", auth=AUTH)
    assert r.status_code == 404
    assert r.json()["success"] is False
    assert r.json()["errors"]["_global"][0].startswith("The requested URL was not found on the server")
