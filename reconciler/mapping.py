"""From a product to the records a destination stores, whatever the destination.

``records(target, product)`` gives ``{record kind: payload}`` for one product at one
target: the provider's default mapping (``Provider.records``, in the provider's
folder), then the product's ``overrides`` for that target. Payloads are plain JSON
values, the shape in which they are hashed, diffed, stored in the state and handed to
providers, which then decide what goes on the wire. ``missing_fields`` lists what a
provider requires and the product lacks, and ``unknown_overrides`` the override keys a
provider does not take, so that a bad product fails in review rather than at apply.

The small helpers at the end (``present``, ``number``, ``category_path``) are shared by
the providers' mappings.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from reconciler.errors import suggestion
from reconciler.manifest.models import Product, Target
from reconciler.providers import get_provider
from reconciler.providers.base import Payloads


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys: equal payloads give equal bytes (digests and
    grouping are taken of these)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``1``, ``1.0`` and ``true`` all differ (Python's
    ``==`` says they are equal, which would hide such a change from a plan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (dict, list)):
        return canonical(a) == canonical(b)
    return a == b


def item_key(target: Target, product: Product) -> str:
    """The item key at this target: the product field its provider keys on (the sku,
    unless the provider says otherwise)."""
    return getattr(product, get_provider(target.provider).key_source)


def records(target: Target, product: Product) -> Payloads:
    payloads = get_provider(target.provider).records(product, target)
    overrides = (product.overrides or {}).get(target.name)
    if overrides:
        payloads = _with_overrides(payloads, overrides)
    return payloads


def _with_overrides(payloads: Payloads, overrides: dict[str, Any]) -> Payloads:
    """An override sets a field of every record that has it (of the first record when
    none has it); ``null`` removes the field."""
    payloads = {kind: dict(payload) for kind, payload in payloads.items()}
    first = next(iter(payloads.values()))
    for field, value in overrides.items():
        holders = [p for p in payloads.values() if field in p] or [first]
        for payload in holders:
            if value is None:
                payload.pop(field, None)
            else:
                payload[field] = value
    return payloads


def missing_fields(target: Target, product: Product) -> list[str]:
    """Why this product cannot go to this target, one message per reason."""
    provider = get_provider(target.provider)
    problems = []
    for name in provider.required_fields:
        value = getattr(product, name)
        if value is None or (not value and value != 0):  # absent or empty; a zero price is a price
            problems.append(f"target {target.name} ({target.provider}) requires {name}")
    problems.extend(f"target {target.name} ({target.provider}) {problem}"
                    for problem in provider.product_problems(product, target))
    return problems


def unknown_overrides(target: Target, overrides: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """``(key path, message)`` per key of a product's ``overrides`` for ``target`` that
    its provider does not take, with the closest key it does take."""
    allowed = get_provider(target.provider).overridable(target)
    if allowed is None:
        return []
    return [(("overrides", target.name, field),
             f"overrides.{target.name}: {target.provider} has no field {field!r} "
             f"({suggestion(field, sorted(allowed), 'it takes')})")
            for field in overrides if field not in allowed]


# -- helpers of the providers' mappings ------------------------------------------------------
def present(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload without its absent (``None``) fields."""
    return {k: v for k, v in payload.items() if v is not None}


def number(value: Decimal | None) -> int | float | None:
    """A decimal as a JSON number: an integer when it is whole."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def category_path(product: Product) -> str | None:
    """The categories as one path, root first: ``Home > Kitchen``."""
    return " > ".join(product.categories) if product.categories else None
