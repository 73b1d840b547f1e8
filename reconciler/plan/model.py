"""A plan: the frozen list of changes ``apply`` will carry out, and nothing else.

A :class:`Plan` is made by ``reconciler.plan.planner`` without side effects and is
bound to the state it was made from by the state's lineage and its targets' serials
(``target_serials``): a saved plan is refused once one of its targets moved on (a plan
without them, older, by the state's serial). Each target's ``fingerprint`` binds it to
the destination it was made for (see :mod:`reconciler.plan.binding`);
``allow_mass_delete`` and ``refreshed`` say it was made with ``--allow-mass-delete``
and ``--refresh`` (against the state with the remote catalogs' drift folded in, so
checking it means reading them again). ``orphans`` are
the targets the state holds items of but the manifests no longer declare (reported,
never deleted). Its JSON form is SPEC's plan format (plus the item key and remote id
each change needs to be applied later, ``target_serials``, ``allow_mass_delete``,
``refreshed``, ``orphaned_targets`` and each target's ``fingerprint``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from reconciler.providers.base import Action, Operation

FORMAT_VERSION = 1
ACTIONS = ("create", "update", "delete")


@dataclass(frozen=True, slots=True)
class FieldDiff:
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        return {"changed": list(self.changed), "added": list(self.added), "removed": list(self.removed)}


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    record: str
    key: str
    sku: str
    before: dict | None
    after: dict | None
    fields: FieldDiff = field(default_factory=FieldDiff)
    remote_id: str | None = None

    def operation(self) -> Operation:
        return Operation(self.action, self.record, self.key, self.sku, self.before, self.after, self.remote_id)

    def to_json(self) -> dict[str, Any]:
        data = {"sku": self.sku, "action": self.action, "record": self.record, "key": self.key,
                "before": self.before, "after": self.after, "fields": self.fields.to_json()}
        if self.remote_id is not None:
            data["remote_id"] = self.remote_id
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Change":
        fields = data.get("fields") or {}
        return cls(
            action=data["action"], record=data["record"], key=data.get("key", data["sku"]), sku=data["sku"],
            before=data.get("before"), after=data.get("after"), remote_id=data.get("remote_id"),
            fields=FieldDiff(*(tuple(fields.get(k, ())) for k in ("changed", "added", "removed"))),
        )


@dataclass(frozen=True)
class TargetPlan:
    name: str
    provider: str
    changes: tuple[Change, ...]
    unchanged: int
    fingerprint: dict[str, str] | None = None

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTIONS, 0)
        for change in self.changes:
            counts[change.action] += 1
        return {**counts, "unchanged": self.unchanged}

    def to_json(self, changes: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"provider": self.provider}
        if self.fingerprint is not None:
            data["fingerprint"] = self.fingerprint
        data["summary"] = self.summary
        if changes:
            data["changes"] = [change.to_json() for change in self.changes]
        return data


@dataclass(frozen=True)
class Plan:
    lineage: str | None
    serial: int
    targets: dict[str, TargetPlan]
    target_serials: dict[str, int] | None = None
    orphans: dict[str, int] = field(default_factory=dict)
    allow_mass_delete: bool = False
    refreshed: bool = False

    @property
    def has_changes(self) -> bool:
        return any(t.changes for t in self.targets.values())

    def totals(self) -> dict[str, int]:
        totals = dict.fromkeys((*ACTIONS, "unchanged"), 0)
        for target in self.targets.values():
            for action, count in target.summary.items():
                totals[action] += count
        return totals

    def to_json(self, changes: bool = True) -> dict[str, Any]:
        """SPEC's plan JSON (``changes=False``: without the targets' lists of changes)."""
        data = {"format_version": FORMAT_VERSION, "lineage": self.lineage, "state_serial": self.serial}
        if self.target_serials is not None:
            data["target_serials"] = self.target_serials
        if self.allow_mass_delete:
            data["allow_mass_delete"] = True
        if self.refreshed:
            data["refreshed"] = True
        if self.orphans:
            data["orphaned_targets"] = self.orphans
        data["targets"] = {name: t.to_json(changes) for name, t in self.targets.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], changes: Mapping[str, Sequence[Change]] | None = None) -> "Plan":
        """The plan of its JSON form; ``changes`` (per target) where ``data`` leaves
        them out (a saved plan's first line, see :mod:`reconciler.plan.file`)."""
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"plan format_version {data.get('format_version')!r} is not {FORMAT_VERSION}")
        return cls(
            lineage=data.get("lineage"), serial=int(data.get("state_serial", 0)),
            target_serials=({name: int(n) for name, n in data["target_serials"].items()}
                            if data.get("target_serials") is not None else None),
            orphans={name: int(n) for name, n in (data.get("orphaned_targets") or {}).items()},
            allow_mass_delete=data.get("allow_mass_delete") is True, refreshed=data.get("refreshed") is True,
            targets={
                name: TargetPlan(
                    name=name, provider=t["provider"],
                    changes=tuple(changes[name] if changes is not None
                                  else (Change.from_json(c) for c in t.get("changes", ()))),
                    unchanged=int(t.get("summary", {}).get("unchanged", 0)),
                    fingerprint=t.get("fingerprint"),
                )
                for name, t in data.get("targets", {}).items()
            },
        )
