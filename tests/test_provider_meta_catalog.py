"""meta_catalog: encode/decode on documented shapes, and contract tests against the sandbox."""
from __future__ import annotations

import re

import httpx
import orjson
import pytest

from reconciler.apply.http import Failed
from reconciler.errors import ConfigError, UnexpectedAnswer
from reconciler.providers import Job, ReadError, get_provider
from reconciler.providers.meta_catalog.prices import PriceError, minor_units
from reconciler.providers.meta_catalog.reads import product_payload
from conftest import sandbox_fixture
from test_provider_common import (  # noqa: F401 (client is a fixture)
    client,
    CREDENTIALS, assert_no_secret, op, poll_until_done, read_all, response, send, through_engine,
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
    ops = [op("create", "r1", after=item("a")), op("create", "r2", after=item("b")), op("create", "r3", after=item("c"))]
    request = provider.encode(ops)
    body = {"handles": ["AczwaOW7j"], "validation_status": [
        {"retailer_id": "r2", "errors": [{"message": "Invalid data"}], "warnings": []}]}
    first, second, third = provider.decode(request, response(200, body))
    # the job keeps the lines its operations had in the call: the status names lines
    assert first.status == "pending" and first.job == Job("AczwaOW7j", (ops[0], ops[2]), lines=(0, 2))
    assert third.job is first.job
    assert second.status == "failed" and second.reason == "Invalid data"


def test_decode_no_handles_means_nothing_ingested(provider):
    ops = [op("create", "r1", after=item("a"))]
    [outcome] = provider.decode(provider.encode(ops), response(200, {"handles": [], "validation_status": []}))
    assert outcome.status == "retry"


# What reaches decode: a Graph error on an answer the engine's HTTP rules let through
# (a 403, 429 or 5xx never gets here, but for a 500 carrying code 1).
@pytest.mark.parametrize("code,transient,status,expected,limited", [
    (80014, True, 400, "retry", True),
    (4, False, 400, "retry", True),
    (2, True, 400, "retry", False),
    (100, False, 400, "failed", False),
    (1, False, 500, "split", False),
    (1, True, 400, "split", False),
])
def test_decode_graph_errors(provider, code, transient, status, expected, limited):
    request = provider.encode([op("create", "r1", after=item("a")), op("create", "r2", after=item("b"))])
    outcome, _ = through_engine(provider, request, graph_error(code, "(#%d) boom" % code, transient, status))
    assert (outcome.status, outcome.rate_limited) == (expected, limited)
    assert "boom" in outcome.reason


def test_too_much_data_splits_down_to_one_item_which_fails(provider):
    """Code 1 "Please reduce the amount of data you're asking for" is the /batch answer to a
    body too large: the request is split, and an item too large alone fails."""
    answer = graph_error(1, "Please reduce the amount of data you're asking for, then retry your request", True, 500)
    [outcome] = through_engine(provider, provider.encode([op("create", "r1", after=item("a"))]), answer)
    assert outcome.status == "failed" and "reduce the amount of data" in outcome.reason


def test_a_plain_500_is_the_engines(provider):
    request = provider.encode([op("create", "r1", after=item("a"))])
    assert isinstance(through_engine(provider, request, graph_error(2, "unexpected", True, 500)), Failed)
    assert isinstance(through_engine(provider, request, response(500, b"<html>oops</html>")), Failed)


@pytest.mark.parametrize("code,words", [(190, "refused the target's access token"), (200, "lacks a permission"),
                                        (10, "lacks a permission"), (294, "lacks a permission")])
def test_decode_token_and_permission_codes_stop_the_target(provider, code, words):
    request = provider.encode([op("create", "r1", after=item("a"))])
    job = Job("H1", request.operations)
    for decode in (lambda answer: provider.decode(request, answer), lambda answer: provider.decode_poll(job, answer),
                   provider.decode_read):
        with pytest.raises(ConfigError, match="meta_catalog") as info:
            decode(graph_error(code, "Permissions error"))
        assert words in str(info.value) and f"code {code}" in str(info.value)
        assert "sandbox-token" not in str(info.value)


@pytest.mark.parametrize("body", [b"<html><body>Service Unavailable</body></html>", b'{"handles": "H1"}', b"{}",
                                  b"[1,2,3]", b'{"handles": ["H1"'])
def test_decode_200_not_in_the_documented_shape_is_sent_again(provider, body):
    request = provider.encode([op("create", "r1", after=item("a"))])
    failed = through_engine(provider, request, response(200, body))
    assert isinstance(failed, Failed) and failed.reason.startswith("unexpected answer from meta_catalog (HTTP 200): ")


# -- unit: polling --------------------------------------------------------------------
def test_poll_request(provider):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    request = provider.poll_request(job)
    assert (request.method, request.path, request.write) == (
        "GET", "/v21.0/1234567890/check_batch_request_status", False)
    assert request.params == {"handle": "H1", "load_ids_of_invalid_requests": "true",
                              "fields": "handle,status,errors,errors_total_count,warnings,warnings_total_count,"
                                        "ids_of_invalid_requests"}
    assert request.headers["Authorization"] == "Bearer sandbox-token"


@pytest.mark.parametrize("status", ["scheduled", "dispatched", "started"])
def test_decode_poll_not_final(provider, status):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    assert provider.decode_poll(job, response(200, {"data": [{"handle": "H1", "status": status}]})) is None


def finished(errors, total=None, ids=None, **extra):
    entry = {"handle": "H1", "status": "finished", "errors": errors,
             "errors_total_count": len(errors) if total is None else total, **extra}
    if ids is not None:
        entry["ids_of_invalid_requests"] = ids
    return response(200, {"data": [entry]})


def test_decode_poll_finished_errors_by_id_and_by_line(provider):
    ops = tuple(op("create", f"r{i}", after=item(str(i))) for i in range(4))
    job = Job("H1", ops, lines=(0, 1, 2, 3))
    body = finished([
        {"line": 0, "id": "r2", "message": "You cannot create a EntProductItem without required field Availability"},
        {"line": 3, "message": "bad line"}], ids=["r2", "r3"])
    outcomes = provider.decode_poll(job, body)
    assert [o.status for o in outcomes] == ["confirmed", "confirmed", "failed", "failed"]
    assert "Availability" in outcomes[2].reason and outcomes[3].reason == "bad line"


def test_decode_poll_lines_are_those_of_the_call(provider):
    """A line is the position in the call's requests: with an item refused at validation,
    the job's operations are not the call's lines."""
    ops = tuple(op("create", f"r{i}", after=item(str(i))) for i in range(4))
    job = Job("H1", (ops[0], ops[2], ops[3]), lines=(0, 2, 3))
    outcomes = provider.decode_poll(job, finished([{"line": 2, "message": "bad line"}], ids=["r2"]))
    assert [(o.operation.key, o.status) for o in outcomes] == [("r0", "confirmed"), ("r2", "failed"), ("r3", "confirmed")]
    # a job read back from the state does not know its lines: such an error names no item
    unknown = provider.decode_poll(Job("H1", job.operations), finished([{"line": 2, "message": "bad line"}], ids=[]))
    assert {o.status for o in unknown} == {"failed"}
    assert unknown[0].reason.startswith("not confirmed: meta_catalog counts 1 errors in batch H1 and names the items of 0")


def test_decode_poll_the_errors_are_a_sample_and_the_ids_complete(provider):
    ops = tuple(op("create", f"r{i:02d}", after=item(str(i))) for i in range(40))
    invalid = [f"r{i:02d}" for i in range(0, 40, 2)]  # 20 invalid lines, 10 in the sample
    sample = [{"line": int(rid[1:]), "id": rid, "message": f"{rid} is invalid"} for rid in invalid[:10]]
    outcomes = provider.decode_poll(Job("H1", ops, lines=tuple(range(40))), finished(sample, 20, invalid))
    assert [o.operation.key for o in outcomes if o.status == "failed"] == invalid
    assert outcomes[0].reason == "r00 is invalid"
    assert outcomes[30].reason == ("refused by meta_catalog (in ids_of_invalid_requests; its error is not in the "
                                   "sample of errors)")
    assert all(o.status == "confirmed" for o in outcomes if o.operation.key not in invalid)
    # without the ids, the 10 unnamed failures could be any of the others: none is confirmed
    outcomes = provider.decode_poll(Job("H1", ops, lines=tuple(range(40))), finished(sample, 20))
    assert {o.status for o in outcomes} == {"failed"}
    assert outcomes[1].reason == ("not confirmed: meta_catalog counts 20 errors in batch H1 and names the items of 10 "
                                  "(ids_of_invalid_requests was not returned); this one may be among the others")


@pytest.mark.parametrize("status", ["error", "canceled"])
def test_decode_poll_failed_batch_retries(provider, status):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    [o] = provider.decode_poll(job, response(200, {"data": [{"handle": "H1", "status": status}]}))
    assert o.status == "retry"


@pytest.mark.parametrize("body", [b"<html>proxy</html>", {"data": []}, {"data": [{"handle": "H1"}]},
                                  {"data": [{"handle": "H1", "status": "finished"}]},
                                  {"data": [{"handle": "H1", "status": "finished", "errors_total_count": "0"}]},
                                  {"data": [{"handle": "H1", "status": "finished", "errors_total_count": True}]},
                                  {"data": [{"handle": "H1", "status": "finished", "errors_total_count": -1}]},
                                  {"data": [{"handle": "H1", "status": "paused"}]}])
def test_decode_poll_answers_not_in_the_documented_shape_ask_again(provider, body):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    with pytest.raises(UnexpectedAnswer, match="meta_catalog"):
        provider.decode_poll(job, response(200, body))


def test_decode_poll_throttled_status_call_polls_again(provider):
    job = Job("H1", (op("create", "r1", after=item("a")),))
    assert provider.decode_poll(job, graph_error(80009, "too many status calls", True)) is None
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
    assert page.items == [("product", "r1", item("a"))] and page.cursor == "A" and page.incomplete is None
    # Meta calls its own pagination incomplete: the last page says so, and drift reads
    # the items it knows of that were not listed one by one
    last = provider.decode_read(response(200, {"data": [], "paging": {"cursors": {"after": "A"}}}))
    assert last.items == [] and last.cursor is None
    assert last.incomplete == "Meta documents its product listing as incomplete (its pages may miss or repeat products)"
    with pytest.raises(UnexpectedAnswer, match="unexpected answer"):
        provider.decode_read(response(200, b"<html></html>"))


def test_read_one_item_by_a_filter(provider):
    request = provider.read_item_request("product", 'S"1')
    assert (request.method, request.path, request.write) == ("GET", "/v21.0/1234567890/products", False)
    assert orjson.loads(request.params["filter"]) == {"retailer_id": {"eq": 'S"1'}}
    url = httpx.Request("GET", "http://x/v21.0/1234567890/products", params=request.params)
    found = {"data": [{"retailer_id": 'S"1', **item("a", price="$8.99")}]}
    assert provider.decode_read_item(response(200, found, request=url)) == ("product", 'S"1', item("a"))
    assert provider.decode_read_item(response(200, {"data": []}, request=url)) is None


@pytest.mark.parametrize("text,currency,minor", [
    ("$1,299.00", "USD", 129900), ("R$ 1.299,90", "BRL", 129990), ("¥1,299", "JPY", 1299),
    ("1.299,00 €", "EUR", 129900), ("12.99 USD", "USD", 1299), ("12.99 USD", None, 1299),
    ("1 299,00 €", "EUR", 129900), ("1\u202f299,00\u00a0€", "EUR", 129900), ("CHF 1'299.50", "CHF", 129950),
    ("₹1,29,999.00", "INR", 12999900), ("$0.99", "USD", 99), ("$1,299", "USD", 129900), ("1.299", "EUR", 129900),
    ("1,299.500 KWD", "KWD", 1299500), ("12,5", "EUR", 1250), ("Rs. 1,299.00", "INR", 129900),
    ("1.234.567,89 €", "EUR", 123456789), ("£12", "GBP", 1200), ("₩12,000", "KRW", 12000),
    ("899", "USD", 899), (899, "USD", 899),  # minor units, as written
])
def test_read_prices_in_minor_units(text, currency, minor):
    assert minor_units(text, currency) == minor


@pytest.mark.parametrize("text,currency,why", [
    ("KWD 1.299", "KWD", "may be a thousands separator or the decimal mark of KWD"),
    ("$.99", "USD", "not one amount"), ("¥12.5", "JPY", "has 1 decimal(s), and JPY has 0"),
    ("12.9999 USD", "USD", "has 4 decimal(s)"), ("-$5.00", "USD", "negative"), ("$5 - $9", "USD", "not one amount"),
    ("12.99 EUR", "USD", "names EUR, but the item's currency is USD"), ("Free", "USD", "no amount"),
    ("1,2,3", "USD", "not grouped in thousands"), ("12 99", "USD", "not grouped in thousands"),
    ("1,299.00.00", "USD", "no decimal mark"), ("$12.99", None, "no currency"), (12.99, "USD", "not a price"),
    (True, "USD", "not a price"), (-5, "USD", "not a price"), ("١٢٣", "USD", "not one amount"),
])
def test_an_unreadable_price_is_an_error_never_a_guess(text, currency, why):
    with pytest.raises(PriceError, match=re.escape(why)):
        minor_units(text, currency)


def test_an_unreadable_price_is_a_read_error_naming_the_item(provider):
    assert product_payload({"price": "$8.99", "currency": "USD", "name": "x"}) == {
        "price": 899, "currency": "USD", "name": "x"}
    body = {"data": [{"retailer_id": "SKU-7", **item("a", price="8,999.9.9")}]}
    with pytest.raises(ReadError, match=r"meta_catalog: item SKU-7: its price cannot be read: '8,999.9.9'"):
        provider.decode_read(response(200, body))


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
