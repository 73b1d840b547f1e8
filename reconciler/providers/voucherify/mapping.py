"""A product as Voucherify product metadata, keyed by the sku."""
from __future__ import annotations

from reconciler.manifest.models import Product, Target
from reconciler.providers.base import Payloads

REQUIRED = ("metadata",)
OVERRIDE_FIELDS = frozenset({"metadata"})  # the only field that is sent


def records(product: Product, target: Target) -> Payloads:
    return {"product": {"source_id": product.sku, "metadata": dict(product.metadata or {})}}
