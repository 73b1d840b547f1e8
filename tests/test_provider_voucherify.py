"""voucherify: encode/decode on documented shapes, and contract tests against the sandbox."""
from __future__ import annotations

import httpx
import pytest

from reconciler.apply.http import classify
from reconciler.errors import ConfigError
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


def test_poll(provider):
    ops = tuple(op("create", k, after=payload(k, x=1)) for k in "abc")
    job = Job("aa_1", ops)
    request = provider.poll_request(job)
    assert (request.method, request.path, request.write) == ("GET", "/v1/async-actions/aa_1", False)
    for status in ("ENQUEUED", "IN_PROGRESS"):
        assert provider.decode_poll(job, response(200, {"id": "aa_1", "status": status})) is None
    done = {"id": "aa_1", "status": "DONE", "operation_status": "PARTIAL_SUCCESS",
            "result": {"done_count": 2, "failed_count": 1,
                       "errors": [{"source_id": "b", "message": "Invalid metadata value"}]}}
    assert [(o.status, o.reason) for o in provider.decode_poll(job, response(200, done))] == [
        ("confirmed", None), ("failed", "Invalid metadata value"), ("confirmed", None)]
    failed = provider.decode_poll(job, response(200, {"id": "aa_1", "status": "FAILED", "result": {}}))
    assert {o.status for o in failed} == {"retry"}
    assert provider.decode_poll(job, response(503, b"")) is None
    assert {o.status for o in provider.decode_poll(job, response(404, {"code": 404}))} == {"retry"}


def test_read_pages(provider):
    assert provider.read_request(None).params == {"limit": "100", "page": "1"}
    request = httpx.Request("GET", "http://x/v1/products?limit=100&page=2")
    body = {"object": "list", "data_ref": "products", "total": 250, "products": [
        {"source_id": "a", "metadata": {"x": 1, "gone": None}}, {"source_id": "b", "metadata": {"gone": None}}]}
    page = provider.decode_read(response(200, body, request=request))
    assert page.items == [("product", "a", payload("a", x=1))]
    assert page.cursor == "3"
    last = httpx.Request("GET", "http://x/v1/products?limit=100&page=3")
    assert provider.decode_read(response(200, dict(body, products=[]), request=last)).cursor is None


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


def test_sandbox_failed_items_are_rejected(sandbox, client, url, provider):
    result = apply(client, url, provider, [op("create", "a", after=payload("a", bad=[1, 2]))])
    assert result["a"].status == "failed" and "not allowed" in result["a"].reason


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
