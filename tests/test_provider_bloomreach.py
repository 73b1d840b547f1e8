"""bloomreach: encode/decode on documented shapes, and contract tests against the sandbox."""
from __future__ import annotations

import time

import httpx
import orjson
import pytest

from reconciler.errors import ConfigError
from reconciler.providers import ReadError, get_provider
from test_provider_common import client  # noqa: F401 (a fixture)
from test_provider_common import CREDENTIALS, assert_no_secret, op, read_all, response, send, through_engine
from reconciler.apply.http import Failed, classify
from conftest import moved_clock, queued_work_done, sandbox_fixture

Bloomreach = get_provider("bloomreach")
BASE = "/data/v2/projects/proj/catalogs/cat/items"


def props(title: str, **extra) -> dict:
    payload = {"title": title, "url": f"https://x/{title}", "price": 8.99, "brand": "Acme",
               "availability": "in stock", "stock": 3}
    payload.update(extra)
    return payload


def make(mode: str | None = None, credentials=None):
    settings = {"project_id": "proj", "catalog_id": "cat"}
    if mode:
        settings["update_mode"] = mode
    return Bloomreach(settings, credentials or CREDENTIALS["bloomreach"])


# -- unit: encode ---------------------------------------------------------------------
def test_partial_mode_is_the_default_and_sends_only_changes():
    provider = make()
    ops = [op("create", "a", after=props("a")),
           op("update", "b", before=props("b", color="red"), after=props("b", price=9.5))]
    request = provider.encode(ops)
    assert (request.method, request.path, request.endpoint) == ("POST", BASE + "/partial-update", "partial-update")
    assert orjson.loads(request.body) == [
        {"item_id": "a", "properties": props("a"), "upsert": True},
        {"item_id": "b", "properties": {"price": 9.5}, "upsert": True}]  # no null: it has no documented meaning
    assert request.headers["Authorization"] == "Basic c2FuZGJveC1rZXk6c2FuZGJveC1zZWNyZXQ="
    assert request.headers["Content-Type"] == "application/json"
    assert_no_secret(provider, request)


def test_full_mode_replaces_the_whole_item():
    provider = make("full")
    ops = [op("update", "b", before=props("b", color="red"), after=props("b", price=9.5))]
    request = provider.encode(ops)
    assert (request.method, request.path) == ("PUT", BASE)
    assert orjson.loads(request.body) == [{"item_id": "b", "properties": props("b", price=9.5)}]


def test_deletes_are_a_separate_group_and_request():
    provider = make()
    delete, create = op("delete", "a", before=props("a")), op("create", "b", after=props("b"))
    assert provider.group_key(delete) != provider.group_key(create)
    request = provider.encode([delete, op("delete", "c", before=props("c"))])
    assert (request.method, request.path, request.body) == ("DELETE", BASE + "/bulk-delete", b'["a","c"]')
    with pytest.raises(ValueError):
        provider.encode([delete, create])


def test_bad_update_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="update_mode"):
        make("merge")


# -- unit: decode ---------------------------------------------------------------------
def test_decode_per_item_results_by_position_string_and_boolean_forms():
    provider = make()
    ops = [op("create", k, after=props(k)) for k in "abcd"]
    body = [{"success": "True", "queued": "True"},
            {"success": "False", "queued": "False",
             "errors": {"properties": ["Fields ['price_discounted'] are not properly defined."]}},
            {"success": True, "queued": True},
            {"success": False, "queued": False, "errors": {"_global": ["Item d does not exist."]}}]
    outcomes = provider.decode(provider.encode(ops), response(200, body))
    assert [o.status for o in outcomes] == ["accepted", "failed", "accepted", "failed"]
    assert outcomes[1].reason == "properties: Fields ['price_discounted'] are not properly defined."
    assert outcomes[3].reason == "Item d does not exist."


def test_decode_a_result_list_of_another_length_is_no_success():
    # the documented answer has one result per item, in order: a shorter list cannot be matched
    provider = make()
    request = provider.encode([op("create", k, after=props(k)) for k in "ab"])
    failed = through_engine(provider, request, response(200, [{"success": "True", "queued": "True"}]))
    assert isinstance(failed, Failed) and failed.reason.startswith("unexpected answer from bloomreach (HTTP 200): ")


@pytest.mark.parametrize("message", ["Item parsing error", "Too many items", "Payload size exceeded",
                                     "Invalid JSON", "Payload not a list", "a text no document gives"])
def test_decode_global_400_is_bisected_whatever_it_says(message):
    # the documents list the causes of a global 400 but not its texts: none is told apart
    provider = make()
    ops = [op("create", k, after=props(k)) for k in "ab"]
    answer = response(400, {"errors": {"_global": [message]}, "success": False})
    outcomes = provider.decode(provider.encode(ops), answer)
    assert {o.status for o in outcomes} == {"split"} and message in outcomes[0].reason
    [alone] = provider.decode(provider.encode(ops[:1]), answer)
    assert alone.status == "failed" and message in alone.reason


def test_decode_404_is_a_wrong_catalog():
    provider = make()
    request = provider.encode([op("create", "a", after=props("a"))])
    with pytest.raises(ConfigError, match="catalog_id"):
        provider.decode(request, response(404, {"errors": {"_global": ["not found"]}}))


def read_page(provider, cursor, ids, total):
    request = provider.read_request(cursor)
    url = httpx.Request("GET", "http://test" + request.path, params=dict(request.params))
    data = [{"item_id": i, "properties": {"title": i.upper(), "color": None}} for i in ids]
    return provider.decode_read(response(200, {"success": True, "total": total, "data": data}, request=url))


def test_reads_list_with_count_and_skip_up_to_the_apis_reach():
    provider = make()
    request = provider.read_request(None)
    assert (request.method, request.path, request.write) == ("GET", BASE, False)
    assert request.params == {"count": "1000", "skip": "0", "order": "item_id asc"}  # a stable order
    assert provider.read_request("1000").params == {"count": "1", "skip": "1000", "order": "item_id asc"}  # <= 1001
    page = read_page(provider, None, ["a", "b"], 2)
    assert page.items == [("product", "a", {"title": "A"}), ("product", "b", {"title": "B"})]
    assert page.cursor is None
    ids = [f"i{n:04d}" for n in range(1000)]
    assert read_page(provider, None, ids, 1001).cursor == "1000"
    assert read_page(provider, "1000", ["z"], 1001).cursor is None  # exactly 1001: all listed
    assert read_page(provider, "1000", ["z"], 1001).incomplete is None
    page = read_page(provider, "1000", ["z"], 1002)
    assert page.cursor is None and page.items == [("product", "z", {"title": "Z"})]
    assert page.incomplete == "the catalog has 1,002 items, and the API lists at most 1,001 (count + skip <= 1001)"


def test_read_one_item():
    provider = make()
    request = provider.read_item_request("product", "a b")
    assert (request.method, request.path, request.write) == ("GET", BASE + "/a%20b", False)
    url = httpx.Request("GET", "http://test" + request.path)
    assert provider.decode_read_item(response(200, {"success": True, "data": {
        "item_id": "a b", "properties": {"title": "A", "color": None}}}, request=url)) == ("product", "a b", {"title": "A"})
    missing = {"errors": {"_global": ["The requested URL was not found on the server."]}, "success": False}
    assert provider.decode_read_item(response(404, missing, request=url)) is None
    with pytest.raises(ReadError) as error:
        provider.decode_read_item(response(400, {"success": False}, request=url))
    assert not error.value.transient


# -- contract, against the sandbox ----------------------------------------------------
WINDOW = 0.1  # 10 s × time_scale


sandbox = sandbox_fixture(async_delay=0.05, time_scale=WINDOW / 10, latency=0.001)


@pytest.fixture
def url(sandbox):
    return sandbox.urls["bloomreach"]


def paced_send(client, url, request):
    time.sleep(WINDOW / 4)  # at most 5 requests per window
    return send(client, url, request)


def apply(client, url, provider, ops):
    request = provider.encode(ops)
    return provider.decode(request, paced_send(client, url, request))


def stored(sandbox):
    return {i["item_id"]: i["properties"] for i in sandbox.catalog("bloomreach", catalog_id="cat")}


def test_sandbox_partial_lifecycle(sandbox, client, url):
    provider = make()
    created = {k: props(k, color="red") for k in ("a", "b", "c")}
    outcomes = apply(client, url, provider, [op("create", k, after=v) for k, v in created.items()])
    assert [o.status for o in outcomes] == ["accepted"] * 3
    queued_work_done(sandbox)
    assert stored(sandbox) == created

    after = props("a", price=12)  # color removed, price changed
    outcomes = apply(client, url, provider, [op("update", "a", before=created["a"], after=after)])
    # partial update cannot remove a property: the state is told Bloomreach keeps it
    assert (outcomes[0].status, outcomes[0].kept) == ("accepted", {**after, "color": "red"})
    queued_work_done(sandbox)
    assert stored(sandbox)["a"] == {**after, "color": "red"}
    after = {**after, "color": "red"}

    outcomes = apply(client, url, provider, [op("delete", "b", before=created["b"])])
    assert outcomes[0].status == "accepted"
    queued_work_done(sandbox)
    assert set(stored(sandbox)) == {"a", "c"}
    assert read_all(client, url, provider) == {("product", "a"): after, ("product", "c"): created["c"]}


def test_sandbox_full_mode_replaces(sandbox, client, url):
    provider = make("full")
    apply(client, url, provider, [op("create", "a", after=props("a", color="red"))])
    outcomes = apply(client, url, provider, [op("update", "a", before=props("a", color="red"), after=props("a"))])
    assert outcomes[0].status == "accepted"
    queued_work_done(sandbox)
    assert stored(sandbox) == {"a": props("a")}


def test_sandbox_per_item_errors(sandbox, client, url):
    provider = make()
    outcomes = apply(client, url, provider, [
        op("create", "ok", after=props("ok")),
        op("create", "bad", after=props("bad", warranty="2y")),
        op("create", "nan", after=props("nan", price="cheap"))])
    assert [o.status for o in outcomes] == ["accepted", "failed", "failed"]
    assert "warranty" in outcomes[1].reason and "price" in outcomes[2].reason
    outcomes = apply(client, url, provider, [op("delete", "ghost", before=props("g")),
                                             op("delete", "ok", before=props("ok"))])
    # a delete is queued like a write, whether the item is there or not (status --verify reads it back)
    assert [o.status for o in outcomes] == ["accepted", "accepted"]


def test_sandbox_bad_credentials(client, url):
    provider = make(credentials={"key_id": "sandbox-key", "key_secret": "nope"})
    request = provider.encode([op("create", "a", after=props("a"))])
    with pytest.raises(ConfigError, match="bloomreach.*key_id") as info:
        classify(paced_send(client, url, request), provider)
    assert "nope" not in str(info.value)
    with pytest.raises(ConfigError):
        classify(send(client, url, provider.read_request(None)), provider)


def test_sandbox_refuses_too_many_items(sandbox, client, url):
    provider = make()
    request = provider.encode([op("delete", f"i{i}", before={}) for i in range(5001)])
    outcomes = provider.decode(request, paced_send(client, url, request))
    assert {o.status for o in outcomes} == {"split"} and "Too many items" in outcomes[0].reason
    assert "5001 items" in sandbox.violations[0]["violation"]
    sandbox.reset()


def test_sandbox_refuses_too_many_bytes(sandbox, client, url):
    provider = make()
    big = "x" * 5_100_000
    request = provider.encode([op("create", k, after=props(k, description=big)) for k in "ab"])
    assert len(request.body) > 10_000_000
    outcomes = provider.decode(request, paced_send(client, url, request))
    assert {o.status for o in outcomes} == {"split"} and "Payload size exceeded" in outcomes[0].reason
    assert "bytes" in sandbox.violations[0]["violation"]
    sandbox.reset()


def test_sandbox_rate_window_is_shared_by_the_bulk_endpoints(sandbox, client, url, monkeypatch):
    provider = make()
    clock = moved_clock(sandbox, "bloomreach", monkeypatch)  # the six requests come within a window
    clock.advance(WINDOW)  # the earlier tests' requests left it
    requests = [provider.encode([op("create", f"k{i}", after=props("x"))]) for i in range(3)]
    requests += [provider.encode([op("delete", f"k{i}", before={})]) for i in range(3)]
    answers = [through_engine(provider, r, send(client, url, r)) for r in requests]
    assert [a[0].status for a in answers[:5]] == ["accepted"] * 5
    assert answers[5].rate_limited and answers[5].retry_after is not None  # a 429
    assert "bulk requests" in sandbox.violations[0]["violation"]
    sandbox.reset()


def test_sandbox_reads_1001_items_and_refuses_more(sandbox, client, url):
    provider = make("full")
    items = {f"item{i:05d}": props(f"t{i}") for i in range(1001)}
    outcomes = apply(client, url, provider, [op("create", k, after=v) for k, v in items.items()])
    assert {o.status for o in outcomes} == {"accepted"}
    queued_work_done(sandbox)
    assert read_all(client, url, provider) == {("product", k): v for k, v in items.items()}
    apply(client, url, provider, [op("create", "item99999", after=props("t"))])
    queued_work_done(sandbox)
    last = provider.decode_read(send(client, url, provider.read_request("1000")))
    assert last.incomplete.startswith("the catalog has 1,002 items") and last.items == [("product", "item01000", props("t1000"))]
    assert provider.decode_read_item(send(client, url, provider.read_item_request("product", "item99999"))) == (
        "product", "item99999", props("t"))
    assert provider.decode_read_item(send(client, url, provider.read_item_request("product", "nope"))) is None


def test_capabilities_follow_the_target_update_mode():
    assert Bloomreach.capabilities.update_mode == "partial"
    assert make().capabilities.update_mode == "partial"
    assert make("full").capabilities.update_mode == "full"
    assert Bloomreach.capabilities.update_mode == "partial"
