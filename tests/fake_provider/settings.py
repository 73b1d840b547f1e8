"""A FakeShop target's ``settings:``."""
from __future__ import annotations

from reconciler.providers.base import ProviderSettings


class Settings(ProviderSettings):
    shop: str  # the shop's id, in every path
