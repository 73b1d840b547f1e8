"""What a manifest may say: targets and products, as pydantic v2 models.

These models check everything that can be checked about one item on its own (types,
ranges, GTIN check digits, currency codes). Checks that need more than one item
(duplicates, unknown target names, what a provider requires) live in
``reconciler.manifest.validate``.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator,
                      model_validator)

from reconciler.display import shorten
from reconciler.manifest.currencies import CODES as CURRENCY_CODES, EXPONENTS
from reconciler.providers import get_provider

TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
Availability = Literal["in stock", "out of stock", "preorder", "available for order", "discontinued"]


def check_digit(body: str) -> int:
    """The GS1 check digit that follows ``body``, a GTIN without its last digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_is_valid(gtin: str) -> bool:
    """GS1 check digit of an 8, 12, 13 or 14 digit GTIN."""
    return gtin_problem(gtin) is None


def gtin_problem(gtin: str) -> str | None:
    """What is wrong with a GTIN, in words; for a wrong check digit, the right one."""
    if not gtin.isascii() or not gtin.isdigit():
        return f"{shorten(repr(gtin))} is not a GTIN: digits only"
    if len(gtin) not in (8, 12, 13, 14):
        return f"{gtin!r} has {len(gtin)} digits; a GTIN has 8, 12, 13 or 14"
    expected = check_digit(gtin[:-1])
    if int(gtin[-1]) != expected:
        return f"{gtin!r} ends in {gtin[-1]}, but its check digit is {expected} ({gtin[:-1]}{expected})"
    return None


# A sku is the item key at most destinations, shown in plans and sent in URLs: printable
# text (no control, format or line-separator character: a newline would forge plan
# lines, a right-to-left override reorder them), no surrounding whitespace, at most
# SKU_MAX_LENGTH characters. Checked inside pydantic-core (the hot path); the loader
# words the error (``sku_problem``).
SKU_MAX_LENGTH = 255
_SKU_CHAR = r"[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"
_SKU_EDGE = r"[^\s\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"
SKU_PATTERN = rf"^{_SKU_EDGE}(?:{_SKU_CHAR}*{_SKU_EDGE})?$"
# Numbers or decimal strings; pydantic reads a float through its repr, so 8.99 stays 8.99.
# Below 10^11 major units, a price stays exact as a JSON number in the minor units of
# any currency (at most 4 decimals: below 2^53), and no "1e309" reaches a provider.
PRICE_LIMIT = Decimal(10) ** 11
Price = Annotated[Decimal, Field(ge=0, lt=PRICE_LIMIT, allow_inf_nan=False)]
# Counts (stock, grams): exact in every JSON reader (2^53 - 1).
INTEGER_LIMIT = 2**53 - 1
Count = Annotated[int, Field(ge=0, le=INTEGER_LIMIT)]
Scalar = str | int | float | bool | None
# A Literal is checked inside pydantic-core, much faster than a Python validator on the
# hot path of a million-product plan; the loader rewords its error message.
CurrencyCode = Literal[tuple(sorted(CURRENCY_CODES))]  # type: ignore[valid-type]


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=SKU_MAX_LENGTH, pattern=SKU_PATTERN)
    name: str | None = None
    description: str | None = None
    url: str | None = None
    image_url: str | None = None
    brand: str | None = None
    additional_image_urls: list[str] | None = None
    categories: list[str] | None = None
    tags: list[str] | None = None
    gtin: str | None = None
    price: Price | None = None
    sale_price: Price | None = None
    currency: CurrencyCode | None = None
    availability: Availability = "in stock"
    condition: Literal["new", "refurbished", "used"] = "new"
    stock: Count | None = None
    status: Literal["active", "disabled", "hidden"] = "active"
    weight_grams: Count | None = None
    metadata: dict[str, Scalar] | None = None
    attributes: dict[str, Any] | None = None
    targets: list[str] | None = None
    overrides: dict[str, dict[str, Any]] | None = None

    @field_validator("gtin")
    @classmethod
    def _gtin_check_digit(cls, value: str | None) -> str | None:
        problem = None if value is None else gtin_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _price_decimals(self) -> "Product":
        # SPEC: a price has at most as many decimals as its currency allows (2 without a
        # currency), so that every provider sends the same amount and none rounds it.
        # The hot path of a million-product plan: a price with at most 2 decimals in its
        # string and a currency of 2 decimals (or none) is looked at no further.
        price = self.price
        if price is not None:
            text = str(price)
            dot = text.find(".")
            if (dot >= 0 and len(text) - dot > 3) or "E" in text or self.currency in EXPONENTS:
                _check_decimals("price", price, self.currency)
        if self.sale_price is not None:
            _check_decimals("sale_price", self.sale_price, self.currency)
        return self


def _check_decimals(name: str, value: Decimal, currency: str | None) -> None:
    allowed = EXPONENTS.get(currency, 2)  # type: ignore[arg-type]
    places = -value.normalize().as_tuple().exponent  # type: ignore[operator]
    if places > allowed:
        whose = f"{currency} allows" if currency else "a price without a currency has"
        raise ValueError(f"{name}: {value} has {places} decimal{'s' if places > 1 else ''}; {whose} at most {allowed}")


class TargetLimits(BaseModel):
    """The provider's documented limits, lowered (``providers.limits_for``), and the
    bounds of what the target's destination may cost (``apply.tuning.Tuning.for_target``;
    unset: the engine's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_items_per_request: int | None = Field(default=None, gt=0)
    max_bytes_per_request: int | None = Field(default=None, gt=0)
    max_in_flight: int | None = Field(default=None, gt=0)
    max_requests_per_window: int | None = Field(default=None, gt=0)
    window_seconds: float | None = Field(default=None, gt=0)
    request_timeout_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_response_bytes: int | None = Field(default=None, gt=0)
    max_retry_after_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    retry_budget_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class Select(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: list[str] = Field(default_factory=list)


def _check_base_url(value: str) -> str:
    """An http(s) URL with a host and at most a path. The message never repeats the URL:
    it may hold a password."""
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user or password (user:pass@); credentials belong in auth")
    if not parts.hostname:
        raise ValueError("has no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 and parts.netloc.rpartition("]")[2].count(":"):  # a ":" and no valid port
        raise ValueError("has an invalid port (1-65535)")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("must not have a query (?) or fragment (#): the documented paths are appended to it")
    return value


BaseUrl = Annotated[str, AfterValidator(_check_base_url)]


class Target(BaseModel):
    """One destination. ``auth`` values stay unresolved (``${ENV}``) until a command
    that talks to the destination resolves them (see ``reconciler.credentials``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: str  # a registered provider name (see reconciler.providers), checked by the loader
    base_url: BaseUrl | None = None
    auth: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    select: Select | None = None
    limits: TargetLimits | None = None
    max_delete_fraction: float = Field(default=0.1, ge=0, le=1)
    ignore_fields: list[str] = Field(default_factory=list)
    # Set by served_at only: never read from a manifest.
    _declared_base_url: str | None = PrivateAttr(default=None)

    def served_at(self, base_url: str) -> "Target":
        """This target with its requests sent to ``base_url`` for one command (what
        ``--with-sandbox`` does), still naming the catalog its manifests declare."""
        moved = self.model_copy(update={"base_url": base_url})
        moved._declared_base_url = self.declared_base_url
        return moved

    @property
    def declared_base_url(self) -> str | None:
        """The base URL the manifests declare: ``base_url``, unless :meth:`served_at`
        sent the requests elsewhere."""
        return self._declared_base_url or self.base_url

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not TARGET_NAME.match(value):
            raise ValueError(f"target name {value!r} must match [a-z0-9][a-z0-9_-]*")
        return value

    @field_validator("settings")
    @classmethod
    def _provider_settings(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Unknown keys and bad values, by the provider's settings model."""
        if "provider" in info.data:
            get_provider(info.data["provider"]).settings_model.check(value)
        return value

    def wants(self, product: Product) -> bool:
        """Whether ``product`` is routed to this target: the target's ``select`` picks
        products, and a product's own ``targets`` list narrows that further."""
        if product.targets is not None and self.name not in product.targets:
            return False
        if self.select and self.select.tags:
            return bool(product.tags) and not set(self.select.tags).isdisjoint(product.tags)
        return True
