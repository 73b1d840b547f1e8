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
never deleted). A target's changes are a :class:`Changes`: read a change at a time
from where they live (a temporary file while planning, a saved plan's lines), never
all in memory. Its JSON form is SPEC's plan format (plus the item key and remote id
each change needs to be applied later, ``target_serials``, ``allow_mass_delete``,
``refreshed``, ``orphaned_targets`` and each target's ``fingerprint``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable, Iterator, Mapping

import orjson

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


class Changes(Sequence):
    """A target's changes in plan order, read a change at a time from wherever they
    live (see :mod:`reconciler.plan.spill` and :mod:`reconciler.plan.file`), never all
    held at once. ``counts``: how many of each action; ``lines()``: each change as its
    compact JSON (``Change.to_json``), the form saved and compared; ``deletions()``:
    the deletes only. Indexing walks from the start: it is for small plans (tests)."""

    counts: dict[str, int]

    def lines(self) -> Iterator[bytes]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Change]:
        for line in self.lines():
            yield Change.from_json(orjson.loads(line))

    def operations(self) -> Iterator[Operation]:
        """Each change as the operation apply sends, read without building a
        :class:`Change` (the costliest part of reading a large plan back)."""
        for line in self.lines():
            data = orjson.loads(line)
            sku = data["sku"]
            yield Operation(data["action"], data["record"], data.get("key", sku), sku, data.get("before"),
                            data.get("after"), data.get("remote_id"))

    def deletions(self) -> Iterator[Change]:
        if self.counts["delete"]:
            yield from (change for change in self if change.action == "delete")

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            if index.step is None and (index.start or 0) >= 0 and (index.stop is None or index.stop >= 0):
                return list(islice(self, index.start, index.stop))
            return list(self)[index]
        if index < 0:
            index += len(self)
        for number, change in enumerate(self):
            if number == index:
                return change
        raise IndexError("change index out of range")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (Sequence, Changes)) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.counts}>"


def counts_of(changes: Iterable[Change]) -> dict[str, int]:
    counts = dict.fromkeys(ACTIONS, 0)
    for change in changes:
        counts[change.action] += 1
    return counts


class ListedChanges(Changes):
    """Changes held as objects: a plan made in a test, or read from one JSON document."""

    def __init__(self, changes: Iterable[Change]):
        self.changes = tuple(changes)
        self.counts = counts_of(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def operations(self) -> Iterator[Operation]:
        return (change.operation() for change in self.changes)

    def lines(self) -> Iterator[bytes]:
        return (orjson.dumps(change.to_json()) for change in self.changes)


@dataclass(frozen=True)
class TargetPlan:
    """One target's part of a plan; ``changes`` given as a list or tuple are held as
    :class:`ListedChanges`."""

    name: str
    provider: str
    changes: Changes
    unchanged: int
    fingerprint: dict[str, str] | None = None
    warnings: tuple[str, ...] = ()   # what the provider says apply cannot carry out as planned

    def __post_init__(self) -> None:
        if not isinstance(self.changes, Changes):
            object.__setattr__(self, "changes", ListedChanges(self.changes))

    @property
    def summary(self) -> dict[str, int]:
        return {**self.changes.counts, "unchanged": self.unchanged}

    def to_json(self, changes: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"provider": self.provider}
        if self.fingerprint is not None:
            data["fingerprint"] = self.fingerprint
        data["summary"] = self.summary
        if self.warnings:
            data["warnings"] = list(self.warnings)
        if changes:
            data["changes"] = [orjson.loads(line) for line in self.changes.lines()]
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

    def deletions(self) -> Iterator[tuple[str, Change]]:
        """``(target, change)`` of every delete, target by target, in plan order."""
        for name, target in self.targets.items():
            yield from ((name, change) for change in target.changes.deletions())

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
    def from_json(cls, data: dict[str, Any], changes: Mapping[str, Changes] | None = None) -> "Plan":
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
                    changes=(changes[name] if changes is not None
                             else ListedChanges(Change.from_json(c) for c in t.get("changes", ()))),
                    unchanged=int(t.get("summary", {}).get("unchanged", 0)),
                    fingerprint=t.get("fingerprint"), warnings=tuple(t.get("warnings", ())),
                )
                for name, t in data.get("targets", {}).items()
            },
        )
