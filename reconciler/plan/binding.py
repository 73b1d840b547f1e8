"""What binds a saved plan, and the state, to the destinations they were made for.

A target's *fingerprint*, recorded per target in a saved plan, is a short digest of
each part of what decides where its changes go: its provider, its base URL and each
of its settings. Never its ``auth``: a plan file must not hold credentials (and they
may rotate between plan and apply). ``apply PLANFILE`` compares it with the target as
the manifests define it now and refuses, naming the parts that changed, before
anything is sent: a plan reviewed for one catalog is never sent to another.

A target's *identity*, recorded per target in the state by the first write to it
(apply, import), names the remote catalog its items were confirmed at: the provider,
the base URL and the settings the provider declares as naming the catalog
(``Provider.identity_settings``, e.g. Meta's ``catalog_id``). When the manifests
point a target whose items the state holds at another catalog, planning is refused,
naming both: the new catalog would be diffed against the old one's items.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Mapping

import orjson
from pydantic import ValidationError

from reconciler.errors import TargetMovedError
from reconciler.providers import get_provider

if TYPE_CHECKING:
    from reconciler.manifest.models import Target
    from reconciler.state import State


def base_url(target: "Target") -> str:
    """Where the manifests send the target's requests: its declared ``base_url`` (not
    where ``--with-sandbox`` points it for one command) or its provider's default."""
    return (target.declared_base_url or get_provider(target.provider).default_base_url).rstrip("/")


def fingerprint(target: "Target") -> dict[str, str]:
    """``{part: digest}`` for the provider, the base URL and each setting (as the
    provider's settings model reads it, so that ``1`` and ``"1"`` are one value)."""
    settings = dict(target.settings)
    try:
        settings = get_provider(target.provider).settings_model.model_validate(settings).model_dump(mode="json")
    except ValidationError:
        pass  # invalid settings are the planner's to report; their raw values still fingerprint them
    parts = {"provider": target.provider, "base_url": base_url(target),
             **{f"settings.{name}": value for name, value in sorted(settings.items())}}
    return {name: hashlib.blake2b(orjson.dumps([name, value], option=orjson.OPT_SORT_KEYS),
                                  digest_size=8).hexdigest() for name, value in parts.items()}


def changed_parts(then: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """The parts of two fingerprints that differ (including those on one side only)."""
    return sorted(name for name in then.keys() | now.keys() if then.get(name) != now.get(name))


def identity(target: "Target") -> dict[str, str]:
    """The remote catalog a target names: provider, base URL, identity settings."""
    names = get_provider(target.provider).identity_settings
    return {"provider": target.provider, "base_url": base_url(target),
            **{name: str(target.settings.get(name)) for name in names}}


def describe(identity: Mapping[str, str]) -> str:
    """``PROVIDER at BASE_URL, SETTING VALUE, ...`` (e.g. ``..., catalog_id 1234567890``)."""
    rest = [f"{name} {value}" for name, value in identity.items() if name not in ("provider", "base_url")]
    return ", ".join([f"{identity.get('provider')} at {identity.get('base_url')}", *rest])


def check_identities(state: "State", targets: Mapping[str, "Target"]) -> None:
    """Refuse (all at once) the targets whose state items were confirmed at another
    catalog than the one the manifests now name. A target without items in the state
    is free to move: the next write records its new identity."""
    recorded = state.identities()
    if not recorded:
        return
    held = state.targets()
    problems = []
    for name, target in targets.items():
        then, now = recorded.get(name), identity(target)
        if then is None or then == now or not held.get(name):
            continue
        ways = [f"forget them with `reconciler state rm -t {name} --all` (the next plan creates every item "
                "at the new catalog)"]
        if get_provider(target.provider).capabilities.readable:
            ways.append(f"adopt the new catalog's items with `reconciler import -t {name}`")
        ways.append("or point the target back")
        problems.append(
            f"target {name} now names another catalog than the one its {held[name]} items in the state were "
            f"confirmed at:\n    then: {describe(then)}\n    now:  {describe(now)}\n  A plan would compare the new "
            f"catalog with the old one's items. Either {', '.join(ways[:-1])}, {ways[-1]}.")
    if problems:
        raise TargetMovedError("\n".join(problems))


def record_identities(state: "State", targets: Mapping[str, "Target"]) -> None:
    """For a writer about to change ``targets`` (under its lock): refuse moved ones,
    then record the identity of each whose identity is new."""
    check_identities(state, targets)
    recorded = state.identities()
    for name, target in targets.items():
        now = identity(target)
        if recorded.get(name) != now:
            state.record_identity(name, now)
