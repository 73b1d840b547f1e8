"""Venddor is readable (issue 10 item 5): its apidoc's paginated product listing, in
either of the two envelopes the apidoc shows, read by drift, ``plan --refresh`` and
``import`` like the other readable providers."""
from __future__ import annotations

import orjson
import pytest

from conftest import product, sandbox_fixture, target
from reconciler.apply.http import Failed, decoded
from reconciler.providers import get_provider
from reconciler.state import State
from test_provider_common import CREDENTIALS, response

GTINS = ["7891404130317", "7898915633481", "4006381333931"]


def provider():
    return get_provider("venddor")({}, CREDENTIALS["venddor"])


def page(body, number=1):
    request = provider().read_request(str(number))
    return provider().decode_read(response(200, body, request=_httpx(request)))


def _httpx(request):
    import httpx

    return httpx.Request(request.method, "http://venddor.test" + request.path, params=dict(request.params))


ROW = {"product_id": "973732", "product": "Disney Kids Shoes", "product_code": "7891404130317", "amount": 230,
       "price": "89.90", "status": "A"}


def test_the_get_products_envelope_ends_at_its_last_page():
    first = page({"products": [ROW], "pagination": {"total": 42, "per_page": 1, "current_page": 1, "last_page": 2}})
    assert first.items == [("product", "7891404130317", {"product_code": "7891404130317", "product": "Disney Kids Shoes",
                                                         "price": "89,90", "amount": "230", "status": "A"})]
    assert first.cursor == "2"
    last = page({"products": [ROW], "pagination": {"total": 2, "per_page": 1, "current_page": 2, "last_page": 2}}, 2)
    assert last.cursor is None


def test_the_products_api_envelope_ends_once_every_item_is_listed():
    row = {**ROW, "price": 199.99, "quantity": 98}
    del row["amount"]
    more = page({"products": [row], "params": {"page": 1, "items_per_page": 1, "total_items": 2}})
    assert more.cursor == "2" and more.items[0][2]["price"] == "199,99" and more.items[0][2]["amount"] == "98"
    assert page({"products": [row], "params": {"page": 2, "items_per_page": 1, "total_items": 2}}, 2).cursor is None
    # neither envelope: an empty page ends it
    assert page({"products": [row]}).cursor == "2" and page({"products": []}, 2).cursor is None


def test_a_disabled_product_is_what_a_delete_leaves_and_reads_as_absent():
    listed = page({"products": [ROW, {**ROW, "product_code": GTINS[1], "status": "D"}]})
    assert [key for _, key, _ in listed.items] == [GTINS[0]]
    assert provider().reads_as_absent({"status": "D"}) and not provider().reads_as_absent({"status": "H"})


def test_rows_without_the_item_key_cannot_be_used():
    row = {k: v for k, v in ROW.items() if k != "product_code"}
    listed = page({"products": [row, ROW], "params": {"page": 1, "items_per_page": 10, "total_items": 2}})
    assert listed.incomplete.startswith("1 listed products carry no product_code") and listed.cursor is None


@pytest.mark.parametrize("body", [{"products": "none"}, {"products": [{**ROW, "price": "cheap"}]},
                                  {"products": [{**ROW, "amount": 2.5}]}, {"products": [{**ROW, "status": "X"}]},
                                  [ROW], {"items": [ROW]}])
def test_a_listing_not_in_a_documented_shape_is_an_unexpected_answer(body):
    vend = provider()
    request = vend.read_request(None)
    answer = decoded(vend.decode_read, response(200, body, request=_httpx(request)), vend)
    assert isinstance(answer, Failed) and answer.reason.startswith("unexpected answer from venddor (HTTP 200)")


# -- over real sockets ------------------------------------------------------------------
sandbox = sandbox_fixture(latency=0.001)


@pytest.fixture
def shop(ws, sandbox):
    sandbox.reset()
    sandbox.simulators["venddor"].listing = "get-products"
    ws.write("targets.yaml", {"targets": {"vend": target("venddor", sandbox.urls["venddor"])}})
    ws.write("products.yaml", {"products": [product(f"P{i}", gtin=g, weight_grams=80) for i, g in enumerate(GTINS)]})
    return ws


def drift(ws) -> dict:
    result = ws.run("drift", "--format", "json")
    return orjson.loads(result.stdout)["targets"]["vend"]


def test_drift_refresh_and_import_read_venddor(shop, sandbox):
    applied = shop.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    report = drift(shop)
    assert report["readable"] and report["summary"]["in_sync"] == 3 and report["error"] is None, report
    simulator = sandbox.simulators["venddor"]
    with simulator.lock:  # changed in Venddor's back office
        simulator.products[GTINS[1]]["price"] = "12,50"
    report = drift(shop)
    [changed] = report["changed"]
    assert changed["sku"] == "P1" and changed["fields"] == [
        {"field": "price", "kind": "changed", "state": "10,00", "remote": "12,50"}]
    refresh = orjson.loads(shop.run("plan", "--refresh", "--format", "json").stdout)
    assert [(c["sku"], c["fields"]["changed"]) for c in refresh["targets"]["vend"]["changes"]] == [("P1", ["price"])]
    # import into a fresh state adopts what a read gives (the fields it returns)
    (shop.root / "state" / "reconciler.db").unlink()
    imported = shop.run("import", "-t", "vend")
    assert imported.exit_code == 0, imported.output
    state = State(shop.root / "state" / "reconciler.db", create=False)
    assert {i.key: i.payload["price"] for i in state.items("vend")} == {GTINS[0]: "10,00", GTINS[1]: "12,50",
                                                                       GTINS[2]: "10,00"}
    state.close()


def test_a_listing_without_product_codes_is_said_not_guessed(shop, sandbox):
    assert shop.run("apply", "--auto-approve").exit_code == 0
    sandbox.simulators["venddor"].listing = "products-api"
    result = shop.run("drift")
    assert result.exit_code == 1
    assert "3 listed products carry no product_code" in result.output, result.output


def test_a_listed_price_keeps_its_decimals_and_compares_by_amount():
    listed = page({"products": [{**ROW, "price": "1.234"}, {**ROW, "product_code": GTINS[1], "price": 899}]})
    assert [payload["price"] for _, _, payload in listed.items] == ["1,234", "899,00"]
    vend = provider()
    assert vend.normalise_read({"price": "899"}) == vend.normalise_read({"price": "899,00"})
    assert vend.normalise_read({"price": "1,200"}) == vend.normalise_read({"price": "1,20"})
    assert vend.normalise_read({"price": "1,234"}) != vend.normalise_read({"price": "1,23"})


def test_prices_of_every_currency_read_back_in_sync_and_import_as_written(shop, sandbox):
    """A listing names no currency: a JPY 899 (sent "899") and a BHD 1.234 (sent "1,234")
    read back as the same amounts, and import writes them as the manifests do."""
    shop.write("products.yaml", {"products": [
        product("P0", gtin=GTINS[0], price="1.234", currency="BHD"), product("P1", gtin=GTINS[1], price="899",
                                                                              currency="JPY"),
        product("P2", gtin=GTINS[2], price="1.2", currency="BHD")]})
    applied = shop.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert {p["product_code"]: p["price"] for p in sandbox.catalog("venddor")} == {
        GTINS[0]: "1,234", GTINS[1]: "899", GTINS[2]: "1,200"}
    report = drift(shop)
    assert report["summary"]["in_sync"] == 3 and not report["changed"], report
    (shop.root / "state" / "reconciler.db").unlink()
    assert shop.run("import", "-t", "vend").exit_code == 0
    state = State(shop.root / "state" / "reconciler.db", create=False)
    assert {i.key: i.payload["price"] for i in state.items("vend")} == {GTINS[0]: "1,234", GTINS[1]: "899",
                                                                       GTINS[2]: "1,200"}
    state.close()
    plan = shop.run("plan")  # what no listing gives (brand, ...) is sent again; no price
    assert plan.exit_code == 0 and "brand" in plan.output and "price" not in plan.output, plan.output
