"""venddor: encode/decode on documented shapes, and contract tests against the sandbox."""
from __future__ import annotations

import orjson
import pytest

from reconciler.errors import ConfigError
from reconciler.manifest.models import Product, Target
from reconciler.mapping import records
from reconciler.providers import get_provider
from test_provider_common import client  # noqa: F401 (a fixture)
from test_provider_common import CREDENTIALS, assert_no_secret, op, response, send
from reconciler.apply.http import classify
from conftest import sandbox_fixture

Venddor = get_provider("venddor")
GTINS = ["7891404130317", "7898915633481", "12345670", "4006381333931"]


def product(gtin: str, **extra) -> dict:
    payload = {"product_code": gtin, "product": f"Chocolate {gtin}", "brand": "NESTLE", "weight": "80",
               "price": "8,99", "amount": "230", "status": "A", "internal_product_code": f"SKU-{gtin}"}
    payload.update(extra)
    return payload


@pytest.fixture
def provider():
    return Venddor({}, CREDENTIALS["venddor"])


# -- unit -----------------------------------------------------------------------------
def test_encode_upserts_and_delete_resends_with_status_d(provider):
    ops = [op("create", GTINS[0], after=product(GTINS[0])),
           op("delete", GTINS[1], before=product(GTINS[1]))]
    request = provider.encode(ops)
    assert (request.method, request.path) == ("POST", "/api/products/")
    assert orjson.loads(request.body) == [product(GTINS[0]), product(GTINS[1], status="D")]
    assert request.headers["Authorization"] == "Basic c2FuZGJveC11c2VyOnNhbmRib3gtcGFzcw=="
    assert_no_secret(provider, request)


def test_encode_makes_every_value_a_string(provider):
    request = provider.encode([op("create", GTINS[0], after=product(GTINS[0], weight=80, amount=3.0))])
    assert orjson.loads(request.body)[0]["weight"] == "80"
    assert orjson.loads(request.body)[0]["amount"] == "3"


def test_decode_201_gives_remote_ids_in_order(provider):
    ops = [op("create", g, after=product(g)) for g in GTINS[:3]]
    outcomes = provider.decode(provider.encode(ops),
                               response(201, {"product_id": 11, "product_ids": [11, 7, 30]}))
    assert [(o.status, o.remote_id) for o in outcomes] == [("confirmed", "11"), ("confirmed", "7"), ("confirmed", "30")]


def test_decode_400_splits_or_rejects_a_lone_product(provider):
    bad = {"message": "Bad Request", "status": 400}
    ops = [op("create", g, after=product(g)) for g in GTINS[:2]]
    assert {o.status for o in provider.decode(provider.encode(ops), response(400, bad))} == {"split"}
    [o] = provider.decode(provider.encode(ops[:1]), response(400, bad))
    assert o.status == "failed" and "refused" in o.reason and "price" in o.reason


@pytest.mark.parametrize(("price", "currency", "sent"), [
    ("1.234", "BHD", "1,234"), ("1.2", "BHD", "1,200"), ("899", "JPY", "899"), ("8.9", "BRL", "8,90"),
    ("8.9", None, "8,90"), ("0.0001", "CLF", "0,0001")])
def test_a_price_has_its_currencys_decimals(price, currency, sent):
    product = Product(sku="A", name="n", gtin=GTINS[0], price=price, currency=currency)
    assert records(Target(name="t", provider="venddor"), product)["product"]["price"] == sent


# -- contract, against the sandbox ----------------------------------------------------
sandbox = sandbox_fixture(async_delay=0.05, time_scale=0.001, latency=0.001)


@pytest.fixture
def url(sandbox):
    return sandbox.urls["venddor"]


def test_sandbox_upsert_ids_and_delete(sandbox, client, url, provider):
    ops = [op("create", g, after=product(g)) for g in GTINS]
    request = provider.encode(ops)
    outcomes = provider.decode(request, send(client, url, request))
    assert [o.status for o in outcomes] == ["confirmed"] * 4
    ids = [o.remote_id for o in outcomes]
    assert len(set(ids)) == 4 and all(i.isdigit() for i in ids)
    stored = {p["product_code"]: p for p in sandbox.catalog("venddor")}
    assert {g: str(p["product_id"]) for g, p in stored.items()} == dict(zip(GTINS, ids))

    request = provider.encode([op("delete", GTINS[0], before=product(GTINS[0]))])
    [outcome] = provider.decode(request, send(client, url, request))
    assert (outcome.status, outcome.remote_id) == ("confirmed", ids[0])
    assert {p["product_code"]: p["status"] for p in sandbox.catalog("venddor")}[GTINS[0]] == "D"


def test_sandbox_400_bisects_to_the_bad_product(sandbox, client, url, provider):
    ops = [op("create", g, after=product(g)) for g in GTINS[:3]]
    ops.append(op("create", "7891404130314", after=product("7891404130314")))  # bad check digit
    request = provider.encode(ops)
    assert {o.status for o in provider.decode(request, send(client, url, request))} == {"split"}
    assert sandbox.catalog("venddor") == []
    pending, final = [ops], {}
    while pending:
        batch = pending.pop()
        request = provider.encode(batch)
        for outcome in provider.decode(request, send(client, url, request)):
            if outcome.status == "split":
                middle = len(batch) // 2
                pending += [batch[:middle], batch[middle:]]
                break
            final[outcome.operation.key] = outcome.status
    assert final == {**dict.fromkeys(GTINS[:3], "confirmed"), "7891404130314": "failed"}


def test_sandbox_takes_each_currencys_decimals_and_only_a_decimal_comma(sandbox, client, url, provider):
    target = Target(name="t", provider="venddor")
    mapped = {gtin: records(target, Product(sku=f"SKU-{gtin}", name="n", gtin=gtin, price=price, currency=currency)
                            )["product"]
              for gtin, price, currency in [(GTINS[0], "1.234", "BHD"), (GTINS[1], "899", "JPY")]}
    request = provider.encode([op("create", gtin, after=payload) for gtin, payload in mapped.items()])
    assert [o.status for o in provider.decode(request, send(client, url, request))] == ["confirmed"] * 2
    assert {p["product_code"]: p["price"] for p in sandbox.catalog("venddor")} == {GTINS[0]: "1,234", GTINS[1]: "899"}
    for bad in ("8.99", "8,", ",99", "8,9,9"):
        request = provider.encode([op("create", GTINS[2], after=product(GTINS[2], price=bad))])
        [outcome] = provider.decode(request, send(client, url, request))
        assert outcome.status == "failed", bad


def test_sandbox_bad_credentials(client, url):
    provider = Venddor({}, {"username": "sandbox-user", "password": "nope"})
    request = provider.encode([op("create", GTINS[0], after=product(GTINS[0]))])
    with pytest.raises(ConfigError, match="venddor.*username") as info:
        classify(send(client, url, request), provider)
    assert "nope" not in str(info.value)


def test_sandbox_refuses_more_than_60(sandbox, client, url, provider):
    request = provider.encode([op("create", GTINS[i % 4], after=product(GTINS[i % 4])) for i in range(61)])
    outcomes = provider.decode(request, send(client, url, request))
    assert {o.status for o in outcomes} == {"split"}
    assert "61 products" in sandbox.violations[0]["violation"]
    sandbox.reset()
