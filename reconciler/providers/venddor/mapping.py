"""A product as a Venddor product: every value a string, keyed by the GTIN."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from reconciler.manifest.currencies import exponent
from reconciler.manifest.models import Product, Target
from reconciler.mapping import present
from reconciler.providers.base import Payloads

REQUIRED = ("gtin", "name", "price")
# The documented fields, but the key (product_code).
OVERRIDE_FIELDS = frozenset({
    "ncm", "product", "brand", "weight", "price", "amount", "qty_step", "status", "internal_product_code",
    "quantity_per_package",
})
STATUS = {"active": "A", "disabled": "D", "hidden": "H"}


def price(value: Decimal, currency: str | None = None) -> str:
    """A price with a decimal comma and as many decimals as its currency has: ``8,99``
    (BRL), ``899`` (JPY), ``1,234`` (BHD). Validation leaves no more decimals than that,
    so nothing is rounded."""
    decimals = exponent(currency) if currency else 2  # validation's rule without a currency
    return f"{value:.{decimals}f}".replace(".", ",")


def records(product: Product, target: Target) -> Payloads:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {"product": present({
        "product_code": product.gtin,
        "product": product.name,
        "brand": product.brand,
        "weight": text(product.weight_grams),
        "price": price(product.price, product.currency) if product.price is not None else None,
        "amount": str(product.stock or 0),
        "status": STATUS[product.status],
        "internal_product_code": product.sku,
        "ncm": text((product.attributes or {}).get("ncm")),
    })}
