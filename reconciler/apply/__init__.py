"""Applying a plan: everything between a :class:`~reconciler.plan.Plan` and the
destinations that is not provider-specific (see :mod:`reconciler.apply.executor`).

* ``apply_plan(plan, targets, state, *, wait=True, reporter=None, environ=None)``
  carries a plan out and returns an :class:`ApplyResult`;
* ``settle(state, targets, names=None, *, reporter=None, environ=None, wait=False)``
  polls the outstanding asynchronous jobs and records what they became;
* :class:`Reporter` is the progress protocol (:class:`RichReporter` for a terminal,
  :class:`PlainReporter` otherwise, ``default_reporter()`` picks one).
"""
from reconciler.apply.executor import Tuning, apply_plan, settle
from reconciler.apply.report import NullReporter, PlainReporter, Reporter, RichReporter, default_reporter
from reconciler.apply.result import ApplyResult, Failure, TargetResult

__all__ = [
    "ApplyResult", "Failure", "NullReporter", "PlainReporter", "Reporter", "RichReporter", "TargetResult",
    "Tuning", "apply_plan", "default_reporter", "settle",
]
