"""The planner: manifests + state -> a frozen :class:`Plan`, with no side effects on
either (the one file it may write is the plan cache, its own).

It streams the catalog once (see :mod:`reconciler.plan.stream`), for every selected
target at the same time, skipping the products the plan cache knows unchanged (see
:mod:`reconciler.plan.cache`); changes go to a temporary file as they are found (see
:mod:`reconciler.plan.spill`), never held as objects all at once.
An item whose payload digest equals the one in the state costs one hash comparison;
only items whose digest differs are loaded from the state and diffed field by field.
Whatever the state holds that the manifests no longer produce becomes a delete, and
a target losing more than ``max_delete_fraction`` of its items is refused unless the
caller allows mass deletes.
"""
from __future__ import annotations

import os
from dataclasses import replace
from itertools import repeat
from typing import Callable, Sequence

import orjson

from reconciler.errors import ConfigError, ManifestError, Problem, ReconcilerError, suggestion
from reconciler.manifest.loader import Manifests
from reconciler.manifest.models import Target
from reconciler.manifest.validate import check_targets
from reconciler.mapping import json_equal
from reconciler.plan.binding import check_identities, fingerprint
from reconciler.plan.cache import PlanCache, cache_path
from reconciler.plan.model import ACTIONS, Change, FieldDiff, Plan, TargetPlan
from reconciler.plan.spill import Spill, SpilledChanges, sort_key
from reconciler.plan.stream import Chunk, Evaluated, Evaluator, Summary, evaluated
from reconciler.providers import get_provider
from reconciler.state import State


class MassDeleteError(ReconcilerError):
    """A plan would delete more of a target than its ``max_delete_fraction`` allows.
    ``refused``: one line per such target; ``advice``: how to go on."""

    def __init__(self, refused: Sequence[str],
                 advice: str = "If that is intended, run again with --allow-mass-delete."):
        self.refused = tuple(refused)
        super().__init__("\n".join(f"{line}. {advice}" for line in self.refused))


def field_diff(before: dict, after: dict) -> FieldDiff:
    """Top-level payload fields changed, added and removed (fields are what an API
    updates; a nested value such as a metadata object counts as one field)."""
    changed = tuple(sorted(k for k in before.keys() & after.keys() if not json_equal(before[k], after[k])))
    added = tuple(sorted(after.keys() - before.keys()))
    removed = tuple(sorted(before.keys() - after.keys()))
    return FieldDiff(changed, added, removed)


def keep_ignored(before: dict, after: dict, ignore: Sequence[str]) -> dict:
    """``after`` with the target's ignored fields as they were last sent: another
    system owns them, so they are sent on create and never updated."""
    kept = {k: v for k, v in after.items() if k not in ignore}
    kept.update((k, before[k]) for k in ignore if k in before)
    return kept


def record_ranks(provider: str) -> dict[str, int]:
    """Each record kind's rank in a plan: the order the provider lists them in (a
    product before its inventory); a kind it does not list comes after."""
    return {record: i for i, record in enumerate(get_provider(provider).capabilities.records)}


def change_order(provider: str) -> Callable[[Change], tuple]:
    """The sort key of a target's changes in a plan: by sku, then record kind (see
    :func:`record_ranks`). The planner's spill sorts by the same key, as bytes."""
    order = record_ranks(provider)
    return lambda c: (c.sku, order.get(c.record, len(order)), c.record)


def select_targets(manifests: Manifests, names: Sequence[str] = ()) -> dict[str, Target]:
    unknown = [n for n in names if n not in manifests.targets]
    if any(n in manifests.target_locations for n in unknown):  # declared, but did not load
        raise ManifestError(manifests.problems)
    if unknown:
        declared = list(manifests.target_locations)
        hint = suggestion(unknown[0], declared, listing="targets:") if declared else "no target is declared"
        raise ConfigError(f"unknown target {', '.join(map(repr, unknown))} ({hint})")
    return {n: t for n, t in manifests.targets.items() if not names or n in names}


class _TargetPlanner:
    """One target's side of a plan: compares what the manifests produce with the
    state's digests and writes each change to the plan's :class:`Spill` as found."""

    def __init__(self, target: Target, state: State, spill: Spill, in_step: int | None = None):
        self.target = target
        self.name = target.name
        self.state = state
        self.spill = spill
        self.ignore = tuple(target.ignore_fields)
        # In step (the state is the plan cache's snapshot, which held ``in_step`` items
        # of this target, each produced by a cached product): nothing is loaded; the
        # items the evaluated products produce are looked up one by one (``produced``).
        self.in_step = in_step
        self.produced: set[tuple[str, str]] = set()
        self.remaining = state.hashes(target.name) if in_step is None else {}  # what is left is deleted
        self.known = len(self.remaining) if in_step is None else in_step
        self.deleted: list[tuple[str, str]] = []
        self.counts = dict.fromkeys(ACTIONS, 0)
        self.unchanged = 0
        self.fields: dict[tuple, bytes] = {}
        self.rank = record_ranks(target.provider)
        self.removing = 0                  # updates that remove fields, and which: the provider
        self.removed: set[str] = set()     # may have no way to remove one (removal_warnings)

    def _keep(self, action: str, sku: str, record: str, line: bytes) -> None:
        self.counts[action] += 1
        key = sort_key(sku, self.rank.get(record, len(self.rank)), record)
        self.spill.add((self.name, "deletes" if action == "delete" else "changes"), key, line)

    def every_field(self, payload: dict) -> bytes:
        """The JSON of a create's FieldDiff (every field ``added``): one per field set,
        as a first load makes millions of creates of a handful of shapes."""
        keys = tuple(sorted(payload))
        diff = self.fields.get(keys)
        if diff is None:
            diff = self.fields[keys] = orjson.dumps(FieldDiff(added=keys).to_json())
        return diff

    def add(self, sku: str, key: str, record: str, body: bytes, digest: str) -> None:
        item = None
        if self.in_step is None:
            old = self.remaining.pop((record, key), None)
        else:
            if (record, key) in self.produced:  # a key met twice: the full plan reports it
                raise NotInStep
            self.produced.add((record, key))
            item = self.state.item(self.name, record, key)
            old = item.hash if item is not None else None
        if old == digest:
            self.unchanged += 1
            return
        if body is None:  # the evaluator saw this digest in the state: cannot differ here
            raise AssertionError(f"{self.target.name}: no payload for changed item {key} ({record})")
        payload = orjson.loads(body)
        if old is None:
            self._keep("create", sku, record, change_line(sku, "create", record, key, b"null", body,
                                                          self.every_field(payload)))
            return
        item = item or self.state.item(self.target.name, record, key)
        after = keep_ignored(item.payload, payload, self.ignore) if self.ignore else payload
        fields = field_diff(item.payload, after)
        if fields == FieldDiff():
            self.unchanged += 1
            return
        if fields.removed:
            self.removing += 1
            self.removed.update(fields.removed)
        change = Change("update", record, key, sku, item.payload, after, fields, item.remote_id)
        self._keep("update", sku, record, orjson.dumps(change.to_json()))

    def unchanged_items(self, keys: Sequence[tuple[str, str, int]]) -> None:
        """Items whose digest the evaluator found equal to the state's."""
        pop = self.remaining.pop
        missing = [key for record, key, _ in keys if pop((record, key), None) is None]
        if missing:  # cannot happen: a key met twice takes the product-by-product path
            raise AssertionError(f"{self.target.name}: items {missing[:3]} were not in the state")
        self.unchanged += len(keys)

    def finish(self, allow_mass_delete: bool, gone: Sequence[tuple[str, str]] = ()) -> TargetPlan:
        """The target's plan. In step, ``gone``: the items the state held that no
        cached product found this time produces (the snapshot's deletes, and the items
        of cached products not found); those no evaluated product produced are
        deleted, and every other item of the state is unchanged but for the updates."""
        if self.in_step is not None:  # each one's row, read once: it may be gone from the state too
            rows = ((item, self.state.item(self.name, *item)) for item in gone if item not in self.produced)
            self.remaining = {item: row for item, row in rows if row is not None}
        deletes = len(self.remaining)  # refused before loading them: an emptied manifest is the case
        if deletes and not allow_mass_delete and deletes > self.target.max_delete_fraction * self.known:
            raise MassDeleteError([f"target {self.target.name}: the plan deletes {deletes} of {self.known} items, "
                                   f"more than max_delete_fraction {self.target.max_delete_fraction:g} allows"])
        self.deleted = list(self.remaining)  # the plan cache's snapshot keeps them
        for (record, key), row in self.remaining.items():  # in step, the rows; else the digests
            item = row if self.in_step is not None else self.state.item(self.target.name, record, key)
            change = Change("delete", record, key, item.sku, item.payload, None,
                            FieldDiff(removed=tuple(sorted(item.payload))), item.remote_id)
            self._keep("delete", item.sku, record, orjson.dumps(change.to_json()))
        self.remaining = {}
        if self.in_step is not None:  # each item of the state is produced (unchanged or updated) or deleted
            self.unchanged = self.known - self.counts["update"] - self.counts["delete"]
        changes = SpilledChanges(self.spill, (self.name, "changes"), (self.name, "deletes"), self.counts)
        warnings = get_provider(self.target.provider).removal_warnings(self.target, self.removing, self.removed)
        return TargetPlan(self.target.name, self.target.provider, changes, self.unchanged, fingerprint(self.target),
                          tuple(warnings))


def change_line(sku: str, action: str, record: str, key: str, before: bytes, after: bytes, fields: bytes) -> bytes:
    """``orjson.dumps(change.to_json())`` of a change without a remote id, from the
    payloads' JSON (a create's ``after`` is the evaluator's canonical body: not parsed
    and dumped again)."""
    return b"".join((b'{"sku":', orjson.dumps(sku), b',"action":"', action.encode(), b'","record":', orjson.dumps(record),
                     b',"key":', orjson.dumps(key), b',"before":', before, b',"after":', after, b',"fields":', fields,
                     b"}"))


class _Scan:
    """Feeds every valid product to the planners and checks what spans products: a
    sku defined twice, and two products with the same key at one target whose
    provider keys items on another field than the sku (a GTIN, which two products
    could share)."""

    def __init__(self, manifests: Manifests, planners: dict[str, _TargetPlanner | _Checker], evaluator: Evaluator):
        self.planners = planners
        self.evaluator = evaluator
        self.problems = manifests.problems
        self.seen: dict[str, tuple[str, int]] = {}
        # {target: the product field its items are keyed on}, where that is not the sku
        self.key_sources = {name: source for name, t in manifests.targets.items()
                            if (source := get_provider(t.provider).key_source) != "sku"}
        self.keyed: dict[str, dict[str, str]] = {name: {} for name in self.key_sources}
        self.count = 0

    def product(self, evaluated: Evaluated) -> None:
        sku, file, line, found, entries = evaluated
        if sku is None:
            self.problems.extend(found)
            return
        first = self.seen.get(sku)
        if first is not None:
            self.problems.append(Problem(file, line, sku, f"duplicate sku, first defined at {first[0]}:{first[1]}"))
            return
        self.seen[sku] = (file, line)
        if found:
            self.problems.extend(found)
            return
        self.count += 1
        for name, key, record, body, digest in entries:
            if name in self.keyed:
                other = self.keyed[name].setdefault(key, sku)
                if other != sku:
                    self.problems.append(Problem(file, line, sku, f"target {name}: {self.key_sources[name]} {key} "
                                                                  f"is also the key of sku {other}"))
                    continue
            self.planners[name].add(sku, key, record, body, digest)

    def chunk(self, chunk: Chunk) -> None:
        """A chunk of valid products at a fraction of the per-product cost; one that
        needs a problem reported goes product by product instead."""
        summary = chunk.summary
        if not isinstance(summary, Summary):  # a product of it has a problem: evaluated already
            for evaluated in summary:
                self.product(evaluated)
            return
        if not self._clean(summary):  # a sku or key met twice: evaluated again, product by product
            for evaluated in self.evaluator.chunk(chunk.file, chunk.first_line, chunk.data):
                self.product(evaluated)
            return
        skus = summary.skus
        self.seen.update(zip(skus, zip(repeat(chunk.file), summary.lines)))
        self.count += len(skus)
        for name, keys in summary.unchanged.items():
            self.planners[name].unchanged_items(keys)
            if name in self.keyed:
                self.keyed[name].update((key, skus[index]) for _, key, index in keys)
        for index, name, key, record, body, digest in summary.changed:
            if name in self.keyed:
                self.keyed[name][key] = skus[index]
            self.planners[name].add(skus[index], key, record, body, digest)

    def _clean(self, summary: Summary) -> bool:
        """No sku and no item key met twice (in the chunk or before it)."""
        skus = summary.skus
        if len(set(skus)) != len(skus) or not self.seen.keys().isdisjoint(skus):
            return False
        for name, known in self.keyed.items():
            keys = [key for _, key, _ in summary.unchanged.get(name, ())]
            keys += [key for _, target, key, *_ in summary.changed if target == name]
            if len(set(keys)) != len(keys) or not known.keys().isdisjoint(keys):
                return False
        return True


class NotInStep(Exception):
    """A plan made in step with the cache's snapshot met what only a full plan reports
    exactly (a problem, a sku or key met twice): it is made in full instead."""


def _scan(manifests: Manifests, planners: dict[str, _TargetPlanner | _Checker], workers: int | None,
          cache: PlanCache | None = None) -> int:
    """Feed every valid product to the planners; returns the number of valid products.
    Any problem (the loader's, and those found here) raises :class:`ManifestError`.
    With ``cache``, products it knows unchanged are not evaluated again (in step with
    its snapshot, not even compared: see :mod:`reconciler.plan.cache`)."""
    # The checks append to a list of their own: the caller's manifests are left as they
    # were, so that planning or validating them again finds the same problems, once.
    manifests = replace(manifests, problems=list(manifests.problems))
    check_targets(manifests)
    evaluator = Evaluator(manifests.targets, manifests.target_locations, planners,
                          {name: planner.remaining for name, planner in planners.items()}, cache)
    scan = _Scan(manifests, planners, evaluator)
    in_step = cache is not None and cache.in_step
    for item in evaluated(manifests, evaluator, workers):
        if isinstance(item, Chunk):
            scan.chunk(item)
            if cache is not None and isinstance(item.summary, Summary) and cache.learn(*item.summary.learnt) and in_step:
                raise NotInStep  # a line met twice
        else:
            scan.product(item)
    if cache is not None and cache.learn(*evaluator.learnt()) and in_step:
        raise NotInStep
    if manifests.problems:
        if in_step:
            raise NotInStep
        raise ManifestError(manifests.problems)
    if in_step and any(cache.used[n] and cache.now_synced[n] for n in cache.with_skus(scan.seen)):
        raise NotInStep  # an evaluated product has the sku of a cached one found unchanged
    return scan.count


def build_plan(manifests: Manifests, state: State, names: Sequence[str] = (),
               allow_mass_delete: bool = False, workers: int | None = None,
               cache: str | os.PathLike | bool | None = None) -> Plan:
    """The plan for the selected targets (all when ``names`` is empty). ``workers``:
    processes evaluating large JSONL files (default: one per core when worth it).
    ``cache``: the plan cache's file (see :mod:`reconciler.plan.cache`); by default
    ``RECONCILER_PLAN_CACHE`` if set; ``False``, or ``RECONCILER_NO_CACHE`` set: none."""
    selected = select_targets(manifests, names)
    check_identities(state, selected)
    path = cache_path(cache)
    plan_cache = PlanCache(path, tuple(manifests.targets.values()), selected, state) if path is not None else None
    if plan_cache is not None and plan_cache.in_step:
        try:
            return _plan(manifests, state, selected, allow_mass_delete, workers, plan_cache)
        except NotInStep:
            plan_cache.restart()
    return _plan(manifests, state, selected, allow_mass_delete, workers, plan_cache)


def _plan(manifests: Manifests, state: State, selected: dict[str, Target], allow_mass_delete: bool,
          workers: int | None, cache: PlanCache | None) -> Plan:
    spill = Spill()
    known = cache.snapshot["known"] if cache is not None and cache.in_step else None
    planners = {name: _TargetPlanner(target, state, spill, known[name] if known is not None else None)
                for name, target in selected.items()}
    _scan(manifests, planners, workers, cache)
    gone: dict[str, list[tuple[str, str]]] = {name: [] for name in selected}
    if known is not None:
        for name, items in cache.snapshot["deletes"].items():
            gone[name] += (tuple(item) for item in items)
        for number in cache.unused():
            for target, key, record, _ in cache.items(number)[1]:
                if target in gone:
                    gone[target].append((record, key))
    refused, plans = [], {}
    for name, planner in planners.items():
        try:
            plans[name] = planner.finish(allow_mass_delete, gone[name])
        except MassDeleteError as exc:
            refused.extend(exc.refused)
    if cache is not None:
        deletes = {name: planner.deleted for name, planner in planners.items()}
        small = sum(map(len, deletes.values())) <= SNAPSHOT_DELETES
        cache.save({"known": {name: planner.known for name, planner in planners.items()}, "deletes": deletes}
                   if not refused and small else None)
    if refused:
        raise MassDeleteError(refused)
    orphans = {name: count for name, count in state.targets().items() if name not in manifests.targets}
    return Plan(lineage=state.lineage, serial=state.serial, targets=plans,
                target_serials=state.target_serials(plans), orphans=orphans, allow_mass_delete=allow_mass_delete)


# A snapshot lists the items the plan deletes (the state holds them, no product does):
# past this many, none is kept (a mass delete); the next plan is made in full.
SNAPSHOT_DELETES = 100_000


class _Checker:
    """Stands in for a target's planner in :func:`validate`: it is fed every item and
    keeps none (the checks are the scan's; a plan of every item would be thrown away)."""

    remaining: dict = {}  # no state: nothing to compare with

    def add(self, sku: str, key: str, record: str, body: bytes, digest: bytes) -> None:
        pass

    def unchanged_items(self, keys: Sequence[tuple[str, str, int]]) -> None:
        pass


def validate(manifests: Manifests) -> int:
    """Every check a plan makes, with no state: raises :class:`ManifestError` with all
    problems, or returns the number of valid products."""
    return _scan(manifests, {name: _Checker() for name in manifests.targets}, None)
