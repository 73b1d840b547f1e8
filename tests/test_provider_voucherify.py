"""voucherify: encode/decode on documented shapes, and contract tests against the sandbox."""
from __future__ import annotations

import httpx
import pytest

from reconciler.apply.http import classify
from reconciler.errors import ConfigError, UnexpectedAnswer
from reconciler.providers import Job, get_provider
from reconciler.providers.voucherify.wire import metadata_change
from conftest import sandbox_fixture
from test_provider_common import (  # noqa: F401 (client is a fixture)
    client,
    CREDENTIALS, assert_no_secret, op, poll_until_done, read_all, response, send,
)

Voucherify = get_provider("voucherify")


def payload(sku: str, **metadata) -> dict:
    return {"source_id": sku, "metadata": metadata}


@pytest.fixture
def provider():
    return Voucherify({}, CREDENTIALS["voucherify"])


# -- unit -----------------------------------------------------------------------------
def test_metadata_change_per_action():
    assert metadata_change(op("create", "a", after=payload("a", x=1, y="b"))) == {"x": 1, "y": "b"}
    update = op("update", "a", before=payload("a", x=1, y="b", z=True), after=payload("a", x=2, y="b", w=0))
    assert metadata_change(update) == {"x": 2, "w": 0, "z": None}
    assert metadata_change(op("delete", "a", before=payload("a", x=1, y="b"))) == {"x": None, "y": None}


def test_group_key_is_the_canonical_change(provider):
    a = op("create", "a", after=payload("a", x=1, y=2))
    b = op("update", "b", before=payload("b", x=0, y=2), after={"metadata": {"y": 2, "x": 1}, "source_id": "b"})
    c = op("create", "c", after=payload("c", x=1, y=2, z=3))
    assert provider.group_key(a) == provider.group_key(op("create", "a2", after=payload("a2", y=2, x=1)))
    assert provider.group_key(a) != provider.group_key(b)  # b only changes x
    assert provider.group_key(a) != provider.group_key(c)
    assert provider.group_key(a) == b'{"x":1,"y":2}'


def test_encode(provider):
    ops = [op("create", k, after=payload(k, label=True, origin="PL")) for k in ("123-567-3433", "test_volleyball")]
    request = provider.encode(ops)
    assert (request.method, request.path) == ("POST", "/v1/products/metadata/async")
    assert request.body == b'{"source_ids":["123-567-3433","test_volleyball"],"metadata":{"label":true,"origin":"PL"}}'
    assert request.headers["X-App-Id"] == "sandbox-app" and request.headers["X-App-Token"] == "sandbox-token"
    assert_no_secret(provider, request)


def test_decode_202_413(provider):
    ops = [op("create", "a", after=payload("a", x=1))]
    request = provider.encode(ops)
    [o] = provider.decode(request, response(202, {"async_action_id": "aa_0a875d56c805df6601"}))
    assert o.status == "pending" and o.job == Job("aa_0a875d56c805df6601", tuple(ops))
    [o] = provider.decode(request, response(413, {"statusCode": 413, "error": "Request Entity Too Large",
                                                  "message": "Payload content length greater than maximum allowed: 10485760"}))
    assert o.status == "split" and "10485760" in o.reason


def poll(provider, ops, body, status=200):
    return provider.decode_poll(Job("aa_1", tuple(ops)), response(status, body))


def statuses(outcomes):
    return [(o.operation.key, o.status) for o in outcomes]


def test_poll_request_and_running_actions(provider):
    ops = tuple(op("create", k, after=payload(k, x=1)) for k in "abc")
    request = provider.poll_request(Job("aa_1", ops))
    assert (request.method, request.path, request.write) == ("GET", "/v1/async-actions/aa_1", False)
    for status in ("ENQUEUED", "IN_PROGRESS"):
        assert poll(provider, ops, {"id": "aa_1", "status": status, "result": {}}) is None


def test_poll_older_shape_results_decide_each_product(provider):
    ops = [op("create", "a", after=payload("a", x=1)), op("create", "b", after=payload("b", x=1)),
           op("update", "c", before=payload("c", x=0), after=payload("c", x=1)),
           op("create", "d", after=payload("d", x=1)), op("update", "e", before=payload("e", x=0), after=payload("e", x=1))]
    # the documented example: done_count counts products that were not updated
    done = {"id": "aa_1", "status": "DONE", "result": {"done_count": 4, "results": [
        {"source_id": "a", "updated": True, "found": False}, {"source_id": "b", "updated": False, "found": True},
        {"source_id": "c", "updated": False, "found": False}, {"source_id": "e", "updated": True, "found": True}]}}
    outcomes = poll(provider, ops, done)
    assert statuses(outcomes) == [("a", "confirmed"), ("b", "failed"), ("c", "failed"), ("d", "failed"),
                                  ("e", "confirmed")]
    assert outcomes[1].reason == "voucherify did not update it (updated: false, found: true)"
    assert outcomes[2].reason == "voucherify did not update it (updated: false, found: false)"
    assert outcomes[3].reason == "not confirmed: the result of voucherify's async action aa_1 does not list it"
    # an update of a product that was gone created it with the changed keys only
    done["result"]["results"][3]["found"] = False
    [*_, last] = poll(provider, ops, done)
    assert last.status == "failed" and "found: false" in last.reason and "plan --refresh" in last.reason


def test_poll_current_shape_counts(provider):
    ops = [op("create", k, after=payload(k, x=1)) for k in "abc"]

    def done(done_count, failed_count, errors=[], operation_status="SUCCESS"):
        return {"id": "aa_1", "status": "DONE", "operation_status": operation_status,
                "result": {"done_count": done_count, "failed_count": failed_count, "reports": [],
                           "reports_available_till": None, "errors": errors}}

    assert {o.status for o in poll(provider, ops, done(3, 0))} == {"confirmed"}
    invalid = {"message": "Invalid metadata", "details": "property size must be of type number", "key": "invalid_metadata"}
    every = poll(provider, ops, done(0, 3, [invalid] * 3, "FAILED"))
    assert {o.status for o in every} == {"failed"}
    assert every[0].reason == ("voucherify failed every product of async action aa_1: Invalid metadata property "
                               "size must be of type number (invalid_metadata)")
    # failures without ids: no product can be confirmed
    mixed = poll(provider, ops, done(2, 1, [invalid], "UNKNOWN"))
    assert {o.status for o in mixed} == {"failed"}
    assert mixed[0].reason.startswith("not confirmed: voucherify's async action aa_1 counts 2 done and 1 failed of 3 "
                                      "products without naming which: Invalid metadata")
    # nor when the counts do not add up, or the action says it failed
    assert {o.status for o in poll(provider, ops, done(2, 0))} == {"failed"}
    assert {o.status for o in poll(provider, ops, done(3, 0, [], "FAILED"))} == {"failed"}
    # errors that name the product fail it, and account for the failures
    named = poll(provider, ops, done(2, 1, [{"source_id": "b", "message": "Invalid metadata"}], "UNKNOWN"))
    assert statuses(named) == [("a", "confirmed"), ("b", "failed"), ("c", "confirmed")]
    keyed = poll(provider, ops, done(2, 1, {"c": "refused"}, "UNKNOWN"))
    assert statuses(keyed) == [("a", "confirmed"), ("b", "confirmed"), ("c", "failed")]
    assert keyed[2].reason == "refused"


@pytest.mark.parametrize("status,body", [
    (200, b"<html><body>Gateway</body></html>"), (200, {"status": "DONE"}), (200, {"status": "DONE", "result": {}}),
    (200, {"status": "DONE", "result": {"done_count": "3"}}), (200, {"status": "PAUSED"}), (200, [1, 2]),
    (400, {"code": 400, "message": "bad"}),
])
def test_poll_unexpected_answers_are_not_outcomes(provider, status, body):
    """The engine calls the status again (the products are not sent again, nothing is confirmed)."""
    ops = [op("create", "a", after=payload("a", x=1))]
    with pytest.raises(UnexpectedAnswer, match="voucherify"):
        poll(provider, ops, body, status)


def test_poll_failed_or_unknown_actions_send_again(provider):
    ops = [op("create", "a", after=payload("a", x=1))]
    assert {o.status for o in poll(provider, ops, {"id": "aa_1", "status": "FAILED", "result": {}})} == {"retry"}
    assert {o.status for o in poll(provider, ops, {"code": 404, "key": "not_found"}, 404)} == {"retry"}


def listing(page, products, total, limit=100):
    request = httpx.Request("GET", f"http://x/v1/products?limit={limit}&page={page}&order=created_at")
    return response(200, {"object": "list", "data_ref": "products", "total": total, "products": products},
                    request=request)


def test_read_pages(provider):
    assert provider.read_request(None).params == {"limit": "100", "page": "1", "order": "created_at"}
    body = [{"source_id": "a", "metadata": {"x": 1, "gone": None}}, {"source_id": "b", "metadata": {"gone": None}}]
    page = provider.decode_read(listing(2, body, 250))
    assert page.items == [("product", "a", payload("a", x=1))]
    assert page.cursor == "3" and page.incomplete is None
    assert provider.decode_read(listing(3, [], 250)).cursor is None
    assert provider.decode_read(listing(3, body, 250)).cursor is None  # 300 >= 250


def test_read_stops_at_page_99():
    """Past 99 pages the listing is incomplete: the rest is read one product at a time."""
    provider = Voucherify({}, CREDENTIALS["voucherify"])
    page = provider.decode_read(listing(98, [{"source_id": "a", "metadata": {"x": 1}}], 9_901))
    assert page.cursor == "99"
    page = provider.decode_read(listing(99, [{"source_id": "a", "metadata": {"x": 1}}], 9_901))
    assert page.cursor is None
    assert page.incomplete == "the catalog has 9,901 products, and the API lists at most 9,900 (99 pages of 100)"
    assert provider.decode_read(listing(99, [{"source_id": "a", "metadata": {"x": 1}}], 9_900)).incomplete is None


@pytest.mark.parametrize("body", [{"object": "list"}, {"products": [], "total": "3"}, {"products": {}, "total": 3}])
def test_read_of_an_unexpected_listing_is_an_error(provider, body):
    with pytest.raises(UnexpectedAnswer, match="unexpected answer"):
        provider.decode_read(response(200, body, request=httpx.Request("GET", "http://x/v1/products?page=1")))


def test_read_one_product(provider):
    request = provider.read_item_request("product", "a/b c")
    assert (request.method, request.path, request.write) == ("GET", "/v1/products/a%2Fb%20c", False)
    found = {"id": "prod_1", "source_id": "a", "metadata": {"x": 1, "y": None}, "object": "product"}
    assert provider.decode_read_item(response(200, found)) == ("product", "a", payload("a", x=1))
    assert provider.decode_read_item(response(200, dict(found, metadata={"y": None}))) is None
    assert provider.decode_read_item(response(404, {"code": 404, "key": "not_found"})) is None
    for resend in (False, True):  # nulling a missing product's keys would create it
        assert provider.read_before_delete(op("delete", "a", before=payload("a", x=1)), resend)


# -- contract, against the sandbox ----------------------------------------------------
sandbox = sandbox_fixture(async_delay=0.05, time_scale=0.001, latency=0.001)


@pytest.fixture
def url(sandbox):
    return sandbox.urls["voucherify"]


def apply(client, url, provider, ops):
    from reconciler.apply.batching import pack
    final = {}
    for request in pack(provider, ops):
        for outcome in provider.decode(request, send(client, url, request)):
            assert outcome.status == "pending"
            final[outcome.operation.key] = outcome
    for job in {o.job.handle: o.job for o in final.values()}.values():
        for outcome in poll_until_done(client, url, provider, job):
            final[outcome.operation.key] = outcome
    return final


def stored(sandbox):
    return {p["source_id"]: p["metadata"] for p in sandbox.catalog("voucherify")}


def test_sandbox_lifecycle_and_read_back(sandbox, client, url, provider):
    created = {f"s{i}": payload(f"s{i}", color=["red", "blue"][i % 2], size=i) for i in range(6)}
    result = apply(client, url, provider, [op("create", k, after=v) for k, v in created.items()])
    assert {o.status for o in result.values()} == {"confirmed"}
    assert len([e for e in sandbox.log if e["method"] == "POST"]) == 6  # sizes differ per item
    assert read_all(client, url, provider) == {("product", k): v for k, v in created.items()}

    updated = payload("s0", color="green")
    result = apply(client, url, provider, [op("update", "s0", before=created["s0"], after=updated),
                                           op("delete", "s1", before=created["s1"])])
    assert {k: o.status for k, o in result.items()} == {"s0": "confirmed", "s1": "confirmed"}
    assert stored(sandbox)["s0"] == {"color": "green", "size": None}
    assert stored(sandbox)["s1"] == {"color": None, "size": None}
    read = read_all(client, url, provider)
    assert read[("product", "s0")] == updated and ("product", "s1") not in read


def test_sandbox_identical_changes_share_one_request(sandbox, client, url, provider):
    ops = [op("create", f"s{i}", after=payload(f"s{i}", campaign="spring")) for i in range(250)]
    result = apply(client, url, provider, ops)
    assert {o.status for o in result.values()} == {"confirmed"}
    assert len([e for e in sandbox.log if e["method"] == "POST"]) == 1
    assert len(read_all(client, url, provider)) == 250  # three pages of 100


@pytest.mark.parametrize("shape", ["current", "results"])
def test_sandbox_products_refused_by_the_metadata_schema_fail(sandbox, client, url, provider, shape):
    simulator = sandbox.simulators["voucherify"]
    simulator.result_shape = shape
    simulator.set_metadata_schema({"size": {"type": "number"}, "season": {"type": "string", "eq": ["spring", "fall"]}})
    result = apply(client, url, provider, [op("create", "a", after=payload("a", size=1)),
                                           op("create", "b", after=payload("b", size="XL")),
                                           op("create", "c", after=payload("c", season="winter"))])
    assert {k: o.status for k, o in result.items()} == {"a": "confirmed", "b": "failed", "c": "failed"}
    if shape == "current":
        assert result["b"].reason.startswith("voucherify failed every product of async action aa_")
        assert "property size must be of type number" in result["b"].reason
    else:
        assert result["b"].reason == "voucherify did not update it (updated: false, found: false)"
    assert stored(sandbox) == {"a": {"size": 1}}


@pytest.mark.parametrize("shape,expected", [
    ("results", {"known": "confirmed", "new": "failed"}),
    ("current", {"known": "failed", "new": "failed"}),  # counts without ids: neither is confirmed
])
def test_sandbox_one_product_of_an_action_refused(sandbox, client, url, provider, shape, expected):
    """A required key: the product that has it takes the change, a new one without it is
    refused; only the older result shape says which."""
    simulator = sandbox.simulators["voucherify"]
    apply(client, url, provider, [op("create", "known", after=payload("known", tier="gold"))])
    simulator.result_shape = shape
    simulator.set_metadata_schema({"tier": {"type": "string", "optional": False}})
    result = apply(client, url, provider, [
        op("update", "known", before=payload("known", tier="gold"), after=payload("known", tier="gold", x=1)),
        op("create", "new", after=payload("new", x=1))])
    assert len([e for e in sandbox.log if e["method"] == "POST"]) == 2  # one change, one request
    assert {k: o.status for k, o in result.items()} == expected
    assert stored(sandbox) == {"known": {"tier": "gold", "x": 1}}
    if shape == "current":
        assert result["known"].reason.startswith("not confirmed: ")


def test_sandbox_bad_credentials(client, url):
    provider = Voucherify({}, {"app_id": "sandbox-app", "app_token": "nope"})
    request = provider.encode([op("create", "a", after=payload("a", x=1))])
    with pytest.raises(ConfigError, match="voucherify.*app_token") as info:
        classify(send(client, url, request), provider)
    assert "nope" not in str(info.value)
    with pytest.raises(ConfigError):
        classify(send(client, url, provider.read_request(None)), provider)


def test_sandbox_413_over_the_byte_limit(sandbox, client, url, provider):
    ops = [op("create", f"{i:0>100}", after=payload("x", k=1)) for i in range(110_000)]
    request = provider.encode(ops)  # built by hand, past the documented limit
    assert len(request.body) > 10_485_760
    outcomes = provider.decode(request, send(client, url, request))
    assert {o.status for o in outcomes} == {"split"}
    assert "bytes" in sandbox.violations[0]["violation"]
    sandbox.reset()
