"""A product as VTEX Ads records: a ``product`` and, when it has a price, an
``inventory`` (price and availability), keyed by the sku."""
from __future__ import annotations

from reconciler.manifest.models import Product, Target
from reconciler.mapping import number, present
from reconciler.providers.base import Payloads

REQUIRED = ("name", "url", "image_url", "categories")
# The documented fields of both records, but the key (product_sku).
OVERRIDE_FIELDS = frozenset({
    "name", "url", "image_url", "categories", "brand", "gtins", "metadata", "tags", "parent_sku", "sellers",
    "price", "promotional_price", "is_available", "store_id",
})
MAX_TAGS = 10
MAX_TAG_LENGTH = 64


def records(product: Product, target: Target) -> Payloads:
    payloads = {
        "product": present({
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
        payloads["inventory"] = {
            "product_sku": product.sku,
            "price": number(product.price),
            "promotional_price": number(product.sale_price) if product.sale_price is not None else 0,
            "is_available": product.status == "active" and product.availability == "in stock",
        }
    return payloads


def problems(product: Product, target: Target) -> list[str]:
    if product.tags and (len(product.tags) > MAX_TAGS or any(len(t) > MAX_TAG_LENGTH for t in product.tags)):
        return [f"takes at most {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters"]
    return []
