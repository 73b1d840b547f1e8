"""A plan on disk: changes spilled as found, read back in plan order a change at a
time, saved and shown from the file without loading it whole."""
from __future__ import annotations

import random

import orjson
import pytest

from conftest import product, target
from reconciler.manifest.loader import load
from reconciler.plan import build_plan
from reconciler.plan import file as plan_file
from reconciler.plan import spill as spill_module
from reconciler.plan.render import render
from reconciler.plan.spill import Spill, sort_key
from reconciler.state import State
from test_plan import record_all


def test_runs_merge_into_key_order_and_equal_keys_keep_their_order(monkeypatch):
    rng = random.Random(3)
    keys = [(rng.choice(["a", "b", "ü", "a\x00", "\U0001f600", "ab"]), rng.randrange(3), rng.choice(["p", "i"]))
            for _ in range(400)]
    spill = Spill(budget=700)  # a run every few entries
    for number, (sku, rank, record) in enumerate(keys):
        spill.add("s", sort_key(sku, rank, record), f"{number}".encode())
    assert len(spill.runs["s"]) > 10
    got = [int(data) for data in spill.read(["s"])]
    assert got == sorted(range(400), key=lambda n: keys[n])  # sorted() is stable too
    assert [int(d) for d in spill.read(["s"])] == got  # read again: same


def test_sorted_input_is_one_run_read_sequentially():
    spill = Spill(budget=100)
    for number in range(200):
        spill.add("s", sort_key(f"SKU-{number:04d}", 0, "p"), b"x" * 50)
    spill.flush()
    assert len(spill.runs["s"]) == 1 and len(spill.runs["s"][0][0]) > 50


def test_a_plan_larger_than_its_buffer_equals_one_made_in_memory(ws, monkeypatch):
    skus = [f"P{i:03d}" for i in range(120)]
    random.Random(5).shuffle(skus)
    ws.write("t.yaml", {"targets": {"vtex": target("vtex_ads"), "meta": target("meta_catalog")}})
    ws.write("p.jsonl", [product(sku) for sku in skus])
    state = State(ws.root / "state.db")
    big = build_plan(load(ws.manifests), state, cache=False)
    monkeypatch.setattr(spill_module, "BUDGET", 2000)
    small = build_plan(load(ws.manifests), state, cache=False)
    assert small.to_json() == big.to_json()
    order = [(c.sku, c.record) for c in small.targets["vtex"].changes]
    assert order == [(sku, record) for sku in sorted(skus) for record in ("product", "inventory")]
    record_all(state, small)
    ws.write("p.jsonl", [product(sku, price="11.00") for sku in skus[:100]])
    plan = build_plan(load(ws.manifests), state, cache=False, allow_mass_delete=True)
    assert plan.targets["meta"].summary == {"create": 0, "update": 100, "delete": 20, "unchanged": 0}
    deletions = [c.sku for c in plan.targets["meta"].changes.deletions()]
    assert deletions == sorted(skus[100:]) == [c.sku for c in plan.targets["meta"].changes if c.action == "delete"]


def test_a_saved_plan_is_read_back_a_target_at_a_time(ws, tmp_path):
    ws.write("t.yaml", {"targets": {"vtex": target("vtex_ads"), "meta": target("meta_catalog"),
                                    "none": target("voucherify", select={"tags": ["nothing"]})}})
    ws.write("p.jsonl", [product(f"P{i}") for i in range(5)])
    plan = build_plan(load(ws.manifests), State(ws.root / "state.db"), cache=False)
    path = tmp_path / "plan.out"
    plan_file.save(plan, path)
    loaded = plan_file.load(path)
    assert loaded.to_json() == plan.to_json()
    assert render(loaded, "text") == render(plan, "text") and render(loaded, "json") == render(plan, "json")
    lines = path.read_bytes().splitlines()
    assert orjson.loads(lines[1]) == {"target": "vtex", **plan.targets["vtex"].changes[0].to_json()}

    damaged = tmp_path / "damaged.out"
    damaged.write_bytes(b"\n".join([*lines[:4], b'{"target": "meta", "sku": 1}', *lines[5:]]) + b"\n")
    with pytest.raises(Exception, match=r"damaged.out is not a reconciler plan file: line 5"):
        list(plan_file.load(damaged).targets["vtex"].changes)
    short = tmp_path / "short.out"
    short.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    with pytest.raises(ValueError, match="fewer than its summary counts"):
        plan_file.load(short)


def test_show_of_a_damaged_plan_is_one_message(ws, tmp_path):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A"), product("B")]})
    out = tmp_path / "plan.out"
    assert ws.run("plan", "-o", str(out)).exit_code == 0
    lines = out.read_bytes().splitlines()
    out.write_bytes(b"\n".join([lines[0], lines[1], b"{not json"]) + b"\n")
    result = ws.run("show", str(out))
    assert result.exit_code == 1
    assert "is not a reconciler plan file: line 3: invalid JSON" in result.output
    assert "Traceback" not in result.output
