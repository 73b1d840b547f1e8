"""Comparing what a destination holds with what the state says it confirmed.

Both payloads are in the mapping's shape (each provider's ``decode_read`` converts what
its API returns). Before comparing, both sides are normalised for what an API
legitimately returns differently:

* a field or nested key holding ``null`` is absent (APIs that blank or "delete" by
  ``null`` read it back so);
* then the provider's ``normalise_read`` (for instance: an API that unsets a field
  with ``""`` and omits unset fields reads ``""`` as absent);
* numbers compare by value (``8`` equals ``8.0``), booleans only with booleans.

Whatever differs after that is drift, field by field (a nested object, such as a
``metadata`` object, key by key: ``metadata.season``), except:

* a target's ``ignore_fields`` (top-level names, or dotted paths such as
  ``metadata.season``) are never compared;
* fields the remote holds that the state does not, where another system may own
  them: the provider's ``ownership(target)`` says which of those are ours (an API
  that merges fields, rather than replacing the item, shares it with other writers).
  By default every field is ours, so every extra field is drift.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterator, Literal

from reconciler.manifest.models import Target
from reconciler.providers import get_provider
from reconciler.providers.base import FieldPath as Path, Provider


@dataclass(frozen=True)
class FieldDrift:
    """One field that differs. ``kind``: ``changed`` (both hold it, differently),
    ``added`` (only the remote holds it), ``removed`` (only the state holds it)."""

    path: Path
    kind: Literal["changed", "added", "removed"]
    state: Any = None
    remote: Any = None

    @property
    def field(self) -> str:
        return ".".join(self.path)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"field": self.field, "kind": self.kind}
        if self.kind != "added":
            data["state"] = self.state
        if self.kind != "removed":
            data["remote"] = self.remote
        return data


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def normalise(provider: type[Provider], payload: dict) -> dict:
    return provider.normalise_read(_drop_nulls(payload or {}))


def same_value(a: Any, b: Any) -> bool:
    """JSON values equal up to number representation."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _ignored(path: Path, ignore: frozenset[str]) -> bool:
    return any(".".join(path[: i + 1]) in ignore for i in range(len(path)))


class Comparer:
    """Compares payloads of one target (its provider, ignore_fields and ownership)."""

    def __init__(self, target: Target):
        self.provider = get_provider(target.provider)
        self.ignore = frozenset(target.ignore_fields)
        self.owned = self.provider.ownership(target)

    def diff(self, state_payload: dict, remote_payload: dict) -> list[FieldDrift]:
        state = normalise(self.provider, state_payload)
        remote = normalise(self.provider, remote_payload)
        return list(self._diff((), state, remote))

    def _diff(self, prefix: Path, state: dict, remote: dict) -> Iterator[FieldDrift]:
        for name in sorted(state.keys() | remote.keys()):
            path = (*prefix, name)
            if _ignored(path, self.ignore):
                continue
            if name in state and name in remote:
                a, b = state[name], remote[name]
                if isinstance(a, dict) and isinstance(b, dict):
                    yield from self._diff(path, a, b)
                elif not same_value(a, b):
                    yield FieldDrift(path, "changed", a, b)
            elif name in state:
                yield FieldDrift(path, "removed", state[name], None)
            elif self.owned(path):
                yield FieldDrift(path, "added", None, remote[name])

    def expected_absent(self, state_payload: dict) -> bool:
        """A state item that a read legitimately does not list (an API that lists only
        items holding something, such as metadata that was all nulled)."""
        return self.provider.reads_as_absent(normalise(self.provider, state_payload))

    def adoptable(self, remote_payload: dict, *known: dict | None) -> dict:
        """The part of a remote payload that is ours to adopt into the state: where
        another system may own fields (see the module doc), only those our mapping
        produces or the manifests / the state already hold for this item. An item
        neither describes is adopted whole."""
        known_payloads = [p for p in known if p]
        if not known_payloads:
            return remote_payload
        return self.provider.adoptable(remote_payload, known_payloads, self.owned)


def fold(state_payload: dict, drifts: list[FieldDrift]) -> dict:
    """The state's payload with what the remote holds for the drifted fields: the
    payload a plan must start from to repair them."""
    payload = copy.deepcopy(state_payload)
    for drift in drifts:
        holder = payload
        for name in drift.path[:-1]:
            child = holder.get(name)
            if not isinstance(child, dict):
                child = holder[name] = {}
            holder = child
        if drift.kind == "removed":
            holder.pop(drift.path[-1], None)
        else:
            holder[drift.path[-1]] = copy.deepcopy(drift.remote)
    return payload
