"""A product as a Bloomreach catalog item's properties, keyed by the sku (the
``item_id``): the default properties plus the product's ``attributes``, renamed or
restricted by ``settings.fields``."""
from __future__ import annotations

from typing import Any, Collection

from reconciler.manifest.models import Product, Target
from reconciler.mapping import category_path, number, present
from reconciler.providers.base import Payloads


def _default_properties(product: Product) -> dict[str, Any]:
    return {
        "title": product.name,
        "url": product.url,
        "image": product.image_url,
        "price": number(product.price),
        "brand": product.brand,
        "category": category_path(product),
        "availability": product.availability,
        "description": product.description,
        "stock": product.stock,
    }


# The names of the default properties (they do not depend on the product's values).
DEFAULT_PROPERTIES = tuple(_default_properties(Product.model_construct()))


def records(product: Product, target: Target) -> Payloads:
    properties = present({**_default_properties(product), **(product.attributes or {})})
    fields = target.settings.get("fields")
    if isinstance(fields, dict):  # rename, and keep only the fields named
        properties = {fields[k]: v for k, v in properties.items() if fields.get(k)}
    elif isinstance(fields, list):  # keep only the catalog's fields
        properties = {k: v for k, v in properties.items() if k in fields}
    return {"product": properties}


def mapped_properties(target: Target) -> set[str]:
    """The property names this target's mapping can produce (attributes aside)."""
    fields = target.settings.get("fields")
    if isinstance(fields, dict):
        return {str(v) for v in fields.values() if v}
    if isinstance(fields, list):
        return {str(v) for v in fields}
    return set(DEFAULT_PROPERTIES)


def overridable(target: Target) -> Collection[str] | None:
    """The catalog's fields when ``settings.fields`` names them; any property otherwise
    (a catalog defines its own fields, as the ``attributes`` of a product do)."""
    return mapped_properties(target) if target.settings.get("fields") is not None else None


def problems(product: Product, target: Target) -> list[str]:
    return ["cannot take an item_id with '/'"] if "/" in product.sku else []
