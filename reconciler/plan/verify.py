"""``apply PLANFILE``: a saved plan is what gets applied, or nothing is.

:func:`verify` takes a saved plan that :func:`reconciler.plan.file.read` found intact
and well formed, and refuses it, naming the first thing that differs, unless:

1. each of its targets is still declared, with the fingerprint it was made for
   (provider, base URL, settings; see :mod:`reconciler.plan.binding`);
2. the state is the one it was made from (lineage, and each of its targets' serial);
3. the plan made again from the current manifests, targets and state (refreshed
   again from the remote catalogs, for a plan made with ``--refresh``) has exactly
   its changes. The mass-delete guard is part of making it again: a plan deleting
   more than ``max_delete_fraction`` of a target passes only if it was made with
   ``--allow-mass-delete`` and apply is given ``--allow-mass-delete`` too.

The comparison goes by digest first: per target, the digest of the change lines the
file holds (computed while it was read) against that of the new plan's changes,
serialised exactly as a saved plan's lines. Only a target whose digests differ is
read again from the file, a change at a time beside the new plan's, to name the
first difference in a reviewer's words. No second plan is held in memory. The plan
returned, made again, equals the saved one change for change.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

import orjson

from reconciler.errors import ConfigError, PlanFileError, StalePlanError
from reconciler.manifest.loader import Manifests
from reconciler.plan.binding import changed_parts, fingerprint
from reconciler.plan.file import Saved, saved_lines, target_digest
from reconciler.plan.model import Change, Changes, Plan
from reconciler.plan.planner import MassDeleteError, build_plan, change_order
from reconciler.plan.render import value_text
from reconciler.state import State

AGAIN = "Nothing was sent: make a new plan (`reconciler plan -o FILE`), review it and apply that."


def verify(saved: Saved, manifests: Manifests, state: State, names: Sequence[str] = (),
           allow_mass_delete: bool = False, workers: int | None = None,
           refresh: Callable[[State, Sequence[str]], State] | None = None,
           cache: str | os.PathLike | bool | None = None) -> Plan:
    """The saved plan (of the ``names`` targets among its own, all when empty), made
    again and found equal; :class:`StalePlanError` (or :class:`MassDeleteError`)
    naming the first difference otherwise. ``refresh(state, names)``: the state with
    the remote catalogs' drift folded in, for a plan made with ``--refresh``.
    ``cache``: the plan cache, as for :func:`~reconciler.plan.planner.build_plan`."""
    plan = saved.plan
    unknown = [n for n in names if n not in plan.targets]
    if unknown:
        raise ConfigError(f"the plan {saved.path} has no target {', '.join(unknown)} "
                          f"(its targets: {', '.join(plan.targets) or 'none'})")
    selected = [n for n in plan.targets if not names or n in names]
    _check_targets(saved, manifests, selected)
    check_fresh(plan, state, selected)
    if plan.refreshed:
        if refresh is None:
            raise ConfigError(f"the plan {saved.path} was made with --refresh: checking it needs the remote "
                              "catalogs read again")
        state = refresh(state, selected)
    try:
        fresh = build_plan(manifests, state, selected, allow_mass_delete=plan.allow_mass_delete and allow_mass_delete,
                           workers=workers, cache=cache)
    except MassDeleteError as exc:
        how = ("it was made with --allow-mass-delete: apply it with --allow-mass-delete too" if plan.allow_mass_delete
               else "a plan that does must be made with --allow-mass-delete, and applied with it")
        raise MassDeleteError(exc.refused, f"Nothing was sent: {how}.") from None
    for name in selected:
        difference = _difference(saved, name, fresh.targets[name].changes, fresh.targets[name].unchanged)
        if difference:
            raise StalePlanError(f"the plan {saved.path} is not what the manifests and state give now: target "
                                 f"{name}: {difference}. {AGAIN}")
    return fresh


def _check_targets(saved: Saved, manifests: Manifests, selected: Sequence[str]) -> None:
    missing = [n for n in selected if n not in manifests.targets]
    if missing:
        raise StalePlanError(f"the plan names target {', '.join(missing)}, which the manifests no longer "
                             f"define. {AGAIN}")
    problems = []
    for name in selected:
        then, target = saved.plan.targets[name], manifests.targets[name]
        changed = changed_parts(then.fingerprint or {}, fingerprint(target))
        if then.provider != target.provider:
            changed = ["provider", *(part for part in changed if part != "provider")]
        if changed:
            problems.append(f"target {name}: its {', '.join(changed)} changed since the plan was made for it")
    if problems:
        raise StalePlanError("the plan was made for other destinations than the manifests now name (a plan is "
                             "bound to its targets' provider, base URL and settings):\n  " + "\n  ".join(problems)
                             + f"\n{AGAIN}")


def check_fresh(plan: Plan, state: State, selected: Sequence[str]) -> None:
    """Refuse ``plan`` unless it was made from ``state`` as it is now: same lineage
    (or none, made before the state existed) and, for each ``selected`` target, the
    same serial. (Another target moving on does not make it stale.)"""
    serials = state.target_serials(selected)
    if plan.lineage is None:  # made before any state existed
        moved = [n for n in selected if serials[n]]
    elif plan.lineage != state.lineage:
        raise StalePlanError(f"the plan was made from another state (lineage {plan.lineage}, this state is "
                             f"{state.lineage}). {AGAIN}")
    elif plan.target_serials is None:  # a plan without its targets' serials: the state's serial decides
        if plan.serial != state.serial:
            raise StalePlanError(f"the state changed since the plan was made (plan at serial {plan.serial}, state "
                                 f"now at {state.serial}). {AGAIN}")
        return
    else:
        moved = [n for n in selected if serials[n] != plan.target_serials.get(n, 0)]
    if moved:
        then = plan.target_serials or {}
        raise StalePlanError("the state changed since the plan was made (an apply, status, import or state rm ran "
                             "since): " + ", ".join(f"target {n} is at serial {serials[n]}, the plan was made at "
                                                    f"{then.get(n, 0)}" for n in moved) + f". {AGAIN}")


def _difference(saved: Saved, name: str, changes: Changes, unchanged: int) -> str | None:
    """The first difference between the file's changes of target ``name`` and
    ``changes`` (the plan made again); None when there is none."""
    digest = target_digest()
    for line in saved_lines(name, changes):
        digest.update(line)
    if digest.digest() == saved.digests[name]:
        summary = saved.summaries[name]
        if summary["unchanged"] != unchanged:
            return f"the plan counts {summary['unchanged']} unchanged items, the manifests and state give {unchanged}"
        return None
    theirs = (change for _, change in saved.target_changes(name))
    try:
        return _first_difference(theirs, changes, change_order(saved.plan.targets[name].provider))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlanFileError(f"{saved.path} changed while it was read: {exc}") from None


def _first_difference(theirs: Iterator[Change], ours: Sequence[Change], order) -> str:
    """Walk the file's changes and the new plan's, both in plan order, to the first
    that differ; the description counts the differences after it too."""
    mine = iter(ours)
    a, b = next(theirs, None), next(mine, None)
    first, count = None, 0
    while a is not None or b is not None:
        if a is not None and b is not None and order(a) == order(b):
            found = None if orjson.dumps(a.to_json()) == orjson.dumps(b.to_json()) else _same_item(a, b)
            a, b = next(theirs, None), next(mine, None)
        elif b is None or (a is not None and order(a) < order(b)):
            found = f"the plan says {_verb(a)}; the manifests and state now give no change for it"
            a = next(theirs, None)
        else:
            found = f"the manifests and state now give {_verb(b)}, which the plan does not have"
            b = next(mine, None)
        if found:
            first, count = first or found, count + 1
    if first is None:  # the same changes, written in another order or form
        return "its changes are not written as reconciler writes them (their order or form)"
    return first + (f" (and {count - 1} more difference{'s' if count > 2 else ''})" if count > 1 else "")


def _verb(change: Change) -> str:
    return f"{change.action} {change.sku} ({change.record})"


def _same_item(theirs: Change, ours: Change) -> str:
    """How the file's change of an item differs from the new plan's."""
    says = f"the plan says {theirs.action} {theirs.sku}"
    if theirs.action != ours.action:
        return f"the plan says {_verb(theirs)}; the manifests and state now give {ours.action}"
    for side, whose in (("after", "the manifests now give"), ("before", "the state now holds")):
        mine, other = getattr(theirs, side) or {}, getattr(ours, side) or {}
        for field in sorted(mine.keys() | other.keys()):
            if field in mine and field in other and orjson.dumps(mine[field]) == orjson.dumps(other[field]):
                continue
            now = value_text(other[field]) if field in other else "no value"
            if side == "before":
                was = value_text(mine[field]) if field in mine else "no value"
                return f"{says} from {field} {was}; {whose} {now}"
            if theirs.action == "update" and field in (theirs.before or {}):
                was = f"{value_text(theirs.before[field])} → "
            else:
                was = ""
            value = value_text(mine[field]) if field in mine else "no value"
            return f"{says} {field} {was}{value}; {whose} {now}"
    for what in ("key", "remote_id", "fields"):
        if getattr(theirs, what) != getattr(ours, what):
            return f"the plan's {what} of {_verb(theirs)} is not the one the manifests and state now give"
    return f"the plan's {_verb(theirs)} differs from the one the manifests and state now give"
