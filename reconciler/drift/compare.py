"""Comparing what a destination holds with what the state says it confirmed.

Both payloads are in the mapping's shape (the providers' ``decode_read`` converts what
the API returns: Meta's prices to integer minor units, Bloomreach's ``properties``,
Voucherify's ``{source_id, metadata}``). Before comparing, both sides are normalised
for what an API legitimately returns differently:

* a field or nested key holding ``null`` is absent (Bloomreach and Voucherify blank by
  ``null``; Voucherify cannot remove a metadata key, only null it);
* for ``meta_catalog``, ``""`` and ``[]`` are absent too (an empty string is how a
  Meta field is unset, and the Graph API omits unset fields);
* numbers compare by value (``8`` equals ``8.0``), booleans only with booleans.

Whatever differs after that is drift, field by field (a nested object, such as
Voucherify's ``metadata``, key by key: ``metadata.season``), except:

* a target's ``ignore_fields`` (top-level names, or dotted paths such as
  ``metadata.season``) are never compared;
* fields the remote holds that the state does not, where another system may own
  them: Bloomreach in ``partial`` update mode merges properties, so a property is
  ours only if our mapping can produce it (the default property names, or those of
  ``settings.fields``); Voucherify merges metadata, so a metadata key the state never
  held is not ours. For Meta (the read asks only for mapped fields) and Bloomreach in
  ``full`` mode (a full replace owns every property) every extra field is drift.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal

from reconciler.manifest.models import Target

Path = tuple[str, ...]
BLOOMREACH_PROPERTIES = ("title", "url", "image", "price", "brand", "category", "availability",
                         "description", "stock")


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


def normalise(provider: str, payload: dict) -> dict:
    payload = _drop_nulls(payload or {})
    if provider == "meta_catalog":
        payload = {k: v for k, v in payload.items() if v != "" and v != []}
    return payload


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


def mapped_properties(target: Target) -> set[str]:
    """The Bloomreach property names our mapping can produce for this target."""
    fields = target.settings.get("fields")
    if isinstance(fields, dict):
        return {str(v) for v in fields.values() if v}
    if isinstance(fields, list):
        return {str(v) for v in fields}
    return set(BLOOMREACH_PROPERTIES)


def ownership(target: Target) -> Callable[[Path], bool]:
    """Whether a field only the remote holds is ours (so its presence is drift)."""
    if target.provider == "bloomreach" and (target.settings.get("update_mode") or "partial") == "partial":
        names = mapped_properties(target)
        return lambda path: len(path) > 1 or path[0] in names
    if target.provider == "voucherify":
        return lambda path: len(path) == 1
    return lambda path: True


def _ignored(path: Path, ignore: frozenset[str]) -> bool:
    return any(".".join(path[: i + 1]) in ignore for i in range(len(path)))


class Comparer:
    """Compares payloads of one target (its provider, ignore_fields and ownership)."""

    def __init__(self, target: Target):
        self.provider = target.provider
        self.ignore = frozenset(target.ignore_fields)
        self.owned = ownership(target)

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
        """A state item that a read legitimately does not list: Voucherify lists only
        products with metadata, so one whose metadata is all null reads as absent."""
        if self.provider != "voucherify":
            return False
        return not normalise(self.provider, state_payload).get("metadata")

    def adoptable(self, remote_payload: dict, *known: dict | None) -> dict:
        """The part of a remote payload that is ours to adopt into the state: where
        another system may own fields (see the module doc), only those our mapping
        produces or the manifests / the state already hold for this item. An item
        neither describes is adopted whole."""
        known_payloads = [p for p in known if p]
        if not known_payloads:
            return remote_payload
        if self.provider == "voucherify":
            keys = {k for p in known_payloads for k in (p.get("metadata") or {})}
            metadata = {k: v for k, v in (remote_payload.get("metadata") or {}).items() if k in keys}
            return {**remote_payload, "metadata": metadata}
        names = {k for p in known_payloads for k in p}
        return {k: v for k, v in remote_payload.items() if k in names or self.owned((k,))}


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
