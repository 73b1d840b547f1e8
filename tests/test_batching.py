"""reconciler.apply.batching: packing operations into requests within every limit."""
from __future__ import annotations

import math
from typing import Sequence

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from reconciler.apply.batching import pack, split
from reconciler.providers import PROVIDERS, Capabilities, Limits, Operation, Outcome, Provider, Request

SETTINGS = {
    "vtex_ads": {}, "venddor": {}, "voucherify": {},
    "meta_catalog": {"catalog_id": "1", "api_version": "v21.0"},
    "bloomreach": {"project_id": "p", "catalog_id": "c"},
}
CREDENTIALS = {"vtex_ads": {"app_id": "a", "api_key": "k"}, "meta_catalog": {"access_token": "t"},
               "bloomreach": {"key_id": "k", "key_secret": "s"}, "venddor": {"username": "u", "password": "p"},
               "voucherify": {"app_id": "a", "app_token": "t"}}


def provider(name: str, **settings) -> Provider:
    return PROVIDERS[name]({**SETTINGS[name], **settings}, CREDENTIALS[name])


def payload(name: str, key: str, record: str = "product", text: str = "x", n: int = 0) -> dict:
    if name == "vtex_ads" and record == "inventory":
        return {"product_sku": key, "price": 1.5 + n, "promotional_price": 0, "is_available": True}
    if name == "vtex_ads":
        return {"product_sku": key, "name": text, "url": "u", "image_url": "i", "categories": ["c"]}
    if name == "meta_catalog":
        return {"name": text, "description": "d", "price": 100 + n, "currency": "USD"}
    if name == "bloomreach":
        return {"title": text, "price": n}
    if name == "venddor":
        return {"product_code": key, "product": text, "price": f"{n},00", "amount": "1", "status": "A"}
    return {"source_id": key, "metadata": {"k": n % 3, "t": text[:0] or "v"}}


def create(name: str, key: str, **kw) -> Operation:
    record = kw.pop("record", "product")
    return Operation("create", record, key, key, None, payload(name, key, record, **kw))


def requests_and_outcomes(items):
    items = list(items)
    return [i for i in items if isinstance(i, Request)], [i for i in items if isinstance(i, Outcome)]


# -- unit -----------------------------------------------------------------------------
def test_item_limit_gives_ceil_n_over_max_requests():
    p = provider("venddor")
    ops = [create("venddor", f"{i:013d}") for i in range(130)]
    reqs, outs = requests_and_outcomes(pack(p, ops, p.limits))
    assert [len(r.operations) for r in reqs] == [60, 60, 10] and outs == []
    assert [o for r in reqs for o in r.operations] == ops  # order kept


def test_lowered_limits_are_used():
    p = provider("venddor")
    ops = [create("venddor", f"{i:013d}") for i in range(10)]
    reqs, _ = requests_and_outcomes(pack(p, ops, p.limits.lowered({"max_items_per_request": 3})))
    assert [len(r.operations) for r in reqs] == [3, 3, 3, 1]


def test_local_deletes_are_applied_without_a_request():
    p = provider("vtex_ads")
    delete = Operation("delete", "product", "a", "a", payload("vtex_ads", "a"), None)
    inv_delete = Operation("delete", "inventory", "a", "a", payload("vtex_ads", "a", "inventory"), None)
    reqs, outs = requests_and_outcomes(pack(p, [delete, inv_delete], p.limits))
    assert [(o.operation, o.status) for o in outs] == [(delete, "confirmed")]
    assert outs[0].reason.startswith("no delete in the API")
    assert [r.operations for r in reqs] == [(inv_delete,)]


def test_groups_never_mix():
    p = provider("vtex_ads")
    ops = [create("vtex_ads", f"s{i}", record=("product", "inventory")[i % 2]) for i in range(10)]
    reqs, _ = requests_and_outcomes(pack(p, ops, p.limits))
    assert sorted(r.path for r in reqs) == ["/product/bulk/inventories", "/product/bulk/products"]
    for r in reqs:
        assert len({p.group_key(o) for o in r.operations}) == 1


def test_byte_limit_fills_greedily_and_exactly():
    p = provider("bloomreach")
    ops = [create("bloomreach", f"k{i:02d}", text="é" * 50) for i in range(40)]
    one = len(p.encode(ops[:1]).body)
    four = len(p.encode(ops[:4]).body)
    reqs, outs = requests_and_outcomes(pack(p, ops, Limits(max_bytes_per_request=four)))
    assert outs == [] and [len(r.operations) for r in reqs] == [4] * 10
    assert all(len(r.body) == four for r in reqs)
    reqs, _ = requests_and_outcomes(pack(p, ops, Limits(max_bytes_per_request=four - 1)))
    assert [len(r.operations) for r in reqs] == [3] * 13 + [1]
    assert one < four


def test_an_item_too_big_alone_is_rejected_and_never_sent():
    p = provider("bloomreach")
    small = [create("bloomreach", f"k{i}") for i in range(3)]
    huge = create("bloomreach", "huge", text="x" * 2000)
    reqs, outs = requests_and_outcomes(pack(p, [small[0], huge, *small[1:]], Limits(max_bytes_per_request=1000)))
    assert [r.operations for r in reqs] == [tuple(small)]
    [outcome] = outs
    size = len(p.encode([huge]).body)
    assert outcome.operation is huge and outcome.status == "failed"
    assert outcome.reason.endswith(f"is {size} bytes, over the limit of 1000 bytes per request")


def test_voucherify_groups_by_change_and_packs_by_bytes():
    p = provider("voucherify")
    ops = [Operation("create", "product", f"id{i:04d}", f"id{i:04d}", None,
                     {"source_id": f"id{i:04d}", "metadata": {"tier": i % 2}}) for i in range(1000)]
    reqs, outs = requests_and_outcomes(pack(p, ops, p.limits))
    assert len(reqs) == 2 and outs == []
    assert {orjson.loads(r.body)["metadata"]["tier"] for r in reqs} == {0, 1}
    reqs, _ = requests_and_outcomes(pack(p, ops, Limits(max_bytes_per_request=1000)))
    assert all(len(r.body) <= 1000 for r in reqs)
    assert sum(len(r.operations) for r in reqs) == 1000


class Opaque(Provider):
    """A provider without ``item_size`` whose body is not additive (a length prefix)."""

    name = "opaque"
    key_field = "id"
    limits = Limits(max_items_per_request=1000, max_bytes_per_request=300)
    capabilities = Capabilities(records=("product",), update_mode="full", delete="-", readable=False,
                                asynchronous=False)
    auth_keys = ()
    default_base_url = "https://x"

    def group_key(self, op):
        return 0

    def encode(self, ops: Sequence[Operation]) -> Request:
        items = [op.key for op in ops]
        # a header whose length grows with the count: sizes are not exactly additive
        body = orjson.dumps({"count": "9" * len(str(len(items))) * len(items), "items": items})
        return Request("POST", "/", tuple(ops), body)


def test_generic_provider_without_item_size_still_never_exceeds():
    p = Opaque({}, {})
    ops = [Operation("create", "product", f"key-{i}", f"key-{i}", None, {}) for i in range(200)]
    reqs, outs = requests_and_outcomes(pack(p, ops, p.limits))
    assert outs == []
    assert all(len(r.body) <= 300 for r in reqs)
    assert [o for r in reqs for o in r.operations] == ops


def test_split_halves():
    p = provider("venddor")
    ops = [create("venddor", f"{i:013d}") for i in range(5)]
    left, right = split(p.encode(ops))
    assert left + right == ops and len(left) == 2
    assert split(p.encode(ops[:1])) == (ops[:1], [])


def test_200k_operations_pack_in_linear_work():
    """Sizes come from each operation once, never from re-encoding a request's prefix:
    the work grows with the operations (how fast is benchmarks' business, not a test's)."""
    p = provider("bloomreach")
    encoded, sized = [], []
    encode, item_size = p.encode, p.item_size
    p.encode = lambda ops: encoded.append(len(ops)) or encode(ops)
    p.item_size = lambda op: sized.append(op) or item_size(op)
    ops = [Operation("create", "product", f"k{i}", f"k{i}", None, {"title": f"t{i}", "price": i})
           for i in range(200_000)]
    reqs, outs = requests_and_outcomes(pack(p, ops, p.limits))
    assert len(reqs) == 40 and not outs
    assert sum(encoded) <= len(ops) + 3  # each request once, plus one and two operations for the frame
    assert len(sized) <= len(ops) + 3


# -- property: never over a limit, every operation exactly once ------------------------
def texts():
    small = st.text(max_size=30)
    big = st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "😀", '"', "\\", "\u2028"]),
                    st.integers(0, 4000))
    return st.one_of(small, small, big)


@st.composite
def operations(draw, name):
    """Up to 20 drawn templates (random texts, some very large, multi-byte), repeated
    under distinct keys into catalogs of up to 600 operations."""
    templates = []
    for _ in range(draw(st.integers(1, 20))):
        record = draw(st.sampled_from(["product", "inventory"])) if name == "vtex_ads" else "product"
        action = draw(st.sampled_from(["create", "update", "delete"]))
        prefix = draw(st.sampled_from(["", "é", "key-", "😀"]))
        texts_ = (draw(texts()), draw(texts()), draw(texts()))
        numbers = (draw(st.integers(0, 5)), draw(st.integers(0, 5)))
        templates.append((record, action, prefix, texts_, numbers))
    ops = []
    for i in range(draw(st.integers(0, 600))):
        record, action, prefix, (t1, t2, t3), (n1, n2) = templates[i % len(templates)]
        key = f"{i:013d}" if name == "venddor" else f"{prefix}{i}"
        after = payload(name, key, record, text=t1, n=n1)
        before = payload(name, key, record, text=t2, n=n2)
        if name == "voucherify":
            after["metadata"]["extra"] = t3
        if action == "create":
            ops.append(Operation("create", record, key, key, None, after))
        elif action == "update":
            ops.append(Operation("update", record, key, key, before, after))
        else:
            ops.append(Operation("delete", record, key, key, before, None))
    return ops


@st.composite
def limits(draw, documented: Limits):
    wanted = {}
    if draw(st.booleans()):
        wanted["max_items_per_request"] = draw(st.integers(1, 70))
    if draw(st.booleans()):
        wanted["max_bytes_per_request"] = draw(st.integers(50, 20_000))
    return documented.lowered(wanted)


@pytest.mark.parametrize("name", list(PROVIDERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_pack_never_exceeds_a_limit_and_loses_nothing(name, data):
    p = provider(name, **({"update_mode": data.draw(st.sampled_from(["full", "partial"]))}
                         if name == "bloomreach" else {}))
    ops = data.draw(operations(name))
    lim = data.draw(limits(p.limits))
    produced = list(pack(p, ops, lim))
    seen = []
    by_group: dict = {}
    for item in produced:
        if isinstance(item, Request):
            assert 1 <= len(item.operations)
            if lim.max_items_per_request is not None:
                assert len(item.operations) <= lim.max_items_per_request
            if lim.max_bytes_per_request is not None:
                assert len(item.body) <= lim.max_bytes_per_request
            keys = {p.group_key(o) for o in item.operations}
            assert len(keys) == 1
            by_group.setdefault(keys.pop(), []).append(item)
            seen.extend(item.operations)
        else:
            assert item.status in ("confirmed", "failed")
            if item.status == "failed":
                assert len(p.encode([item.operation]).body) > lim.max_bytes_per_request
                assert "over the limit of" in item.reason
            else:
                assert item.operation.action == "delete"
                assert item.operation.record in p.capabilities.local_deletes
            seen.append(item.operation)
    assert sorted(map(id, seen)) == sorted(map(id, ops))
    assert len(seen) == len(ops)
    # greedy fill: a request could not have taken the first operation of the next one
    for requests in by_group.values():
        for current, following in zip(requests, requests[1:]):
            bigger = list(current.operations) + [following.operations[0]]
            full = lim.max_items_per_request is not None and len(current.operations) >= lim.max_items_per_request
            assert full or (lim.max_bytes_per_request is not None
                            and len(p.encode(bigger).body) > lim.max_bytes_per_request)
    if lim.max_bytes_per_request is None and lim.max_items_per_request:
        for group, requests in by_group.items():
            n = sum(len(r.operations) for r in requests)
            assert len(requests) == math.ceil(n / lim.max_items_per_request)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_packing_streams_holding_one_request_per_group(name):
    """A first load is read from the plan a change at a time; the packer must not hold
    a target's every operation (a million products would need gigabytes)."""
    p = provider(name)
    limits = Limits(max_items_per_request=7, max_bytes_per_request=2_000 if name != "vtex_ads" else None)
    records = ("product", "inventory") if name == "vtex_ads" else ("product",)
    ops = [create(name, f"{i:013d}", record=record, n=i) for i in range(300) for record in records]
    pulled = 0

    def read():
        nonlocal pulled
        for op in ops:
            pulled += 1
            yield op
    groups, sent = {p.group_key(op) for op in ops}, 0
    for item in pack(p, read(), limits):
        sent += len(item.operations) if isinstance(item, Request) else 1
        assert pulled - sent <= len(groups) * 7, (pulled, sent)
    assert sent == len(ops)
