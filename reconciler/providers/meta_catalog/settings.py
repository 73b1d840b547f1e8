"""A Meta catalog target's ``settings:``."""
from __future__ import annotations

from reconciler.providers.base import ProviderSettings, SettingText


class Settings(ProviderSettings):
    catalog_id: SettingText
    api_version: SettingText  # e.g. v21.0
