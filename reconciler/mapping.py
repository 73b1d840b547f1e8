"""From a product to the records a destination stores: SPEC's default mapping.

``records(target, product)`` gives ``{record kind: payload}`` for one product at one
target, after the provider's default mapping, ``settings.fields`` (Bloomreach) and the
product's ``overrides`` for that target. Payloads are plain JSON values, the shape in
which they are hashed, diffed, stored in the state and handed to providers, which then
decide what goes on the wire. ``missing_fields`` lists what a provider requires and the
product lacks, so that a bad product fails in review rather than at apply.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

import orjson

from reconciler.manifest.currencies import exponent
from reconciler.manifest.models import Product, Target

Payloads = dict[str, dict[str, Any]]


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


def _present(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _minor_units(value: Decimal | None, currency: str | None) -> int | None:
    if value is None:
        return None
    return int((value * 10 ** exponent(currency or "USD")).to_integral_value())


def _category_path(product: Product) -> str | None:
    return " > ".join(product.categories) if product.categories else None


def _vtex_ads(product: Product, target: Target) -> Payloads:
    records = {
        "product": _present({
            "product_sku": product.sku,
            "name": product.name,
            "url": product.url,
            "image_url": product.image_url,
            "categories": product.categories,
            "brand": product.brand,
            "gtins": [product.gtin] if product.gtin else None,
            "metadata": product.metadata or None,
            "tags": product.tags or None,
        })
    }
    # Inventory carries price and availability; without a price there is none to send.
    if product.price is not None:
        records["inventory"] = {
            "product_sku": product.sku,
            "price": _number(product.price),
            "promotional_price": _number(product.sale_price) if product.sale_price is not None else 0,
            "is_available": product.status == "active" and product.availability == "in stock",
        }
    return records


def _meta_catalog(product: Product, target: Target) -> Payloads:
    return {"product": _present({
        "name": product.name,
        "description": product.description,
        "url": product.url,
        "image_url": product.image_url,
        "brand": product.brand,
        "availability": product.availability,
        "condition": product.condition,
        "price": _minor_units(product.price, product.currency),
        "currency": product.currency,
        "sale_price": _minor_units(product.sale_price, product.currency),
        "gtin": product.gtin,
        "additional_image_urls": product.additional_image_urls or None,
        "category": _category_path(product),
    })}


def _bloomreach(product: Product, target: Target) -> Payloads:
    properties = _present({
        "title": product.name,
        "url": product.url,
        "image": product.image_url,
        "price": _number(product.price),
        "brand": product.brand,
        "category": _category_path(product),
        "availability": product.availability,
        "description": product.description,
        "stock": product.stock,
        **(product.attributes or {}),
    })
    fields = target.settings.get("fields")
    if isinstance(fields, dict):  # rename, and keep only the fields named
        properties = {fields[k]: v for k, v in properties.items() if fields.get(k)}
    elif isinstance(fields, list):  # keep only the catalog's fields
        properties = {k: v for k, v in properties.items() if k in fields}
    return {"product": properties}


def _venddor_price(value: Decimal) -> str:
    return f"{value:.2f}".replace(".", ",")


def _venddor(product: Product, target: Target) -> Payloads:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {"product": _present({
        "product_code": product.gtin,
        "product": product.name,
        "brand": product.brand,
        "weight": text(product.weight_grams),
        "price": _venddor_price(product.price) if product.price is not None else None,
        "amount": str(product.stock or 0),
        "status": {"active": "A", "disabled": "D", "hidden": "H"}[product.status],
        "internal_product_code": product.sku,
        "ncm": text((product.attributes or {}).get("ncm")),
    })}


def _voucherify(product: Product, target: Target) -> Payloads:
    return {"product": {"source_id": product.sku, "metadata": dict(product.metadata or {})}}


MAPPERS: dict[str, Callable[[Product, Target], Payloads]] = {
    "vtex_ads": _vtex_ads,
    "meta_catalog": _meta_catalog,
    "bloomreach": _bloomreach,
    "venddor": _venddor,
    "voucherify": _voucherify,
}

# The manifest fields each provider's API requires of a product routed to it.
REQUIRED: dict[str, tuple[str, ...]] = {
    "vtex_ads": ("name", "url", "image_url", "categories"),
    "meta_catalog": ("name", "description", "url", "image_url", "price", "currency"),
    "bloomreach": (),
    "venddor": ("gtin", "name", "price"),
    "voucherify": ("metadata",),
}


def item_key(target: Target, product: Product) -> str:
    """The item key at this target: the GTIN for Venddor, the sku everywhere else."""
    return product.gtin if target.provider == "venddor" else product.sku  # type: ignore[return-value]


def records(target: Target, product: Product) -> Payloads:
    payloads = MAPPERS[target.provider](product, target)
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
    problems = []
    for name in REQUIRED[target.provider]:
        value = getattr(product, name)
        if value is None or (not value and value != 0):  # absent or empty; a zero price is a price
            problems.append(f"target {target.name} ({target.provider}) requires {name}")
    if target.provider == "meta_catalog" and not (product.brand or product.gtin):
        problems.append(f"target {target.name} (meta_catalog) requires brand or gtin")
    if target.provider == "bloomreach" and "/" in product.sku:
        problems.append(f"target {target.name} (bloomreach) cannot take an item_id with '/'")
    if target.provider == "vtex_ads" and product.tags:
        if len(product.tags) > 10 or any(len(t) > 64 for t in product.tags):
            problems.append(f"target {target.name} (vtex_ads) takes at most 10 tags of at most 64 characters")
    return problems
