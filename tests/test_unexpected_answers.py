"""A success whose body is not the documented shape is no success (issue 10 item 1).

An HTML page from a proxy, a truncated JSON body, another type or missing fields in a
2xx: the provider's decode says so (it knows its documented shapes) and the engine's
one rule (:func:`reconciler.apply.http.decoded`) makes it a failed attempt, sent again
like a 5xx, quoting the first 200 characters of the answer.
"""
from __future__ import annotations

import pytest

from reconciler.apply.http import Failed
from reconciler.providers import get_provider
from test_provider_common import CREDENTIALS, op, response, through_engine

SETTINGS = {"bloomreach": {"project_id": "p", "catalog_id": "c"},
            "meta_catalog": {"catalog_id": "1", "api_version": "v21.0"}}
PAYLOADS = {
    "vtex_ads": {"product_sku": "A", "name": "n", "url": "u", "image_url": "i", "categories": ["c"]},
    "bloomreach": {"title": "t"},
    "venddor": {"product_code": "7891404130317", "product": "p", "price": "8,99", "amount": "1", "status": "A"},
    "meta_catalog": {"name": "n", "price": 899, "currency": "USD"},
    "voucherify": {"source_id": "A", "metadata": {"k": 1}},
}
PAGE = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" + "x" * 400 + "</body></html>"
# per provider: 2xx answers that are not the documented one, each with missing or wrong fields
WRONG = {
    "vtex_ads": [(202, {"message": "products will be processed soon"}), (202, {"messages": "soon"})],
    "bloomreach": [(200, [{"queued": "True"}]), (200, [{"success": "maybe"}]),
                   (200, [{"success": "True"}, {"success": "True"}])],
    "venddor": [(201, {"product_id": 1}), (201, {"product_ids": []}), (201, {"product_ids": [None]})],
    "meta_catalog": [(200, {"handles": "H1"}), (200, {"validation_status": []})],
    "voucherify": [(202, {"async_action_id": 5}), (202, {"id": "aa_1"})],
}


def answers(name: str) -> list[tuple[int, object]]:
    """``(status, body)``: bytes are sent as they are, anything else as JSON."""
    broken = b'[{"success": "True", "queu'
    return [(200, PAGE.encode()), (200, broken), (200, {}), (200, [1, 2, 3]), (200, None), (200, "ok"),
            *WRONG[name]]


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_success_not_in_the_documented_shape_is_a_failed_attempt(name):
    provider = get_provider(name)(SETTINGS.get(name, {}), CREDENTIALS[name])
    request = provider.encode([op("create", "A", after=PAYLOADS[name])])
    for status, body in answers(name):
        answer = response(status, body, headers={"content-type": "text/html"} if body == PAGE.encode() else None)
        verdict = through_engine(provider, request, answer)
        assert isinstance(verdict, Failed), (status, body, verdict)
        assert verdict.reason.startswith(f"unexpected answer from {name} (HTTP {status}): "), verdict.reason
        if body == PAGE.encode():  # the answer's first 200 characters, said once
            quoted = verdict.reason.split(": ", 1)[1]
            assert quoted.startswith("<!DOCTYPE html><html><head><title>502") and len(quoted) == 200


@pytest.mark.parametrize("name", sorted(WRONG))
def test_the_documented_success_still_is_one(name):
    provider = get_provider(name)(SETTINGS.get(name, {}), CREDENTIALS[name])
    request = provider.encode([op("create", "A", after=PAYLOADS[name])])
    documented = {"vtex_ads": (202, {"messages": ["products will be processed soon"]}),
                  "bloomreach": (200, [{"success": "True", "queued": "True"}]),
                  "venddor": (201, {"product_id": 934887, "product_ids": [934887]}),
                  "meta_catalog": (200, {"handles": ["H1"], "validation_status": []}),
                  "voucherify": (202, {"async_action_id": "aa_1"})}[name]
    [outcome] = through_engine(provider, request, response(*documented))
    assert outcome.status == {"venddor": "confirmed", "meta_catalog": "pending", "voucherify": "pending"}.get(name, "accepted")


@pytest.mark.parametrize("name", ["bloomreach", "voucherify"])
def test_a_read_of_one_item_not_in_the_documented_shape_is_never_absent(name):
    """Absent is a 404 only: a 200 that is no item would skip a delete that reads first
    (Voucherify), or call the item missing (drift)."""
    from reconciler.providers._common import UnexpectedAnswer

    provider = get_provider(name)(SETTINGS.get(name, {}), CREDENTIALS[name])
    for body in ({}, {"data": None}, {"data": {"properties": {}}}, {"metadata": {"k": 1}}):
        with pytest.raises(UnexpectedAnswer):
            provider.decode_read_item(response(200, body))
    found = {"bloomreach": {"success": True, "data": {"item_id": "A", "properties": {"title": "t"}}},
             "voucherify": {"source_id": "A", "metadata": {"k": 1}}}[name]
    assert provider.decode_read_item(response(200, found))[1] == "A"
    assert provider.decode_read_item(response(404, {"message": "not found"})) is None


def test_a_bloomreach_listing_without_its_items_is_never_an_empty_catalog():
    import httpx

    from reconciler.providers._common import UnexpectedAnswer

    provider = get_provider("bloomreach")(SETTINGS["bloomreach"], CREDENTIALS["bloomreach"])
    request = provider.read_request(None)
    for body in ({"success": True}, {"success": True, "data": None}, {"data": {"item_id": "A"}}):
        sent = httpx.Request(request.method, "http://127.0.0.1:9" + request.path, params=request.params)
        with pytest.raises(UnexpectedAnswer):
            provider.decode_read(response(200, body, request=sent))
