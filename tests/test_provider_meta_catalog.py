"""meta_catalog: encode/decode on documented shapes, and contract tests against the sandbox."""
from __future__ import annotations

import orjson
import pytest

from reconciler.errors import ConfigError
from reconciler.providers import Job, get_provider
from reconciler.providers.meta_catalog.reads import minor_units, product_payload
from conftest import sandbox_fixture
from test_provider_common import (  # noqa: F401 (client is a fixture)
    client,
    CREDENTIALS, assert_no_secret, op, poll_until_done, read_all, response, send,
)

MetaCatalog = get_provider("meta_catalog")
SETTINGS = {"catalog_id": "1234567890", "api_version": "v21.0"}


def item(name: str, **extra) -> dict:
    payload = {"name": name, "description": f"{name} description", "url": f"https://x/{name}",
               "image_url": f"https://x/{name}.jpg", "brand": "Acme", "availability": "in stock",
               "condition": "new", "price": 899, "currency": "USD"}
    payload.update(extra)
    return payload


@pytest.fixture
def provider():
    return MetaCatalog(SETTINGS, CREDENTIALS["meta_catalog"])


def graph_error(code, message="boom", transient=False, status=400):
    return response(status, {"error": {"message": message, "type": "OAuthException", "code": code,
                                       "is_transient": transient, "fbtrace_id": "x"}})


# -- unit: encode ---------------------------------------------------------------------
def test_encode_create_update_delete(provider):
    ops = [op("create", "r1", after=item("a")),
           op("update", "r2", before=item("b", sale_price=500, gtin="12345670"),
              after=item("b", price=999, category="A > B", gtin="12345670")),
           op("delete", "r3", before=item("c"))]
    request = provider.encode(ops)
    assert (request.method, request.path, request.endpoint) == ("POST", "/v21.0/1234567890/batch", "batch")
    assert request.headers["Authorization"] == "Bearer sandbox-token"
    assert_no_secret(provider, request)
    assert orjson.loads(request.body) == {"requests": [
        {"method": "CREATE", "retailer_id": "r1", "data": item("a")},
        {"method": "UPDATE", "retailer_id": "r2", "data": {"price": 999, "category": "A > B", "sale_price": ""}},
        {"method": "DELETE", "retailer_id": "r3"},
    ], "allow_upsert": False}
    assert request.body == orjson.dumps(orjson.loads(request.body))  # compact
    assert len({provider.group_key(o) for o in ops}) == 1


# -- unit: decode ---------------------------------------------------------------------
def test_decode_handle_makes_pending_and_validation_errors_reject(provider):
    ops = [op("create", "r1", after=item("a")), op("create", "r2", after=item("b"))]
    request = provider.encode(ops)
    body = {"handles": ["AczwaOW7j"], "validation_status": [
        {"retailer_id": "r2", "errors": [{"message": "Invalid data"}], "warnings": []}]}
    first, second = provider.decode(request, response(200, body))
    assert first.status == "pending" and first.job == Job("AczwaOW7j", (ops[0],))
    assert second.status == "failed" and second.reason == "Invalid data"


def test_decode_no_handles_means_nothing_ingested(provider):
    ops = [op("create", "r1", after=item("a"))]
    [outcome] = provider.decode(provider.encode(ops), response(200, {"handles": [], "validation_status": []}))
    assert outcome.status == "retry"


# What reaches decode: a Graph error on an answer the engine's HTTP rules let through
# (a 403, 429 or 5xx never gets here).
@pytest.mark.parametrize("code,transient,status,expected,limited", [
    (80014, True, 400, "retry", True),
    (4, False, 400, "retry", True),
    (2, True, 400, "retry", False),
    (1, True, 400, "retry", False),
    (100, False, 400, "failed", False),
    (200, False, 400, "failed", False),
])
def test_decode_graph_errors(provider, code, transient, status, expected, limited):
    request = provider.encode([op("create", "r1", after=item("a"))])
    [outcome] = provider.decode(request, graph_error(code, "(#%d) boom" % code, transient, status))
    assert (outcome.status, outcome.rate_limited) == (expected, limited)
    assert "boom" in outcome.reason


def test_decode_bad_token_stops_the_target(provider):
    request = provider.encode([op("create", "r1", after=item("a"))])
    with pytest.raises(ConfigError, match="meta_catalog.*access_token") as info:
        provider.decode(request, graph_error(190, "Invalid OAuth access token"))
    assert "sandbox-token" not in str(info.value)


# -- unit: polling --------------------------------------------------------------------
def test_poll_request(provider):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    request = provider.poll_request(job)
    assert (request.method, request.path, request.write) == (
        "GET", "/v21.0/1234567890/check_batch_request_status", False)
    assert request.params == {"handle": "H1"}
    assert request.headers["Authorization"] == "Bearer sandbox-token"


@pytest.mark.parametrize("status", ["scheduled", "dispatched", "started"])
def test_decode_poll_not_final(provider, status):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    assert provider.decode_poll(job, response(200, {"data": [{"handle": "H1", "status": status}]})) is None


def test_decode_poll_finished_errors_by_id_and_by_line(provider):
    ops = tuple(op("create", f"r{i}", after=item(str(i))) for i in range(4))
    job = Job("H1", ops)
    body = {"data": [{"handle": "H1", "status": "finished", "errors_total_count": 2, "errors": [
        {"line": 0, "id": "r2", "message": "You cannot create a EntProductItem without required field Availability"},
        {"line": 3, "message": "bad line"}]}]}
    outcomes = provider.decode_poll(job, response(200, body))
    assert [o.status for o in outcomes] == ["confirmed", "confirmed", "failed", "failed"]
    assert "Availability" in outcomes[2].reason and outcomes[3].reason == "bad line"


@pytest.mark.parametrize("status", ["error", "canceled"])
def test_decode_poll_failed_batch_retries(provider, status):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    [o] = provider.decode_poll(job, response(200, {"data": [{"handle": "H1", "status": status}]}))
    assert o.status == "retry"


def test_decode_poll_throttled_status_call_polls_again(provider):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    assert provider.decode_poll(job, graph_error(80009, "too many status calls", True)) is None
    assert provider.decode_poll(job, response(500, b"")) is None
    with pytest.raises(ConfigError):
        provider.decode_poll(job, graph_error(190))
    [o] = provider.decode_poll(job, graph_error(100, "handle is not valid"))
    assert o.status == "retry"


# -- unit: reading --------------------------------------------------------------------
def test_read_request_and_paging(provider):
    first = provider.read_request(None)
    assert (first.method, first.path, first.write) == ("GET", "/v21.0/1234567890/products", False)
    assert first.params["limit"] == "1000" and "after" not in first.params
    assert "retailer_id" in first.params["fields"].split(",")
    assert provider.read_request("CUR").params["after"] == "CUR"
    page = provider.decode_read(response(200, {
        "data": [{"retailer_id": "r1", "id": "9", **item("a"), "sale_price": ""}],
        "paging": {"cursors": {"before": "B", "after": "A"}, "next": "https://next"}}))
    assert page.items == [("product", "r1", item("a"))] and page.cursor == "A"
    last = provider.decode_read(response(200, {"data": [], "paging": {"cursors": {"after": "A"}}}))
    assert last.items == [] and last.cursor is None


def test_read_prices_in_minor_units():
    assert minor_units(899, "USD") == 899
    assert minor_units("8.99 USD", None) == 899
    assert minor_units("$1,299.00", "USD") == 129900
    assert minor_units("899", "USD") == 899
    assert minor_units("1299 JPY", None) == 1299
    assert product_payload({"price": "8.99 USD", "name": "x"}) == {"price": 899, "name": "x", "currency": "USD"}


# -- contract, against the sandbox ----------------------------------------------------
sandbox = sandbox_fixture(async_delay=0.05, time_scale=0.001, latency=0.001)


@pytest.fixture
def url(sandbox):
    return sandbox.urls["meta_catalog"]


def apply(client, url, provider, ops):
    request = provider.encode(ops)
    outcomes = provider.decode(request, send(client, url, request))
    final = {o.operation.key: o for o in outcomes if o.status != "pending"}
    jobs = {o.job.handle: o.job for o in outcomes if o.status == "pending"}
    for job in jobs.values():
        for outcome in poll_until_done(client, url, provider, job):
            final[outcome.operation.key] = outcome
    return final


def test_sandbox_create_update_delete_and_read_back(sandbox, client, url, provider):
    created = {f"r{i}": item(f"p{i}", sale_price=700, additional_image_urls=["https://x/1.jpg"],
                             category="A > B") for i in range(3)}
    result = apply(client, url, provider, [op("create", k, after=v) for k, v in created.items()])
    assert {k: o.status for k, o in result.items()} == dict.fromkeys(created, "confirmed")
    assert read_all(client, url, provider) == {("product", k): v for k, v in created.items()}

    after = dict(created["r0"], price=999)
    del after["sale_price"]
    result = apply(client, url, provider, [op("update", "r0", before=created["r0"], after=after),
                                           op("delete", "r1", before=created["r1"])])
    assert {k: o.status for k, o in result.items()} == {"r0": "confirmed", "r1": "confirmed"}
    stored = {i["retailer_id"]: i for i in sandbox.catalog("meta_catalog", catalog_id="1234567890")}
    assert set(stored) == {"r0", "r2"}
    assert stored["r0"]["price"] == 999 and "sale_price" not in stored["r0"]
    assert read_all(client, url, provider) == {("product", "r0"): after, ("product", "r2"): created["r2"]}


def test_sandbox_item_errors_come_back_from_the_status_check(sandbox, client, url, provider):
    incomplete = {k: v for k, v in item("x").items() if k != "availability"}
    result = apply(client, url, provider, [
        op("create", "ok", after=item("ok")),
        op("create", "bad", after=incomplete),
        op("update", "ghost", before=item("g"), after=item("g", price=1)),
        op("delete", "gone", before=item("z"))])
    assert {k: o.status for k, o in result.items()} == {
        "ok": "confirmed", "bad": "failed", "ghost": "failed", "gone": "confirmed"}
    assert "Availability" in result["bad"].reason
    assert "does not exist" in result["ghost"].reason
    # deleting what is not there reaches the desired state (a retried delete meets this)
    assert result["gone"].reason.startswith("already absent: ")
    assert [i["retailer_id"] for i in sandbox.catalog("meta_catalog", catalog_id="1234567890")] == ["ok"]


def test_sandbox_bad_token(client, url):
    provider = MetaCatalog(SETTINGS, {"access_token": "nope"})
    request = provider.encode([op("create", "r1", after=item("a"))])
    with pytest.raises(ConfigError, match="meta_catalog"):
        provider.decode(request, send(client, url, request))
    with pytest.raises(ConfigError):
        provider.decode_read(send(client, url, provider.read_request(None)))


def test_sandbox_refuses_more_than_5000_requests(sandbox, client, url, provider):
    ops = [op("delete", f"r{i}", before=item("x")) for i in range(5001)]
    request = provider.encode(ops)  # built by hand, past the documented limit
    outcomes = provider.decode(request, send(client, url, request))
    assert {o.status for o in outcomes} == {"failed"}
    assert "5000" in outcomes[0].reason
    assert "5001 requests" in sandbox.violations[0]["violation"]
    sandbox.reset()


def test_sandbox_rate_window_answers_80014(sandbox, client, url, provider):
    request = provider.encode([op("delete", "nothing", before=item("x"))])
    statuses = [provider.decode(request, send(client, url, request))[0] for _ in range(101)]
    assert [o.status for o in statuses[:100]] == ["pending"] * 100
    assert (statuses[100].status, statuses[100].rate_limited) == ("retry", True)
    assert "80014" in statuses[100].reason
    assert "calls in" in sandbox.violations[0]["violation"]
    sandbox.reset()


def test_sandbox_read_pages_through_a_large_catalog(sandbox, client, url, provider):
    ops = [op("create", f"r{i:05d}", after=item(f"p{i}")) for i in range(2500)]
    result = apply(client, url, provider, ops)
    assert {o.status for o in result.values()} == {"confirmed"}
    read = read_all(client, url, provider)
    assert len(read) == 2500 and read[("product", "r01234")] == item("p1234")
    reads = [e for e in sandbox.log if e["path"].endswith("/products")]
    assert len(reads) == 3
