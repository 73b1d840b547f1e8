"""Checks of the targets, and ``reconciler validate``.

Per-product checks (the models, unknown target names, what each target's API
requires) run in :class:`reconciler.plan.stream.Evaluator`; checks across products
(a sku or an item key defined twice) run in :func:`reconciler.plan.planner.build_plan`,
which ``validate`` runs without a state.
"""
from __future__ import annotations

from reconciler.manifest.loader import Manifests
from reconciler.providers import get_provider


def check_targets(manifests: Manifests) -> None:
    """Settings and auth keys each target's provider needs (values are not resolved;
    unknown settings and bad values are refused when the target loads)."""
    for name, target in manifests.targets.items():
        where = manifests.target_locations[name]
        provider = get_provider(target.provider)
        for key in provider.settings_model.required():
            if key not in target.settings:
                manifests.problems.append(where.problem(f"target {name!r}: settings.{key} is required by {target.provider}",
                                                        path=("settings",)))
        for key in provider.auth_keys:
            if key not in target.auth:
                manifests.problems.append(where.problem(f"target {name!r}: auth.{key} is required by {target.provider}",
                                                        path=("auth",)))
