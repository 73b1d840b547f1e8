"""``reconciler status --verify``: the items a destination only accepted, read back.

An item is *accepted* when its destination acknowledged receipt without a final
result per item (a queue, an HTTP 202): the state recorded what was sent and lists the
item in its ``accepted`` table. Where the provider can read one item by its key
(``capabilities.item_reads``), each is read (:func:`reconciler.drift.reader.read_items`)
and compared as drift compares (:class:`reconciler.drift.compare.Comparer`: blind to
what an API reads back differently, to ``ignore_fields`` and to fields another system
may own):

* a create or update found as the state holds it is **confirmed**;
* one missing, or found with other values, **failed**: the state takes what was read
  (no item; or its payload with the remote values of the fields that differ), so the
  next plan proposes the item again, and the failure says what was read;
* a delete not found is confirmed; one still found failed, and the state takes the
  item back as read, so the next plan deletes it again.

A target whose provider cannot read an item keeps its accepted items (VTEX Ads: its
API has no read endpoint at all), and says so.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import httpx

from reconciler.apply.tuning import Tuning
from reconciler.drift.compare import Comparer, fold
from reconciler.drift.reader import RemoteCatalog, read_items
from reconciler.errors import ReconcilerError
from reconciler.manifest.models import Target
from reconciler.providers import get_provider
from reconciler.state import State

MISSING = "accepted, but not found when read back"


@dataclass
class Verification:
    """What ``status --verify`` made of one target's accepted items."""

    target: str
    provider: str
    confirmed: int = 0
    failed: int = 0
    unverifiable: int = 0          # accepted items its provider cannot read back
    error: str | None = None       # the reads failed: nothing changed
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.error:
            return f"{self.target}: could not read back its accepted items: {self.error}"
        if self.unverifiable:
            return (f"{self.target}: {self.unverifiable} accepted items stay accepted: {self.provider} cannot be "
                    "read back (its API has no endpoint to read an item)")
        return f"{self.target}: read back: {self.confirmed} confirmed, {self.failed} failed"


def verify_accepted(state: State, targets: Mapping[str, Target], names: Sequence[str], *,
                    environ: Mapping[str, str] | None = None, tuning: Tuning | None = None,
                    transport: httpx.AsyncBaseTransport | None = None, progress=None,
                    lock_timeout: float = 0.0) -> list[Verification]:
    """Read back the accepted items of the ``names`` targets (holding their locks) and
    record what they are (the module doc)."""
    results: list[Verification] = []
    with state.locked(f"reconciler status --verify (pid {os.getpid()})", list(names) or None, lock_timeout):
        accepted = {name: rows for name in sorted(names) if (rows := state.accepted(name))}
        readable = {}
        for name, rows in accepted.items():
            check = Verification(name, targets[name].provider)
            results.append(check)
            if get_provider(check.provider).capabilities.item_reads:
                readable[name] = check
            else:
                check.unverifiable = len(rows)
        reads = read_items({name: [(r["record"], r["key"]) for r in accepted[name]] for name in readable},
                           targets, environ=environ, tuning=tuning, transport=transport, progress=progress)
        for name, check in readable.items():
            remote = reads[name]
            if isinstance(remote, ReconcilerError):
                check.error = str(remote)
                continue
            _record(state, targets[name], accepted[name], remote, check)
    return results


def _record(state: State, target: Target, rows: list[dict], remote: RemoteCatalog, check: Verification) -> None:
    comparer = Comparer(target)
    confirmed, failed = [], []
    for row in rows:
        record, key, sku, action = row["record"], row["key"], row["sku"], row["action"]
        found = remote.items.get((record, key))
        held = state.item(target.name, record, key)
        if action == "delete":
            if found is None:
                confirmed.append((record, key))
            else:
                failed.append((record, key, sku, action, "deleted, but still found when read back",
                               comparer.adoptable(found), None))
            continue
        if held is None:  # forgotten since (`state rm`): nothing left to verify
            continue
        if found is None:
            failed.append((record, key, sku, action, MISSING, None, held.remote_id))
            continue
        drifts = comparer.diff(held.payload, found)
        if not drifts:
            confirmed.append((record, key))
            continue
        fields = ", ".join(d.field for d in drifts)
        failed.append((record, key, sku, action, f"accepted, but read back with other values ({fields})",
                       fold(held.payload, drifts), held.remote_id))
    state.verified(target.name, confirmed, failed, tuple(target.ignore_fields))
    check.confirmed, check.failed = len(confirmed), len(failed)
