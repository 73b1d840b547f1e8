"""Fuzzing the manifest readers (issue 12): random bytes, random structures and random
damage to a valid file, in each format, through ``validate`` and ``plan``. Each run ends
in success or one clear error (exit 1, ``Error: …``), never a traceback, within a
memory bound. Few examples per format, so that the suite stays fast; hypothesis keeps
the failing ones it finds in its database and tries them first next time."""
from __future__ import annotations

import csv
import io
import json
import tempfile
import tracemalloc
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ANY_PRODUCT_TARGET, Workspace, product

FORMATS = ("yaml", "json", "jsonl", "csv")
MEMORY_BOUND = 64 * 2**20
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text with the characters that matter: controls, format characters, separators,
# surrogates are left out (no encoder writes them), quotes and markup.
text = st.text(st.characters(codec="utf-8") | st.sampled_from("\x00\n\r\t\x1b\u202e\u2028\ufeff\"'`|,:#&*!%@"),
               max_size=20)
edges = st.sampled_from([2**53, 2**63, 2**64, -(2**63) - 1, 10**30])
numbers = edges | st.integers(-(10**40), 10**40) | st.floats(allow_nan=True, allow_infinity=True) | st.decimals(
    allow_nan=False, allow_infinity=False).map(str)
scalars = st.none() | st.booleans() | numbers | text
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                      max_leaves=12)


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Valid values three times in four: a product must get past the model to meet the
    mapping, the digests and the plan."""
    return st.one_of(valid, valid, valid, values)


SKU = mostly(st.sampled_from(["A-1", "B-2", "C-3"]))
FIELDS = {
    "name": mostly(text), "description": mostly(text),
    "price": mostly(st.decimals(0, 1000, places=2).map(str)), "sale_price": mostly(st.integers(0, 10)),
    "currency": mostly(st.sampled_from(["USD", "JPY", "BHD"])), "stock": mostly(st.integers(0, 100)),
    "metadata": mostly(st.dictionaries(text, scalars, max_size=3)),
    "attributes": st.dictionaries(text, values | edges, max_size=3),
    "overrides": mostly(st.dictionaries(st.sampled_from(["shop", "elsewhere"]), st.dictionaries(text, values))),
    "tags": mostly(st.lists(text, max_size=3)), "gtin": mostly(st.just("4006381333931")),
    "status": mostly(st.sampled_from(["active", "disabled"])),
}
products = st.lists(st.fixed_dictionaries({"sku": SKU}, optional=FIELDS) | st.dictionaries(text, values, max_size=4),
                    max_size=4)


def serialise(fmt: str, items: list[dict]) -> bytes:
    """Products in ``fmt``; what an encoder refuses (NaN for JSON) still goes in as it
    writes it: the reader must cope."""
    if fmt == "yaml":
        return yaml.safe_dump({"products": items}, allow_unicode=True).encode("utf-8", "surrogatepass")
    if fmt == "json":
        return json.dumps({"products": items}, default=str).encode("utf-8", "surrogatepass")
    if fmt == "jsonl":
        return b"".join(json.dumps(item, default=str).encode("utf-8", "surrogatepass") + b"\n" for item in items)
    out = io.StringIO()
    writer = csv.writer(out)
    columns = sorted({key for item in items for key in item}) or ["sku"]
    writer.writerow(columns)
    for item in items:
        writer.writerow(["" if item.get(c) is None else str(item.get(c)) for c in columns])
    return out.getvalue().encode("utf-8", "surrogatepass")


def valid_file(fmt: str) -> bytes:
    return serialise(fmt, [product(f"V-{i}", metadata={"k": "v"}) for i in range(3)])


def run_both(fmt: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws")
        ws.write("00-targets.yaml", ANY_PRODUCT_TARGET)
        (ws.manifests / f"fuzz.{fmt}").write_bytes(data)
        tracemalloc.start()
        try:
            results = [ws.run(command) for command in ("validate", "plan")]  # a traceback raises here
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < MEMORY_BOUND
    for result in results:
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 1:
            assert result.output.startswith("Error: "), result.output
    assert results[0].exit_code == results[1].exit_code  # validate and plan agree


@FUZZ
@given(fmt=st.sampled_from(FORMATS), data=st.binary(max_size=600))
def test_random_bytes(fmt, data):
    run_both(fmt, data)


@FUZZ
@given(fmt=st.sampled_from(FORMATS), items=products)
def test_random_structures(fmt, items):
    run_both(fmt, serialise(fmt, items))


@FUZZ
@given(fmt=st.sampled_from(FORMATS), free=st.fixed_dictionaries({}, optional={
    "name": text, "attributes": st.dictionaries(text, values | edges, max_size=3),
    "metadata": st.dictionaries(text, scalars | edges, max_size=3),
    "overrides": st.fixed_dictionaries({"shop": st.dictionaries(text, values | edges, max_size=3)})}))
def test_random_values_in_valid_products(fmt, free):
    """Free-form places (names, attributes, metadata, overrides) of products that are
    otherwise valid: the values reach the mapping, the digests and the plan."""
    run_both(fmt, serialise(fmt, [product("A-1", **free), product("B-2")]))


TARGET_FIELDS = ["base_url", "auth", "settings", "select", "limits", "max_delete_fraction", "ignore_fields", "name"]


@FUZZ
@given(fmt=st.sampled_from(["yaml", "json"]), provider=st.sampled_from(
    ["vtex_ads", "meta_catalog", "bloomreach", "venddor", "voucherify"]) | text,
    fields=st.dictionaries(st.sampled_from(TARGET_FIELDS) | text, values, max_size=4), name=text)
def test_random_targets(fmt, provider, fields, name):
    document = {"targets": {name: {"provider": provider, **fields}}, "products": [product("A-1")]}
    data = yaml.safe_dump(document, allow_unicode=True) if fmt == "yaml" else json.dumps(document, default=str)
    run_both(fmt, data.encode("utf-8", "surrogatepass"))


@FUZZ
@given(fmt=st.sampled_from(FORMATS), cuts=st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=8)),
                                                    min_size=1, max_size=4))
def test_damaged_valid_files(fmt, cuts):
    data = valid_file(fmt)
    for position, inserted in cuts:
        at = position % (len(data) + 1)
        data = data[:at] + inserted + data[at + len(inserted) // 2:]
    run_both(fmt, data)
