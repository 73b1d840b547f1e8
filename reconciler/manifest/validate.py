"""Checks that need more than one item, and the validated product stream.

:func:`catalog` streams every valid product once, with the targets it is routed to,
while collecting every problem: per-item ones from the models, and cross-item ones
found here (a sku or target defined twice, a product naming an unknown target, a
product lacking what a target's API requires, two products with the same item key at
one target). The planner and ``reconciler validate`` consume the same stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from reconciler.errors import ManifestError
from reconciler.manifest.loader import Location, Manifests, parse_product, raw_products
from reconciler.manifest.models import Product, Target
from reconciler.mapping import missing_fields
from reconciler.providers import get_provider


@dataclass(frozen=True, slots=True)
class Routed:
    product: Product
    where: Location
    targets: tuple[Target, ...]


def check_targets(manifests: Manifests) -> None:
    """Settings and auth keys each target's provider needs (values are not resolved)."""
    for name, target in manifests.targets.items():
        where = manifests.target_locations[name]
        provider = get_provider(target.provider)
        for key in provider.setting_keys:
            if key not in target.settings:
                manifests.problems.append(where.problem(f"target {name!r}: settings.{key} is required by {target.provider}"))
        for key in provider.auth_keys:
            if key not in target.auth:
                manifests.problems.append(where.problem(f"target {name!r}: auth.{key} is required by {target.provider}"))
        for key in target.ignore_fields:
            if not isinstance(key, str) or not key:
                manifests.problems.append(where.problem(f"target {name!r}: ignore_fields must be field names"))


def catalog(manifests: Manifests) -> Iterator[Routed]:
    """Stream valid products with their targets; problems go to ``manifests.problems``."""
    check_targets(manifests)
    targets = tuple(manifests.targets.values())
    known = set(manifests.target_locations)
    seen: dict[str, Location] = {}
    keyed = {t.name: {} for t in targets if t.provider == "venddor"}  # key is not the sku
    problems = manifests.problems
    for where, raw in raw_products(manifests):
        product, found = parse_product(raw, where)
        if product is None:
            problems.extend(found)
            continue
        sku = product.sku
        first = seen.get(sku)
        if first is not None:
            problems.append(where.problem(f"duplicate sku, first defined at {first.file}:{first.line}", sku))
            continue
        seen[sku] = where
        named = (product.targets or []) + list(product.overrides or ())
        unknown = [name for name in named if name not in known]
        if unknown:
            problems.append(where.problem(f"unknown target {', '.join(map(repr, unknown))}", sku))
        routed = tuple(t for t in targets if t.wants(product))
        bad = False
        for target in routed:
            for message in missing_fields(target, product):
                problems.append(where.problem(message, sku))
                bad = True
            if target.name in keyed and product.gtin:
                other = keyed[target.name].setdefault(product.gtin, sku)
                if other != sku:
                    problems.append(where.problem(
                        f"target {target.name}: gtin {product.gtin} is also the key of sku {other}", sku))
                    bad = True
        if not bad and not unknown:
            yield Routed(product, where, routed)


def validate(manifests: Manifests) -> int:
    """Run every check; raise :class:`ManifestError` with all problems. Returns the
    number of valid products."""
    count = sum(1 for _ in catalog(manifests))
    if manifests.problems:
        raise ManifestError(manifests.problems)
    return count


__all__ = ["Routed", "catalog", "check_targets", "validate"]
