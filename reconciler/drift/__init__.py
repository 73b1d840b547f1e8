"""Drift: what the destinations hold that the state does not say they hold.

Three uses of one read of the remote catalogs (``reconciler.drift.reader``: paged,
paced, retried) and one comparison (``reconciler.drift.compare``):

* :func:`detect_drift` (``reconciler drift``): per target, the items whose fields
  differ from the state (which fields, state value and remote value), the items the
  state holds that are missing remotely, and the remote items the state does not
  know; plus manifests versus state (the counts of the plan ``build_plan`` makes:
  pending changes, not drift). A target whose provider cannot be read gets
  manifests versus state only, and says so.
* :func:`refresh_state` (``reconciler plan --refresh``): an in-memory copy of the
  state, same lineage and serial, with the drift folded in (an item changed remotely
  carries the remote values of the drifted fields; an item missing remotely is
  absent, so the plan creates it again; remote items unknown to the state are left
  out). A plan made from it repairs the drift, and a saved one applies to the real
  state, which is never modified.
* :func:`import_catalog` (``reconciler import``): adopt the items of a readable
  remote catalog into the state, so that the first plan against an existing catalog
  is not all creates (where the listing stops short, the items of the state and the
  manifests that it did not return are read one by one, and the result says so). The
  item key is the sku for every readable provider. An item
  already in the state is overwritten with the remote truth (and counted so); one
  whose payload already matches is left untouched. Where another system may own
  fields (an API that merges properties or metadata) only the fields that are ours
  are adopted (see :mod:`reconciler.drift.compare`).

Credentials are resolved with ``reconciler.credentials.resolve`` and never shown:
every message from a read is redacted of them.

``reconciler drift --format json`` prints (``format_version`` 1)::

    {"format_version": 1, "lineage": "…", "state_serial": 7,
     "drift": true,                 # some readable target drifted
     "errors": false,               # some target could not be read (exit code 1)
     "summary": {"changed": 1, "missing": 1, "unknown": 1},
     "targets": {
       "meta-us": {
         "provider": "…", "readable": true, "error": null, "note": null,
         "summary": {"remote": 3, "state": 3, "in_sync": 1,
                     "changed": 1, "missing": 1, "unknown": 1},
         "changed": [{"sku": "A-1", "key": "A-1", "record": "product",
                      "fields": [{"field": "price", "kind": "changed",
                                  "state": 899, "remote": 1299},
                                 {"field": "sale_price", "kind": "added", "remote": 500},
                                 {"field": "gtin", "kind": "removed", "state": "…"}]}],
         "missing": [{"sku": "A-2", "key": "A-2", "record": "product"}],
         "unknown": [{"key": "Z-9", "record": "product", "remote": {…}}],
         "pending": {"create": 0, "update": 2, "delete": 0, "unchanged": 1},
         "pending_jobs": 0},
       "ads": {"provider": "…", "readable": false, "error": null,
                "note": "… cannot be read: …", "summary": null,
                "changed": [], "missing": [], "unknown": [],
                "pending": {"create": 1, "update": 0, "delete": 0, "unchanged": 0},
                "pending_jobs": 0}}}

``note`` says why a target was not compared (not readable), or what its comparison
could not see (a listing that stops short, as an API that lists only so many items,
or one its API calls incomplete: the state's other items are read one by one, and
unknown items the listing did not return are not found). ``kind`` is seen from the remote: ``added`` = only the remote holds the field,
``removed`` = only the state does. ``pending`` is manifests versus state (``null``
when the manifests could not be planned); ``pending_jobs`` counts asynchronous jobs
not settled yet (their items may still change remotely: ``reconciler status``).
Exit codes of ``reconciler drift``: 0 no drift, 2 drift found, 1 error (a target
could not be read, or anything else went wrong); pending changes alone are 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import httpx

from reconciler.apply.tuning import Tuning
from reconciler.drift.compare import Comparer, FieldDrift, fold
from reconciler.drift.reader import DriftError, RemoteCatalog, read_catalogs
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.manifest.loader import Manifests
from reconciler.manifest.models import Target
from reconciler.plan.binding import check_identities, identity
from reconciler.plan.planner import build_plan, select_targets
from reconciler.providers import PROVIDERS, get_provider
from reconciler.state import State

FORMAT_VERSION = 1
Reporter = Callable[[str], None]

__all__ = [
    "DriftError", "DriftReport", "FieldDrift", "ImportResult", "ItemDrift", "TargetDrift",
    "detect_drift", "import_catalog", "importable", "readable", "refresh_state",
]


def readable(target: Target) -> bool:
    return get_provider(target.provider).capabilities.readable


def readable_providers() -> str:
    return ", ".join(name for name, cls in PROVIDERS.items() if cls.capabilities.readable)


def not_readable_note(target: Target) -> str:
    return (f"{target.provider} cannot be read: its API offers no way to list the catalog, so drift "
            "cannot be detected; showing manifests versus state only")


@dataclass(frozen=True)
class ItemDrift:
    record: str
    key: str
    sku: str
    fields: tuple[FieldDrift, ...]

    def to_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "key": self.key, "record": self.record,
                "fields": [f.to_json() for f in self.fields]}


@dataclass
class TargetDrift:
    name: str
    provider: str
    readable: bool
    error: str | None = None
    note: str | None = None
    remote_count: int = 0
    state_count: int = 0
    in_sync: int = 0
    changed: list[ItemDrift] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)       # (record, key, sku)
    unknown: list[tuple[str, str, dict]] = field(default_factory=list)      # (record, key, payload)
    pending: dict[str, int] | None = None
    pending_jobs: int = 0

    @property
    def drifted(self) -> bool:
        return bool(self.changed or self.missing or self.unknown)

    @property
    def compared(self) -> bool:
        return self.readable and self.error is None

    def counts(self) -> dict[str, int]:
        return {"changed": len(self.changed), "missing": len(self.missing), "unknown": len(self.unknown)}

    def to_json(self) -> dict[str, Any]:
        summary = None
        if self.compared:
            summary = {"remote": self.remote_count, "state": self.state_count, "in_sync": self.in_sync,
                       **self.counts()}
        return {
            "provider": self.provider, "readable": self.readable, "error": self.error, "note": self.note,
            "summary": summary,
            "changed": [c.to_json() for c in self.changed],
            "missing": [{"sku": sku, "key": key, "record": record} for record, key, sku in self.missing],
            "unknown": [{"key": key, "record": record, "remote": payload} for record, key, payload in self.unknown],
            "pending": self.pending, "pending_jobs": self.pending_jobs,
        }


@dataclass
class DriftReport:
    lineage: str | None
    serial: int
    targets: dict[str, TargetDrift]

    @property
    def has_drift(self) -> bool:
        return any(t.drifted for t in self.targets.values())

    @property
    def has_errors(self) -> bool:
        return any(t.error for t in self.targets.values())

    def totals(self) -> dict[str, int]:
        totals = {"changed": 0, "missing": 0, "unknown": 0}
        for target in self.targets.values():
            for kind, count in target.counts().items():
                totals[kind] += count
        return totals

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "lineage": self.lineage, "state_serial": self.serial,
                "drift": self.has_drift, "errors": self.has_errors, "summary": self.totals(),
                "targets": {name: t.to_json() for name, t in self.targets.items()}}


# -- comparing one target --------------------------------------------------------------
def compare_target(result: TargetDrift, target: Target, state: State, remote: RemoteCatalog) -> None:
    """Fill ``result`` with the differences between the state and the remote catalog."""
    comparer = Comparer(target)
    items = dict(remote.items)
    result.remote_count = len(items)
    for item in state.items(target.name):
        result.state_count += 1
        payload = items.pop((item.record, item.key), None)
        if payload is None:
            if comparer.expected_absent(item.payload):
                result.in_sync += 1
            else:
                result.missing.append((item.record, item.key, item.sku))
            continue
        fields = comparer.diff(item.payload, payload)
        if fields:
            result.changed.append(ItemDrift(item.record, item.key, item.sku, tuple(fields)))
        else:
            result.in_sync += 1
    result.unknown = sorted(((record, key, payload) for (record, key), payload in items.items()),
                            key=lambda entry: (entry[1], entry[0]))


def _read(targets: Sequence[Target], environ, tuning, transport, progress,
          known: Callable[[Target], Iterable[tuple[str, str]]]) -> dict[str, RemoteCatalog | ReconcilerError]:
    """Read the readable ``targets``; the ``known(target)`` items that a listing cannot
    reach are read one by one."""
    chosen = [t for t in targets if readable(t)]
    # only a provider that can read one item needs the keys
    keys = {t.name: list(known(t)) for t in chosen if get_provider(t.provider).capabilities.item_reads}
    return read_catalogs(chosen, environ=environ, tuning=tuning, transport=transport, progress=progress,
                         known=keys)


def incomplete_note(catalog: RemoteCatalog, known: str = "the state") -> str:
    return (f"{catalog.provider}: {catalog.incomplete}: the other items of {known} were read one by one, and "
            f"remote items unknown to {known} that the listing did not return cannot be found")


# -- drift -------------------------------------------------------------------------------------
def detect_drift(manifests: Manifests, state: State, names: Sequence[str] = (), *,
                 environ: Mapping[str, str] | None = None, tuning: Tuning | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 progress: Reporter | None = None) -> DriftReport:
    """Read the selected readable targets and compare them with the state; plan the
    manifests against the state for the pending counts. Raises for bad manifests or
    unknown targets; a target that cannot be read carries its ``error``."""
    selected = select_targets(manifests, names)
    plan = build_plan(manifests, state, list(selected), allow_mass_delete=True)
    remote = _read(list(selected.values()), environ, tuning, transport, progress, lambda t: state.hashes(t.name))
    report = DriftReport(state.lineage, state.serial, {})
    for name, target in selected.items():
        result = TargetDrift(name, target.provider, readable(target))
        result.pending = plan.targets[name].summary
        result.pending_jobs = len(state.pending_jobs(name))
        if not result.readable:
            result.note = not_readable_note(target)
        else:
            catalog = remote[name]
            if isinstance(catalog, ReconcilerError):
                result.error = str(catalog)
            else:
                compare_target(result, target, state, catalog)
                if catalog.incomplete:
                    result.note = incomplete_note(catalog)
        report.targets[name] = result
    return report


# -- plan --refresh -------------------------------------------------------------------------------
def refresh_state(manifests: Manifests, state: State, names: Sequence[str] = (),
                  reporter: Reporter | None = None, *, environ: Mapping[str, str] | None = None,
                  tuning: Tuning | None = None, transport: httpx.AsyncBaseTransport | None = None) -> State:
    """The state to plan against with drift folded in (see the module doc). Raises
    :class:`DriftError` when a readable target cannot be read: a plan from a partly
    refreshed state would not repair what it claims to."""
    say = reporter or (lambda line: None)
    selected = select_targets(manifests, names)
    check_identities(state, selected)  # before reading a catalog the state's items are not of
    remote = _read(list(selected.values()), environ, tuning, transport, say, lambda t: state.hashes(t.name))
    errors = [f"{name}: {result}" for name, result in remote.items() if isinstance(result, ReconcilerError)]
    if errors:
        raise DriftError("cannot refresh the state:\n  " + "\n  ".join(errors))
    refreshed = state.snapshot()
    for name, target in selected.items():
        if not readable(target):
            say(f"{name}: {target.provider} cannot be read; planning against the state as it is")
            continue
        result = TargetDrift(name, target.provider, True)
        compare_target(result, target, state, remote[name])
        if remote[name].incomplete:
            say(f"{name}: {incomplete_note(remote[name])}")
        refreshed.overwrite(
            name,
            [(drift.record, drift.key, fold(state.item(name, drift.record, drift.key).payload, list(drift.fields)))
             for drift in result.changed],
            [(record, key) for record, key, _ in result.missing],
            ignore=tuple(target.ignore_fields),
        )
        counts = result.counts()
        if result.drifted:
            say(f"{name}: refreshed: {counts['changed']} changed remotely (the plan restores them), "
                f"{counts['missing']} missing remotely (the plan creates them again), "
                f"{counts['unknown']} remote items unknown to the state (left out; "
                f"`reconciler import -t {name}` adopts them)")
        else:
            say(f"{name}: refreshed: no drift ({result.in_sync} items in sync)")
    return refreshed


# -- import -----------------------------------------------------------------------------------------
@dataclass
class ImportResult:
    target: str
    provider: str
    read: int = 0
    new: int = 0
    overwritten: int = 0
    unchanged: int = 0
    not_in_manifests: int = 0
    missing_remotely: int = 0
    forgotten: int = 0  # items confirmed at the target's previous catalog (its identity changed)
    note: str | None = None  # what the read could not see (a listing that stops short)

    @property
    def adopted(self) -> int:
        return self.new + self.overwritten

    def lines(self) -> list[str]:
        out = [f"{self.target} ({self.provider}): read {self.read} remote items; adopted {self.adopted} "
               f"({self.new} new to the state, {self.overwritten} already in the state and overwritten with "
               f"the remote payload); {self.unchanged} already matched the state."]
        if self.not_in_manifests:
            out.append(f"  {self.not_in_manifests} adopted items are not in the manifests: the next plan "
                       "deletes them (max_delete_fraction guards it).")
        if self.forgotten:
            out.append(f"  {self.forgotten} items of the state were confirmed at the target's previous catalog "
                       "and are not in this one: forgotten (the next plan creates those the manifests declare).")
        if self.missing_remotely:
            out.append(f"  {self.missing_remotely} items of the state are missing remotely (left as they are; "
                       f"`reconciler drift -t {self.target}` lists them).")
        if self.note:
            out.append(f"  {self.note}.")
        return out


def importable(manifests: Manifests, names: Sequence[str]) -> dict[str, Target]:
    """The named targets, if every one can be imported (read); a ConfigError otherwise."""
    if not names:
        raise ConfigError("import needs a target: reconciler import -t TARGET")
    selected = select_targets(manifests, names)
    refused = [f"{name} ({t.provider})" for name, t in selected.items() if not readable(t)]
    if refused:
        raise ConfigError(f"cannot import {', '.join(refused)}: the provider cannot read its remote catalog, so "
                          f"there is nothing to adopt (readable providers: {readable_providers()})")
    return selected


def import_catalog(manifests: Manifests, state: State, names: Sequence[str], *,
                   environ: Mapping[str, str] | None = None, tuning: Tuning | None = None,
                   transport: httpx.AsyncBaseTransport | None = None,
                   progress: Reporter | None = None, lock_timeout: float = 0.0) -> list[ImportResult]:
    """Adopt every item of the named targets' remote catalogs into ``state`` (holding
    their locks, waiting up to ``lock_timeout`` seconds for them)."""
    selected = importable(manifests, names)
    wanted_plan = build_plan(manifests, State.empty(), list(selected), allow_mass_delete=True)
    # the items a listing cannot reach are looked for one by one: those of the state and of the manifests
    remote = _read(list(selected.values()), environ, tuning, transport, progress,
                   lambda t: {*state.hashes(t.name), *((c.record, c.key) for c in wanted_plan.targets[t.name].changes)})
    errors = [f"{name}: {result}" for name, result in remote.items() if isinstance(result, ReconcilerError)]
    if errors:
        raise DriftError("nothing was imported:\n  " + "\n  ".join(errors))
    results = []
    with state.locked(f"reconciler import (pid {os.getpid()})", list(selected), lock_timeout):
        for name, target in selected.items():
            catalog: RemoteCatalog = remote[name]  # type: ignore[assignment]
            comparer = Comparer(target)
            wanted = {(c.record, c.key): c.after for c in wanted_plan.targets[name].changes}
            result = ImportResult(name, target.provider, read=len(catalog.items))
            if catalog.incomplete:
                result.note = incomplete_note(catalog, "the state and the manifests")
            rows = []
            held = {(item.record, item.key): item for item in state.items(name)}
            if state.identities().get(name, identity(target)) != identity(target):
                # the state's items of it are another catalog's: only those read here stay
                gone = [item for at, item in held.items() if at not in catalog.items]
                result.forgotten = state.remove(gone)
                held = {at: item for at, item in held.items() if at in catalog.items}
            for (record, key), payload in catalog.items.items():
                old = held.get((record, key))
                desired = wanted.get((record, key))
                if desired is None:
                    result.not_in_manifests += 1
                payload = comparer.adoptable(payload, desired, old.payload if old else None)
                if old is None:
                    result.new += 1
                elif comparer.diff(old.payload, payload):
                    result.overwritten += 1
                else:
                    result.unchanged += 1
                    continue
                rows.append((record, key, old.sku if old else key, payload))
            result.missing_remotely = len(held.keys() - catalog.items.keys())
            if rows:
                state.adopt(name, rows, tuple(target.ignore_fields))
            state.record_identity(name, identity(target))
            results.append(result)
    return results
