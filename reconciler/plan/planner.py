"""The planner: manifests + state -> a frozen :class:`Plan`, with no side effects.

It streams the validated catalog once, for every selected target at the same time.
An item whose payload digest equals the one in the state costs one hash comparison;
only items whose digest differs are loaded from the state and diffed field by field.
Whatever the state holds that the manifests no longer produce becomes a delete, and
a target losing more than ``max_delete_fraction`` of its items is refused unless the
caller allows mass deletes.
"""
from __future__ import annotations

from typing import Sequence

from reconciler.errors import ConfigError, ManifestError, ReconcilerError
from reconciler.manifest.loader import Manifests
from reconciler.manifest.models import Target
from reconciler.manifest.validate import catalog
from reconciler.mapping import item_key, records
from reconciler.plan.model import Change, FieldDiff, Plan, TargetPlan
from reconciler.providers import get_provider
from reconciler.state import State, payload_digest


class MassDeleteError(ReconcilerError):
    """A plan would delete more of a target than its ``max_delete_fraction`` allows."""


def field_diff(before: dict, after: dict) -> FieldDiff:
    """Top-level payload fields changed, added and removed (fields are what an API
    updates; a nested value such as a metadata object counts as one field)."""
    changed = tuple(sorted(k for k in before.keys() & after.keys() if before[k] != after[k]))
    added = tuple(sorted(after.keys() - before.keys()))
    removed = tuple(sorted(before.keys() - after.keys()))
    return FieldDiff(changed, added, removed)


def keep_ignored(before: dict, after: dict, ignore: Sequence[str]) -> dict:
    """``after`` with the target's ignored fields as they were last sent: another
    system owns them, so they are sent on create and never updated."""
    kept = {k: v for k, v in after.items() if k not in ignore}
    kept.update((k, before[k]) for k in ignore if k in before)
    return kept


def select_targets(manifests: Manifests, names: Sequence[str] = ()) -> dict[str, Target]:
    unknown = [n for n in names if n not in manifests.targets]
    if unknown:
        known = ", ".join(manifests.targets) or "none"
        raise ConfigError(f"unknown target {', '.join(map(repr, unknown))} (targets: {known})")
    return {n: t for n, t in manifests.targets.items() if not names or n in names}


class _TargetPlanner:
    def __init__(self, target: Target, state: State):
        self.target = target
        self.state = state
        self.ignore = tuple(target.ignore_fields)
        self.remaining = state.hashes(target.name)  # whatever is left at the end is deleted
        self.known = len(self.remaining)
        self.changes: list[Change] = []
        self.unchanged = 0

    def add(self, sku: str, key: str, record: str, payload: dict) -> None:
        old = self.remaining.pop((record, key), None)
        if old is None:
            self.changes.append(Change("create", record, key, sku, None, payload, FieldDiff(added=tuple(sorted(payload)))))
            return
        if old == payload_digest(payload, self.ignore):
            self.unchanged += 1
            return
        item = self.state.item(self.target.name, record, key)
        after = keep_ignored(item.payload, payload, self.ignore) if self.ignore else payload
        fields = field_diff(item.payload, after)
        if fields == FieldDiff():
            self.unchanged += 1
            return
        self.changes.append(Change("update", record, key, sku, item.payload, after, fields, item.remote_id))

    def finish(self, allow_mass_delete: bool) -> TargetPlan:
        for record, key in self.remaining:
            item = self.state.item(self.target.name, record, key)
            self.changes.append(Change("delete", record, key, item.sku, item.payload, None,
                                       FieldDiff(removed=tuple(sorted(item.payload))), item.remote_id))
        deletes = len(self.remaining)
        if deletes and not allow_mass_delete and deletes > self.target.max_delete_fraction * self.known:
            raise MassDeleteError(
                f"target {self.target.name}: the plan deletes {deletes} of {self.known} items, more than "
                f"max_delete_fraction {self.target.max_delete_fraction:g} allows. If that is intended, "
                "run again with --allow-mass-delete."
            )
        order = {record: i for i, record in enumerate(get_provider(self.target.provider).capabilities.records)}
        self.changes.sort(key=lambda c: (c.sku, order.get(c.record, len(order)), c.record))
        return TargetPlan(self.target.name, self.target.provider, tuple(self.changes), self.unchanged)


def build_plan(manifests: Manifests, state: State, names: Sequence[str] = (),
               allow_mass_delete: bool = False) -> Plan:
    selected = select_targets(manifests, names)
    planners = {name: _TargetPlanner(target, state) for name, target in selected.items()}
    for routed in catalog(manifests):
        product = routed.product
        for target in routed.targets:
            planner = planners.get(target.name)
            if planner is None:
                continue
            key = item_key(target, product)
            for record, payload in records(target, product).items():
                planner.add(product.sku, key, record, payload)
    if manifests.problems:
        raise ManifestError(manifests.problems)
    errors, plans = [], {}
    for name, planner in planners.items():
        try:
            plans[name] = planner.finish(allow_mass_delete)
        except MassDeleteError as exc:
            errors.append(str(exc))
    if errors:
        raise MassDeleteError("\n".join(errors))
    return Plan(lineage=state.lineage, serial=state.serial, targets=plans)
