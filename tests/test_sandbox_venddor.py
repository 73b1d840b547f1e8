"""Venddor simulator over real sockets."""
from __future__ import annotations

import httpx
import pytest

from reconciler.manifest.models import gtin_is_valid
from conftest import emptied_before_each_test, sandbox_fixture, with_check_digit

AUTH = ("sandbox-user", "sandbox-pass")
BAD = {"message": "Bad Request", "status": 400}


sb = sandbox_fixture(latency=0)


fresh = emptied_before_each_test()


@pytest.fixture
def url(sb):
    return sb.urls["venddor"] + "/api/products/"


def gtin13(n: int) -> str:
    return with_check_digit(f"789{n:09d}")


def product(code="7891404130317", **extra):
    p = {"product_code": code, "product": "Chocolate 80g", "price": "8,99", "amount": "230", "status": "A"}
    p.update(extra)
    return p


def test_gs1():
    assert gtin_is_valid("7891404130317")
    assert not gtin_is_valid("7891404130314")  # the seed's example barcode
    assert gtin_is_valid("96385074") and gtin_is_valid("036000291452") and gtin_is_valid("10012345678902")
    assert not gtin_is_valid("123456789") and not gtin_is_valid("７891404130317")


def test_success_ids_stable(sb, url):
    p1 = product(gtin13(1), ncm="18069000", brand="NESTLE", weight="80", qty_step="1",
                 internal_product_code="SKU-1", quantity_per_package="6")
    r = httpx.post(url, json=[p1, product(gtin13(2))], auth=AUTH)
    assert r.status_code == 201 and r.headers["content-type"] == "application/json"
    assert r.json() == {"product_id": 934887, "product_ids": [934887, 934888]}
    r = httpx.post(url, json=[product(gtin13(3)), product(gtin13(1), status="D")], auth=AUTH)
    assert r.json() == {"product_id": 934889, "product_ids": [934889, 934887]}
    items = sb.catalog("venddor")
    assert [i["product_id"] for i in items] == [934887, 934888, 934889]
    assert items[0] == {"product_id": 934887, **product(gtin13(1), status="D")}  # full upsert


@pytest.mark.parametrize("bad", [
    product("7891404130314"), product("12345"), product(price="8.99"), product(price="8,"),
    product(price=8), product(amount="1.5"), product(status="X"), product(weight=80),
    product(colour="red"), {"product_code": "7891404130317", "product": "x", "amount": "1", "status": "A"},
    product(product=""), "not an object",
])
def test_any_invalid_product_rejects_whole_request(sb, url, bad):
    r = httpx.post(url, json=[product(gtin13(9)), bad], auth=AUTH)
    assert r.status_code == 400 and r.json() == BAD
    assert sb.catalog("venddor") == [] and sb.violations == []


def test_bad_bodies(sb, url):
    for content in (b"[{", b"{}", b"[]", b'"x"'):
        r = httpx.post(url, content=content, auth=AUTH, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json() == BAD


def test_limit_60(sb, url):
    r = httpx.post(url, json=[product(gtin13(i)) for i in range(61)], auth=AUTH)
    assert r.status_code == 400 and r.json() == BAD
    assert len(sb.violations) == 1 and sb.violations[0]["items"] == 61
    r = httpx.post(url, json=[product(gtin13(i)) for i in range(60)], auth=AUTH)
    assert r.status_code == 201 and len(r.json()["product_ids"]) == 60
    assert len(sb.violations) == 1


def test_auth(sb, url):
    for auth in (("sandbox-user", "x"), None):
        r = httpx.post(url, json=[product()], auth=auth)
        assert r.status_code == 401 and r.json() == {"message": "Unauthorized", "status": 401}
    assert sb.catalog("venddor") == []
