"""Plans: :mod:`~reconciler.plan.model` (what a plan is), :mod:`~reconciler.plan.planner`
(how one is made, without side effects), :mod:`~reconciler.plan.render` (how one is
shown: text, json, markdown) and :mod:`~reconciler.plan.file` (how one is saved)."""
from reconciler.plan.model import Change, FieldDiff, Plan, TargetPlan
from reconciler.plan.planner import MassDeleteError, build_plan

__all__ = ["Change", "FieldDiff", "MassDeleteError", "Plan", "TargetPlan", "build_plan"]
