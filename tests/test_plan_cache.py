"""The plan cache: a plan made with it is always the plan made without it, whatever
was edited, moved, duplicated, reconfigured or failed to apply in between."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import product, target
from reconciler.errors import ManifestError
from reconciler.manifest.loader import load
from reconciler.plan import MassDeleteError, build_plan
from reconciler.plan.cache import PlanCache
from reconciler.providers.base import Outcome
from reconciler.state import State

SKUS = [f"S{i}" for i in range(6)]


@pytest.fixture(autouse=True)
def cache_allowed(monkeypatch):
    """These tests are of the cache itself: on even when the suite runs without it."""
    monkeypatch.delenv("RECONCILER_NO_CACHE", raising=False)

# Target configurations a step may switch to: select, ignore_fields, settings, overrides.
CONFIGS = [
    {"meta": target("meta_catalog"), "vtex": target("vtex_ads")},
    {"meta": target("meta_catalog", ignore_fields=["price"]), "vtex": target("vtex_ads")},
    {"meta": target("meta_catalog"), "vtex": target("vtex_ads", select={"tags": ["ads"]})},
    {"vtex": target("vtex_ads"), "meta": target("meta_catalog", settings={"catalog_id": "99", "api_version": "v21.0"})},
    {"meta": target("meta_catalog"), "bloom": target("bloomreach", ignore_fields=["stock"])},
]

products = st.builds(
    lambda sku, price, stock, tags, only, override: product(
        sku, price=price, stock=stock, tags=tags,
        **({"targets": only} if only else {}), **({"overrides": {"meta": {"name": override}}} if override else {})),
    st.sampled_from(SKUS), st.sampled_from(["10.00", "12.50", None]), st.integers(0, 3),
    st.sampled_from([["ads"], [], ["other"]]), st.sampled_from([None, ["meta"], ["vtex"], ["meta", "vtex"]]),
    st.sampled_from([None, "Special"]),
)
edits = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 20), products),       # insert a product at a position
    st.tuples(st.just("edit"), st.integers(0, 20), products),      # replace a line
    st.tuples(st.just("delete"), st.integers(0, 20), st.none()),
    st.tuples(st.just("move"), st.integers(0, 20), st.integers(0, 20)),
    st.tuples(st.just("to_yaml"), st.integers(0, 20), st.none()),  # a line moves to the YAML file (duplicates)
    st.tuples(st.just("config"), st.integers(0, len(CONFIGS) - 1), st.none()),
    st.tuples(st.just("apply"), st.integers(0, 2**16), st.none()),  # some changes applied, some failed
    st.tuples(st.just("apply"), st.just(0), st.none()),  # every change applied
)


class Catalog:
    def __init__(self, root: Path):
        self.root = root
        self.manifests = root / "manifests"
        self.manifests.mkdir(parents=True)
        self.lines: list[dict] = [product(sku) for sku in SKUS[:4]]
        self.documents: list[dict] = []
        self.config = 0

    def write(self) -> None:
        (self.manifests / "targets.yaml").write_text(yaml.safe_dump({"targets": CONFIGS[self.config]}))
        (self.manifests / "p.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in self.lines))
        (self.manifests / "q.yaml").write_text(yaml.safe_dump({"products": self.documents}))

    def edit(self, kind: str, at: int, value) -> None:
        lines = self.lines
        if kind == "put":
            lines.insert(at % (len(lines) + 1), value)
        elif kind == "edit" and lines:
            lines[at % len(lines)] = value
        elif kind == "delete" and lines:
            del lines[at % len(lines)]
        elif kind == "move" and lines:
            lines.insert(value % len(lines), lines.pop(at % len(lines)))
        elif kind == "to_yaml" and lines:
            self.documents.append(lines.pop(at % len(lines)))
        elif kind == "config":
            self.config = at


def outcome(state: State, root: Path, cache: Path | bool, workers: int | None = None):
    """The plan's JSON (every change), or the error it raised."""
    try:
        plan = build_plan(load(root / "manifests"), state, allow_mass_delete=True, workers=workers, cache=cache)
    except ManifestError as exc:
        return "problems", sorted(str(p) for p in exc.problems)
    except MassDeleteError as exc:
        return "mass delete", str(exc)
    return plan, plan.to_json()


def apply_some(state: State, plan, seed: int) -> None:
    """Record the plan's changes as a partial apply would: some applied, some failed
    (the state keeps the old payload of those), some never sent."""
    with state.locked("test apply"):  # one command: each target's serial bumped once, as apply does
        apply_id = state.begin_apply(list(plan.targets))
        for name, target_plan in plan.targets.items():
            outcomes = []
            for number, change in enumerate(target_plan.changes):
                fate = (seed >> (number % 16)) % 3 if seed else 0
                if fate < 2:
                    outcomes.append(Outcome(change.operation(), "confirmed" if fate == 0 else "failed", reason="no"))
            state.record(name, outcomes, apply_id)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(edits, min_size=1, max_size=6))
def test_a_cached_plan_is_always_the_full_plan(tmp_path_factory, steps):
    root = tmp_path_factory.mktemp("cat")
    catalog = Catalog(root)
    catalog.write()
    state = State(root / "state.db")
    cache = root / "plan-cache"
    try:
        for kind, at, value in [("apply", 0, None), *steps]:
            catalog.edit(kind, at, value)
            catalog.write()
            full = outcome(state, root, cache=False)
            cached = outcome(state, root, cache=cache)
            again = outcome(state, root, cache=cache)  # now from what the previous one cached
            assert cached[1] == full[1] and again[1] == full[1], (kind, at)
            if kind == "apply" and not isinstance(full[0], str):
                apply_some(state, full[0], at)
    finally:
        state.close()


def applied_catalog(root: Path, count: int) -> tuple[Catalog, State, Path]:
    """A catalog of ``count`` products, planned with a cache and applied whole."""
    catalog = Catalog(root)
    catalog.lines = [product(f"P{i}") for i in range(count)]
    catalog.write()
    state = State(root / "state.db")
    cache = root / "plan-cache"
    plan, _ = outcome(state, root, cache)
    apply_some(state, plan, 0)  # every change applied: the state moved on
    return catalog, state, cache


def count_parses(monkeypatch) -> list[bytes]:
    """The JSON lines pydantic is asked to validate from now on."""
    from reconciler.manifest.models import Product

    parsed, real = [], Product.model_validate_json.__func__
    monkeypatch.setattr(Product, "model_validate_json",
                        classmethod(lambda cls, data, *a, **k: parsed.append(data) or real(cls, data, *a, **k)))
    return parsed


def test_an_unchanged_product_is_not_evaluated_again(tmp_path, monkeypatch):
    catalog, state, cache = applied_catalog(tmp_path, 50)
    assert len(PlanCache(cache, tuple(load(tmp_path / "manifests").targets.values()), ["meta", "vtex"])) == 50
    calls = count_parses(monkeypatch)
    catalog.lines[7] = product("P7", price="99.00")
    catalog.write()
    plan, _ = outcome(state, tmp_path, cache)
    assert plan.totals() == {"create": 0, "update": 2, "delete": 0, "unchanged": 148}  # P7 on meta and vtex
    assert len(calls) == 1 and b'"P7"' in calls[0]  # only the edited line was parsed
    calls.clear()
    assert outcome(state, tmp_path, cache=False)[1] == plan.to_json()
    assert len(calls) == 50


def test_parallel_workers_fill_and_use_the_cache(tmp_path):
    catalog = Catalog(tmp_path)
    catalog.lines = [product(f"P{i}") for i in range(300)]
    catalog.write()
    state = State(tmp_path / "state.db")
    cache = tmp_path / "plan-cache"
    first, _ = outcome(state, tmp_path, cache, workers=2)
    targets = tuple(load(tmp_path / "manifests").targets.values())
    assert len(PlanCache(cache, targets, ["meta", "vtex"])) == 300
    apply_some(state, first, 1)
    catalog.edit("move", 0, 200)
    catalog.edit("delete", 5, None)
    catalog.write()
    assert outcome(state, tmp_path, cache, workers=2)[1] == outcome(state, tmp_path, False, workers=2)[1]
    assert len(PlanCache(cache, targets, ["meta", "vtex"])) == 299  # the deleted line is forgotten
    assert PlanCache(cache, targets, ["meta", "vtex"], state).in_step  # same state: the next plan is in step
    catalog.edit("edit", 9, product("P9", price="1.00"))
    catalog.edit("put", 250, product("P1"))  # a duplicate of an unchanged product, in a worker's chunk
    catalog.write()
    assert outcome(state, tmp_path, cache, workers=2)[1] == outcome(state, tmp_path, False, workers=2)[1]
    catalog.edit("delete", 250, None)
    catalog.write()
    assert outcome(state, tmp_path, cache, workers=2)[1] == outcome(state, tmp_path, False, workers=2)[1]


@pytest.mark.parametrize("damage", [b"", b"garbage", None])
def test_a_damaged_or_foreign_cache_is_ignored(tmp_path, damage):
    catalog = Catalog(tmp_path)
    catalog.write()
    state = State(tmp_path / "state.db")
    cache = tmp_path / "plan-cache"
    outcome(state, tmp_path, cache)
    data = cache.read_bytes()
    cache.write_bytes(damage if damage is not None else data[:-1] + bytes([data[-1] ^ 1]))
    assert outcome(state, tmp_path, cache)[1] == outcome(state, tmp_path, False)[1]


def test_no_cache_switch_and_default_location(ws, monkeypatch):
    monkeypatch.delenv("RECONCILER_PLAN_CACHE", raising=False)
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog")}})
    ws.write("p.jsonl", [product("A"), product("B")])
    assert ws.run("plan", "--no-cache").exit_code == 0
    assert not (ws.root / ".reconciler").exists()
    assert ws.run("plan").exit_code == 0
    assert (ws.root / ".reconciler" / "plan-cache").is_file()
    assert "--no-cache" in ws.run("plan", "--help").output
    elsewhere = ws.root / "elsewhere" / "cache"  # the variable wins over the default location
    monkeypatch.setenv("RECONCILER_PLAN_CACHE", str(elsewhere))
    monkeypatch.setenv("RECONCILER_NO_CACHE", "1")
    assert ws.run("plan").exit_code == 0 and not elsewhere.exists()
    monkeypatch.setenv("RECONCILER_NO_CACHE", "")
    assert ws.run("plan").exit_code == 0 and elsewhere.is_file()


def test_in_step_with_the_snapshot_nothing_unchanged_is_read_nor_evaluated(tmp_path, monkeypatch):
    catalog, state, cache = applied_catalog(tmp_path, 50)
    outcome(state, tmp_path, cache)  # made in full (the state moved); the snapshot is this state
    parsed, loaded, real_hashes = count_parses(monkeypatch), [], State.hashes
    monkeypatch.setattr(State, "hashes", lambda self, target: loaded.append(target) or real_hashes(self, target))
    catalog.edit("edit", 7, product("P7", price="99.00"))
    catalog.edit("delete", 3, None)
    catalog.edit("put", 0, product("NEW"))
    catalog.edit("move", 10, 40)
    catalog.write()
    plan, data = outcome(state, tmp_path, cache)
    assert plan.totals() == {"create": 3, "update": 2, "delete": 3, "unchanged": 145}
    assert len(parsed) == 2 and loaded == []  # the edited and the new line; no item list read
    parsed.clear()
    assert outcome(state, tmp_path, False)[1] == data
    assert len(parsed) == 50 and loaded == ["meta", "vtex"]
    parsed.clear()
    catalog.edit("put", 5, product("P7", price="1.00"))  # a duplicate of an unchanged product
    catalog.write()
    assert outcome(state, tmp_path, cache)[1] == outcome(state, tmp_path, False)[1]


def test_a_plan_stays_in_step_across_with_sandbox(ws, monkeypatch):
    """``--with-sandbox`` on other ports sends one command's requests elsewhere: what the
    products plan to is the same, so plans with and without it share the cache (they
    restarted it, evaluating every product, each time one followed the other)."""
    ws.write("t.yaml", {"targets": {"meta": target("meta_catalog", base_url="http://127.0.0.1:8701")}})
    ws.write("p.jsonl", [product(f"P{i}") for i in range(20)])
    sandboxed = ("--with-sandbox", "--sandbox-port", "0")
    applied = ws.run(*sandboxed, "apply", "--auto-approve")
    assert applied.exit_code == 0 and "20 confirmed" in applied.output, applied.output
    parsed, loaded, real_hashes = count_parses(monkeypatch), [], State.hashes
    monkeypatch.setattr(State, "hashes", lambda self, target: loaded.append(target) or real_hashes(self, target))
    assert ws.run("plan", "--detailed-exitcode").exit_code == 0  # the state moved: compared, not evaluated
    assert parsed == [] and loaded == ["meta"]
    loaded.clear()
    for args in (sandboxed, (), sandboxed):  # in step with that state: nothing read nor evaluated
        result = ws.run(*args, "plan", "--detailed-exitcode")
        assert result.exit_code == 0 and "No changes." in result.output, result.output
    assert parsed == [] and loaded == []
    ws.write("p.jsonl", [product(f"P{i}", price="11.00" if i == 3 else "10.00") for i in range(20)])
    result = ws.run(*sandboxed, "plan")
    assert "Plan: 0 to create, 1 to update, 0 to delete." in result.output
    assert len(parsed) == 1 and b'"P3"' in parsed[0] and loaded == []


def test_saving_the_cache_parses_no_value_again(tmp_path, monkeypatch):
    """A product evaluated anew is stored with the hash of its sku, made where the sku
    was at hand: writing the cache parses none of the values it writes."""
    import reconciler.plan.cache as cache_module

    catalog = Catalog(tmp_path)
    catalog.lines = [product(f"P{i}") for i in range(50)]
    catalog.write()
    parsed = []
    monkeypatch.setattr(cache_module, "orjson", SimpleNamespace(
        dumps=orjson.dumps, OPT_SORT_KEYS=orjson.OPT_SORT_KEYS, __version__=orjson.__version__,
        loads=lambda data: parsed.append(data) or orjson.loads(data)))
    plan, _ = outcome(State(tmp_path / "state.db"), tmp_path, tmp_path / "plan-cache")
    assert plan.totals()["create"] == 150 and parsed == []  # a first plan: nothing cached was read
    cache = PlanCache(tmp_path / "plan-cache", tuple(load(tmp_path / "manifests").targets.values()), ["meta", "vtex"])
    assert len(cache) == 50 and sorted(cache.items(n)[0] for n in cache.with_skus(["P7", "P42", "X"])) == ["P42", "P7"]
