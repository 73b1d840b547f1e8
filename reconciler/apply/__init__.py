"""Applying a plan: everything between a :class:`~reconciler.plan.Plan` and the
destinations that is not provider-specific.

* ``apply_plan(plan, targets, state, *, wait=True, reporter=None, environ=None,
  tuning=None, transport=None)`` carries a plan out and returns an :class:`ApplyResult`;
* ``settle(state, targets, names=None, *, reporter=None, environ=None, wait=False,
  tuning=None, transport=None)`` polls the outstanding asynchronous jobs and records
  what they became;
* :class:`Reporter` is the progress protocol (:class:`RichReporter` for a terminal,
  :class:`PlainReporter` otherwise, ``default_reporter()`` picks one);
* :class:`Tuning` holds the engine's knobs, :class:`RetryPolicy` the one retry policy.

The modules, by job: :mod:`~reconciler.apply.session` (an apply or a settle as a
whole), :mod:`~reconciler.apply.scheduling` (the targets together),
:mod:`~reconciler.apply.target` and :mod:`~reconciler.apply.workers` (one target's
run), :mod:`~reconciler.apply.http` (the HTTP rules), :mod:`~reconciler.apply.retry`
and :mod:`~reconciler.apply.requeue` (retries), :mod:`~reconciler.apply.polling`
(jobs), :mod:`~reconciler.apply.recording` (the state), :mod:`~reconciler.apply.batching`,
:mod:`~reconciler.apply.window`, :mod:`~reconciler.apply.report`, :mod:`~reconciler.apply.bars`,
:mod:`~reconciler.apply.result`.

The names below are imported when first used: the drift reader shares the HTTP rules
and the retry policy without loading the executor.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.apply.bars import RichReporter
    from reconciler.apply.report import NullReporter, PlainReporter, Reporter, default_reporter
    from reconciler.apply.result import ApplyResult, Failure, TargetResult
    from reconciler.apply.retry import RetryPolicy
    from reconciler.apply.session import apply_plan, settle
    from reconciler.apply.tuning import Tuning

_HOMES = {
    "apply_plan": "session", "settle": "session", "Tuning": "tuning", "RetryPolicy": "retry",
    "ApplyResult": "result", "Failure": "result", "TargetResult": "result",
    "NullReporter": "report", "PlainReporter": "report", "Reporter": "report", "RichReporter": "bars",
    "default_reporter": "report",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
