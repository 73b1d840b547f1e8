"""A product as a FakeShop item, keyed by the sku."""
from __future__ import annotations

from reconciler.manifest.models import Product, Target
from reconciler.mapping import number, present
from reconciler.providers.base import Payloads

REQUIRED = ("name", "price")
OVERRIDE_FIELDS = frozenset({"title", "price", "url", "tags"})


def records(product: Product, target: Target) -> Payloads:
    return {"product": present({
        "title": product.name,
        "price": number(product.price),
        "url": product.url,
        "tags": product.tags or None,
    })}
