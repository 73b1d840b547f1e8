"""The outcome of ``apply --format json``: a machine-readable report of what an apply
did, for CI and other tools (the progress and the plan go to stderr meanwhile).

    {"format_version": 1, "outcome": "applied", "error": null, "seconds": 0.5, "wait_seconds": 0.0,
     "totals": {"total": 98, "confirmed": 56, "accepted": 42, "failed": 0, "pending": 0, ...},
     "targets": {"shop-eu": {"provider": "…", "total": 15, "confirmed": 0, "accepted": 15,
                             "failed": 0, ..., "stopped": null,
                             "failed_items": [{"sku": …, "record": …, "action": …,
                                               "key": …, "reason": …}]}}}

``total`` counts the target's planned changes and the items of its asynchronous jobs
left pending by an earlier apply; ``confirmed`` items the destination said it applied,
``accepted`` items it only acknowledged (no final per-item result: ``reconciler status``
lists them). ``outcome`` is ``applied`` (every change confirmed, accepted or pending),
``failed`` (an item failed or a target stopped: exit code 1), ``no_changes``,
``cancelled`` (the answer was not ``yes``) or ``error`` (nothing applied: ``error`` says
why, with a ``kind`` a script can test, e.g. ``stale_plan`` when the state moved since a
saved plan was made). ``wait_seconds`` is wall time, per target and for the apply: the
time during which a request waited for a rate window or a pause (waits that overlap
count once, so the apply's is not the sum of its targets').
"""
from __future__ import annotations

from typing import Any

from reconciler.apply.result import ApplyResult, TargetResult
from reconciler.errors import ConfigError, ManifestError, StalePlanError, StateError

FORMAT_VERSION = 1
COUNTS = ("confirmed", "accepted", "failed", "pending", "local", "not_sent", "requests", "items_sent", "polls",
          "retried")


def error_kind(error: Exception) -> str:
    """A stable name for what went wrong, most specific first."""
    from reconciler.plan.planner import MassDeleteError

    for cls, kind in ((StalePlanError, "stale_plan"), (MassDeleteError, "mass_delete"), (ManifestError, "manifest"),
                      (ConfigError, "config"), (StateError, "state")):
        if isinstance(error, cls):
            return kind
    return "error"


def _target(result: TargetResult, failures: list[dict[str, str]]) -> dict[str, Any]:
    counts = {key: getattr(result, key) for key in COUNTS}
    return {"provider": result.provider, "total": result.total, **counts,
            "wait_seconds": round(result.wait_seconds, 3), "seconds": round(result.seconds, 3),
            "stopped": result.error, "failed_items": failures}


def outcome(result: ApplyResult | None, *, cancelled: bool = False, error: Exception | None = None) -> dict[str, Any]:
    """The report of an apply that ended with ``result`` (None: nothing was sent)."""
    targets: dict[str, Any] = {}
    if result is not None:
        failed: dict[str, list[dict[str, str]]] = {name: [] for name in result.targets}
        for f in result.failures:
            failed.setdefault(f.target, []).append(
                {"sku": f.sku, "record": f.record, "action": f.action, "key": f.key, "reason": f.reason})
        targets = {name: _target(t, failed[name]) for name, t in result.targets.items()}
    if error is not None:
        kind = "error"
    elif cancelled:
        kind = "cancelled"
    elif not targets:
        kind = "no_changes"
    else:
        kind = "applied" if result.ok else "failed"
    return {
        "format_version": FORMAT_VERSION,
        "outcome": kind,
        "error": None if error is None else {"kind": error_kind(error), "message": str(error)},
        "seconds": round(result.seconds, 3) if result is not None else 0.0,
        "wait_seconds": round(result.wait_seconds, 3) if result is not None else 0.0,
        "totals": {"total": sum(t["total"] for t in targets.values()),
                   **{key: sum(t[key] for t in targets.values()) for key in COUNTS}},
        "targets": targets,
    }
