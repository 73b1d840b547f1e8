"""The planner and `reconciler plan` / `show`: actions, diffs, guards, renderings."""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import product, target
from reconciler.manifest.loader import load
from reconciler.plan import build_plan
from reconciler.plan.model import Plan
from reconciler.plan.render import MARKDOWN_LIMIT, json_chunks, render_markdown
from reconciler.providers.base import Outcome
from reconciler.state import State

GOLDEN = Path(__file__).parent / "golden"


def record_all(state: State, plan: Plan) -> None:
    """Record every change of a plan as confirmed, as a successful apply would."""
    apply_id = state.begin_apply(list(plan.targets))
    for name, target_plan in plan.targets.items():
        state.record(name, [Outcome(c.operation(), "confirmed") for c in target_plan.changes], apply_id)


def plan_of(ws, state_path=None, **kwargs) -> Plan:
    state = State(state_path or ws.root / "state" / "reconciler.db")
    return build_plan(load(ws.manifests), state, **kwargs), state


def test_first_plan_creates_every_record(ws):
    ws.write("t.yaml", {"targets": {"vtex": target("vtex_ads"), "meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A"), product("B", price=None, targets=["vtex"])]})
    plan, _ = plan_of(ws)
    assert plan.targets["vtex"].summary == {"create": 3, "update": 0, "delete": 0, "unchanged": 0}
    assert [(c.sku, c.record) for c in plan.targets["vtex"].changes] == [
        ("A", "product"), ("A", "inventory"), ("B", "product")]
    assert plan.targets["meta"].summary["create"] == 1


def test_update_lists_changed_added_removed_fields_and_unchanged_costs_nothing(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A", gtin="7891404130317"), product("B")]})
    plan, state = plan_of(ws)
    record_all(state, plan)
    ws.write("p.yaml", {"products": [product("A", price="12.50", sale_price="11"), product("B")]})
    plan, _ = plan_of(ws)
    meta = plan.targets["meta"]
    assert meta.summary == {"create": 0, "update": 1, "delete": 0, "unchanged": 1}
    change = meta.changes[0]
    assert change.fields.changed == ("price",) and change.fields.added == ("sale_price",)
    assert change.fields.removed == ("gtin",)
    assert change.before["price"] == 1000 and change.after["price"] == 1250


def test_minor_units_follow_the_currency_exponent(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("J", price="899", currency="JPY"), product("K", price="1.234", currency="KWD")]})
    plan, _ = plan_of(ws)
    prices = {c.sku: c.after["price"] for c in plan.targets["meta"].changes}
    assert prices == {"J": 899, "K": 1234}


def test_overrides_and_mapping_changes_are_changes(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A")]})
    plan, state = plan_of(ws)
    record_all(state, plan)
    ws.write("p.yaml", {"products": [product("A", overrides={"meta": {"name": "Special", "brand": None}})]})
    plan, _ = plan_of(ws)
    change = plan.targets["meta"].changes[0]
    assert change.after["name"] == "Special" and "brand" not in change.after
    assert change.fields.changed == ("name",) and change.fields.removed == ("brand",)


def test_ignore_fields_are_sent_on_create_and_never_updated(ws):
    ws.write("t.yaml", {"targets": {"bloom": target("bloomreach", ignore_fields=["stock"])}})
    ws.write("p.yaml", {"products": [product("A", stock=5)]})
    plan, state = plan_of(ws)
    assert plan.targets["bloom"].changes[0].after["stock"] == 5
    record_all(state, plan)
    ws.write("p.yaml", {"products": [product("A", stock=9)]})
    assert not plan_of(ws)[0].has_changes
    ws.write("p.yaml", {"products": [product("A", stock=9, name="Renamed")]})
    change = plan_of(ws)[0].targets["bloom"].changes[0]
    assert change.fields.changed == ("title",)
    assert change.after["stock"] == 5  # what was last sent, not the manifest's 9


def test_deletes_and_the_mass_delete_guard(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog", max_delete_fraction=0.25)}})
    ws.write("p.yaml", {"products": [product(f"P{i}") for i in range(8)]})
    plan, state = plan_of(ws)
    record_all(state, plan)
    ws.write("p.yaml", {"products": [product(f"P{i}") for i in range(6)]})
    plan, _ = plan_of(ws)
    assert [(c.action, c.sku) for c in plan.targets["meta"].changes] == [("delete", "P6"), ("delete", "P7")]
    ws.write("p.yaml", {"products": []})  # an emptied manifest must not wipe the catalog
    result = ws.run("plan")
    assert result.exit_code == 1
    assert "deletes 8 of 8 items, more than max_delete_fraction 0.25" in result.output
    assert "--allow-mass-delete" in result.output
    allowed = ws.run("plan", "--allow-mass-delete", "--format", "json")
    assert allowed.exit_code == 0
    assert orjson.loads(allowed.output)["targets"]["meta"]["summary"]["delete"] == 8


def test_target_filter_and_unknown_target(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog"), "vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product("A")]})
    data = orjson.loads(ws.run("plan", "-t", "vouch", "--format", "json").output)
    assert list(data["targets"]) == ["vouch"]
    result = ws.run("plan", "-t", "nope")
    assert result.exit_code == 1 and "unknown target 'nope' (targets: meta, vouch)" in result.output
    assert "unknown target 'vuoch' (did you mean 'vouch'?)" in ws.run("plan", "-t", "vuoch").output


@pytest.mark.parametrize("command", [("plan",), ("drift",), ("status",), ("apply", "--auto-approve")])
def test_a_named_target_that_failed_to_load_shows_why(ws, command):
    """Not "unknown target": the target is declared, and its manifest error is the answer."""
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog", settings={"catalog_id": "", "api_version": "v21.0"}),
                                    "vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product("A")]})
    result = ws.run(*command, "-t", "meta")
    assert result.exit_code == 1 and "unknown target" not in result.output, result.output
    assert "manifests/t.yaml:" in result.output and "target 'meta': settings.catalog_id: must not be empty" in result.output


def test_detailed_exitcode(ws):
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product("A")]})
    assert ws.run("plan", "--detailed-exitcode").exit_code == 2
    assert ws.run("plan").exit_code == 0
    ws.write("p.yaml", {"products": []})
    assert ws.run("plan", "--detailed-exitcode").exit_code == 0


def test_plan_is_offline_and_creates_no_state(ws):
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify", auth={"app_id": "${NOPE}", "app_token": "${NOPE}"})}})
    ws.write("p.yaml", {"products": [product("A")]})
    assert ws.run("plan").exit_code == 0
    assert not (ws.root / "state" / "reconciler.db").exists()


def test_saved_plan_round_trips_through_show(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A")]})
    out = ws.root / "plan.out"
    fresh = ws.run("plan", "-o", str(out), "--format", "json")
    assert fresh.exit_code == 0
    shown = ws.run("show", str(out), "--format", "json")
    assert orjson.loads(shown.stdout) == orjson.loads(fresh.stdout)
    assert ws.run("show", str(out)).stdout == ws.run("plan").stdout
    bad = ws.root / "bad.out"
    bad.write_text("{}")
    result = ws.run("show", str(bad))
    assert result.exit_code == 1 and "is not a reconciler plan" in result.output


def test_a_saved_plan_is_json_lines_and_show_also_takes_the_json_format(ws):
    golden_plan(ws)
    out, as_json = ws.root / "plan.out", ws.root / "plan.json"
    shown = ws.run("plan", "--allow-mass-delete", "-o", str(out), "--format", "json")
    as_json.write_text(shown.stdout)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    head, changes, end = lines[0], lines[1:-1], lines[-1]
    assert head["format_version"] == 1 and all("changes" not in t for t in head["targets"].values())
    assert end["end_of_plan"]["changes"] == len(changes)
    assert end["end_of_plan"]["blake2b"] == hashlib.blake2b(out.read_bytes().rsplit(b"\n", 2)[0] + b"\n",
                                                            digest_size=32).hexdigest()
    assert len(changes) == sum(t["summary"][a] for t in head["targets"].values() for a in ("create", "update", "delete"))
    assert [c["target"] for c in changes] == sorted((c["target"] for c in changes), key=list(head["targets"]).index)
    assert ws.run("show", str(as_json), "--format", "json").stdout == ws.run("show", str(out), "--format", "json").stdout
    out.write_bytes(out.read_bytes() + b'{"target": "nope", "sku": "X"}\n')
    result = ws.run("show", str(out))
    assert result.exit_code == 1
    assert f"was edited since it was saved: line {len(lines) + 1} comes after its end line" in result.output


def test_no_secret_in_plan_output_or_file(ws, monkeypatch):
    monkeypatch.setenv("META_TOKEN", "s3cr3t-token-value")
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog", auth={"access_token": "${META_TOKEN}"})}})
    ws.write("p.yaml", {"products": [product("A")]})
    out = ws.root / "plan.out"
    for fmt in ("text", "json", "markdown"):
        assert "s3cr3t" not in ws.run("plan", "-o", str(out), "--format", fmt).output
        assert b"s3cr3t" not in out.read_bytes()


# -- golden renderings -----------------------------------------------------------------------
def golden_plan(ws) -> Plan:
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog"), "vtex": target("vtex_ads")}})
    ws.write("p.yaml", {"products": [product("KEEP"), product("CHANGE"), product("GONE")]})
    plan, state = plan_of(ws)
    record_all(state, plan)
    ws.write("p.yaml", {"products": [
        product("KEEP"), product("CHANGE", price="12.00", sale_price="9.50", brand=None, gtin="7891404130317"),
        product("NEW", tags=["a", "b"])]})
    return plan_of(ws, allow_mass_delete=True)[0]


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_golden_rendering(ws, fmt):
    golden_plan(ws)
    output = ws.run("plan", "--allow-mass-delete", "--format", fmt).stdout
    # The lineage is random; pin it for the comparison.
    state = State(ws.root / "state" / "reconciler.db")
    output = output.replace(state.lineage, "LINEAGE")
    path = GOLDEN / {"text": "plan.txt", "json": "plan.json", "markdown": "plan.md"}[fmt]
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(output)
    assert output == path.read_text()


def test_json_is_streamed_to_the_byte_as_one_dump_would_give_it(ws):
    plan = golden_plan(ws)
    empty_target = Plan(plan.lineage, plan.serial, {"meta": replace(plan.targets["meta"], changes=())})
    for shape in (plan, empty_target, Plan(None, 0, {})):
        assert "".join(json_chunks(shape)) == orjson.dumps(shape.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    assert len(list(json_chunks(plan))) > sum(len(t.changes) for t in plan.targets.values())  # a piece per change


def test_apply_shows_at_most_200_changes_per_target_and_plan_shows_all(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog", base_url="http://127.0.0.1:9")}})
    ws.write("p.jsonl", [product(f"SKU-{i:05d}") for i in range(250)])
    shown = ws.run("apply", input="no\n").stdout  # not a terminal: refused before applying
    assert shown.count("+ product SKU-") == 200
    assert "… and 50 more changes not shown here (`reconciler plan -t meta` shows them all)" in shown
    assert "Plan: 250 to create, 0 to update, 0 to delete." in shown
    assert ws.run("plan").stdout.count("+ product SKU-") == 250


def test_markdown_never_exceeds_limit_and_says_how_to_get_the_rest(ws):
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.jsonl", [product(f"SKU-{i:05d}", description="x" * 200) for i in range(2000)])
    plan, _ = plan_of(ws)
    text = render_markdown(plan)
    assert len(text) <= MARKDOWN_LIMIT
    assert text.index("| `meta` | `meta_catalog` | 2000 |") < text.index("<details>")
    assert "Plan truncated" in text and "reconciler show" in text
    assert text.count("```") % 2 == 0 and text.count("<details>") == text.count("</details>")


def test_colour_only_on_a_terminal_and_never_when_refused(ws, monkeypatch):
    from reconciler.cli import wants_color
    from reconciler.plan.render import render

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_color(False, Terminal())
    assert not wants_color(True, Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_color(False, Terminal())
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.yaml", {"products": [product("A")]})
    assert "\x1b[" not in ws.run("plan").output  # CliRunner is not a terminal
    plan, _ = plan_of(ws)
    assert "\x1b[32m" in render(plan, "text", color=True) and "\x1b[" not in render(plan, "text")


# -- property: applying every change converges ----------------------------------------------------
skus = st.sampled_from([f"S{i}" for i in range(12)])
field_values = st.fixed_dictionaries({}, optional={
    "name": st.text(min_size=1, max_size=8), "price": st.decimals(0, 1000, places=2).map(str),
    "stock": st.integers(0, 50), "tags": st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
    "metadata": st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 3) | st.text(max_size=3), min_size=1),
    "status": st.sampled_from(["active", "disabled", "hidden"]),
})
catalogs = st.dictionaries(skus, field_values, max_size=10)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=catalogs, second=catalogs)
def test_recording_every_change_as_applied_makes_the_next_plan_empty(make_ws, first, second):
    ws = make_ws("prop")
    ws.write("t.yaml", {"targets": {
        "vtex": target("vtex_ads"), "meta": target("meta_catalog"), "bloom": target("bloomreach"),
        "vouch": target("voucherify"), "bloom-full": target("bloomreach", settings={
            "project_id": "p", "catalog_id": "c", "update_mode": "full"}),
    }})
    state_path = ws.root / f"state-{os.urandom(4).hex()}.db"
    for catalog in (first, second):
        ws.write("p.yaml", {"products": [product(sku, **fields) for sku, fields in sorted(catalog.items())]})
        plan, state = plan_of(ws, state_path, allow_mass_delete=True)
        record_all(state, plan)
        again, _ = plan_of(ws, state_path)
        assert not again.has_changes, again.to_json()


def test_parallel_evaluation_gives_the_same_plan(ws, monkeypatch):
    import reconciler.plan.stream as stream

    monkeypatch.setattr(stream, "CHUNK_BYTES", 999)  # many chunks, lines cut across blocks
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog"), "vend": target("venddor")}})
    ws.write("p.jsonl", [product(f"P{i:03d}", gtin="7891404130317" if i == 5 else None) for i in range(60)]
             + [product("P010"), {"sku": "BAD", "price": -1}])
    with pytest.raises(Exception) as sequential:
        plan_of(ws, workers=1)
    with pytest.raises(Exception) as parallel:
        plan_of(ws, workers=2)
    assert str(sequential.value) == str(parallel.value)
    assert "manifests/p.jsonl:61: sku P010: duplicate sku, first defined at manifests/p.jsonl:11" in str(parallel.value)
    ws.write("p.jsonl", [product(f"P{i:03d}", gtin="7891404130317" if i == 5 else None,
                                 targets=["meta", "vend"] if i == 5 else ["meta"]) for i in range(60)])
    one, state = plan_of(ws, workers=1)
    two, _ = plan_of(ws, workers=2)
    assert one.to_json() == two.to_json()
    record_all(state, one)
    ws.write("p.jsonl", [product(f"P{i:03d}", price="3", targets=["meta"]) for i in range(50)])
    assert plan_of(ws, workers=1, allow_mass_delete=True)[0].to_json() == \
        plan_of(ws, workers=2, allow_mass_delete=True)[0].to_json()


def test_jsonl_chunks_and_yaml_documents_plan_alike(make_ws, monkeypatch):
    import reconciler.plan.stream as stream

    monkeypatch.setattr(stream, "CHUNK_BYTES", 2000)
    gtins = ["7891404130317", "7898915633481", "4006381333931"]
    items = [product(f"P{i:03d}", gtin=gtins[i % 3] if i < 3 else None,
                     targets=["meta", "vend"] if i < 3 else ["meta"]) for i in range(40)]
    plans = []
    for fmt in ("yaml", "jsonl"):
        ws = make_ws(fmt)
        ws.write("t.yaml", {"targets": {"meta": target("meta_catalog"), "vend": target("venddor")}})
        ws.write(f"p.{fmt}", {"products": items[:30]} if fmt == "yaml" else items[:30])
        plan, state = plan_of(ws)
        record_all(state, plan)
        ws.write(f"p.{fmt}", {"products": items[5:]} if fmt == "yaml" else items[5:])
        plans.append(plan_of(ws, allow_mass_delete=True)[0].to_json())
    for plan in plans:
        plan["lineage"] = None
    assert plans[0] == plans[1]


def test_a_gtin_shared_across_jsonl_chunks_is_reported(ws, monkeypatch):
    import reconciler.plan.stream as stream

    monkeypatch.setattr(stream, "CHUNK_BYTES", 999)
    ws.write("t.yaml", {"targets": {"vend": target("venddor")}})
    ws.write("p.jsonl", [product(f"P{i:02d}", gtin="7891404130317" if i in (2, 17) else None,
                                 targets=["vend"] if i in (2, 17) else []) for i in range(20)])
    for workers in (1, 2):
        with pytest.raises(Exception) as error:
            plan_of(ws, workers=workers)
        assert "manifests/p.jsonl:18: sku P17: target vend: gtin 7891404130317 is also the key of sku P02" in str(error.value)


def test_a_change_python_calls_equal_is_still_a_change(ws):
    # true == 1 == 1.0 in Python, not in JSON: the destination would see a different value.
    ws.write("t.yaml", {"targets": {"vouch": target("voucherify")}})
    ws.write("p.yaml", {"products": [product("A", metadata={"flag": True, "n": 1})]})
    plan, state = plan_of(ws)
    record_all(state, plan)
    ws.write("p.yaml", {"products": [product("A", metadata={"flag": 1, "n": 1.0})]})
    change = plan_of(ws)[0].targets["vouch"].changes[0]
    assert change.fields.changed == ("metadata",)
    assert change.after["metadata"] == {"flag": 1, "n": 1.0}
