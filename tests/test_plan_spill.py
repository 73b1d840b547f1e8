"""A plan on disk: changes spilled as found, read back in plan order a change at a
time, saved and shown from the file without loading it whole."""
from __future__ import annotations

import hashlib
import random

import orjson
import pytest

from conftest import product, target
from reconciler.manifest.loader import load
from reconciler.errors import PlanFileError
from reconciler.plan import build_plan
from reconciler.plan import file as plan_file
from reconciler.plan import spill as spill_module
from reconciler.plan.model import ListedChanges
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
    for changes in (plan.targets["meta"].changes, ListedChanges(plan.targets["meta"].changes)):
        # apply reads operations straight from the lines: the same as each change's
        assert list(changes.operations()) == [c.operation() for c in plan.targets["meta"].changes]


def test_a_saved_plan_is_read_back_a_target_at_a_time(ws, tmp_path):
    ws.write("t.yaml", {"targets": {"vtex": target("vtex_ads"), "meta": target("meta_catalog"),
                                    "none": target("voucherify", select={"tags": ["nothing"]})}})
    ws.write("p.jsonl", [product(f"P{i}") for i in range(5)])
    plan = build_plan(load(ws.manifests), State(ws.root / "state.db"), cache=False)
    path = tmp_path / "plan.out"
    plan_file.save(plan, path)
    loaded = plan_file.load(path)
    assert isinstance(loaded.targets["meta"].changes, plan_file.FileChanges)
    assert list(loaded.targets["vtex"].changes.operations()) == [c.operation() for c in plan.targets["vtex"].changes]
    assert loaded.to_json() == plan.to_json()
    assert render(loaded, "text") == render(plan, "text") and render(loaded, "json") == render(plan, "json")
    lines = path.read_bytes().splitlines()
    assert lines[1] == orjson.dumps({"target": "vtex", **plan.targets["vtex"].changes[0].to_json()})  # as documented
    saved = plan_file.read(path)
    assert saved.starts["meta"][1] == 2 + len(plan.targets["vtex"].changes)  # its first line's number
    assert [n for n, _ in saved.target_changes("meta")] == list(range(12, 17))


def test_a_saved_plan_whose_targets_interleave_is_refused(ws, tmp_path):
    ws.write("t.yaml", {"targets": {"vtex": target("vtex_ads"), "meta": target("meta_catalog")}})
    ws.write("p.jsonl", [product(f"P{i}") for i in range(3)])
    plan = build_plan(load(ws.manifests), State(ws.root / "state.db"), cache=False)
    path = tmp_path / "plan.out"
    plan_file.save(plan, path)
    head, *changes, end = path.read_bytes().splitlines(keepends=True)
    moved = [head, changes[-1], *changes[:-1]]  # a meta line first: vtex's lines are split
    digest = hashlib.blake2b(b"".join(moved), digest_size=32).hexdigest()
    path.write_bytes(b"".join(moved) + orjson.dumps({"end_of_plan": {"changes": len(changes), "blake2b": digest}}) + b"\n")
    with pytest.raises(PlanFileError, match="a change of target meta after those of another target"):
        plan_file.read(path)


def test_show_streams_a_saved_plan(ws, tmp_path):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A"), product("B")]})
    out = tmp_path / "plan.out"
    assert ws.run("plan", "-o", str(out)).exit_code == 0
    shown = ws.run("show", str(out), "--format", "json")
    assert shown.exit_code == 0 and orjson.loads(shown.output) == orjson.loads(ws.run("plan", "--format", "json").output)
