"""A product as a Venddor product: every value a string, keyed by the GTIN."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
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


def price(value: Decimal, decimals: int) -> str:
    """A price with a decimal comma: ``8,99``."""
    return f"{value:.{decimals}f}".replace(".", ",")


def amount(text: Any) -> Decimal | None:
    """What a price's text amounts to (None: it is no price): ``"899"``, ``"899,00"``
    and ``"899.00"`` are one amount."""
    try:
        value = Decimal(str(text).replace(",", "."))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def records(product: Product, target: Target) -> Payloads:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {"product": present({
        "product_code": product.gtin,
        "product": product.name,
        "brand": product.brand,
        "weight": text(product.weight_grams),
        # As many decimals as the currency has (validation leaves no more: nothing is
        # rounded); 2 without a currency, as validation assumes.
        "price": price(product.price, exponent(product.currency) if product.currency else 2)
        if product.price is not None else None,
        "amount": str(product.stock or 0),
        "status": STATUS[product.status],
        "internal_product_code": product.sku,
        "ncm": text((product.attributes or {}).get("ncm")),
    })}
