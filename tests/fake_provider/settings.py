"""A FakeShop target's ``settings:``."""
from __future__ import annotations

from reconciler.providers.base import ProviderSettings, SettingText


class Settings(ProviderSettings):
    shop: SettingText  # the shop's id, in every path
