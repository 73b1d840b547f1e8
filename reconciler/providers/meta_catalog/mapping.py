"""A product as a Meta catalog item, keyed by the sku (the ``retailer_id``)."""
from __future__ import annotations

from decimal import Decimal

from reconciler.manifest.currencies import exponent
from reconciler.manifest.models import Product, Target
from reconciler.mapping import category_path, present
from reconciler.providers.base import Payloads

REQUIRED = ("name", "description", "url", "image_url", "price", "currency")
# The product fields the Batch API documents for CREATE and UPDATE.
OVERRIDE_FIELDS = frozenset({
    "additional_image_urls", "availability", "age_group", "applinks", "brand", "category", "color",
    "condition", "currency", "custom_label_0", "custom_label_1", "custom_label_2", "custom_label_3",
    "custom_label_4", "description", "gender", "gtin", "image_url", "manufacturer_part_number", "name",
    "pattern", "price", "product_type", "sale_price", "sale_price_end_date", "sale_price_start_date",
    "shipping", "size", "url",
})


def minor_units(value: Decimal | None, currency: str | None) -> int | None:
    """A price as integer minor units of its currency: 8.99 USD is 899."""
    if value is None:
        return None
    return int((value * 10 ** exponent(currency or "USD")).to_integral_value())


def records(product: Product, target: Target) -> Payloads:
    return {"product": present({
        "name": product.name,
        "description": product.description,
        "url": product.url,
        "image_url": product.image_url,
        "brand": product.brand,
        "availability": product.availability,
        "condition": product.condition,
        "price": minor_units(product.price, product.currency),
        "currency": product.currency,
        "sale_price": minor_units(product.sale_price, product.currency),
        "gtin": product.gtin,
        "additional_image_urls": product.additional_image_urls or None,
        "category": category_path(product),
    })}


def problems(product: Product, target: Target) -> list[str]:
    return [] if product.brand or product.gtin else ["requires brand or gtin"]
