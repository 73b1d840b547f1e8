"""A Meta catalog target's ``settings:``."""
from __future__ import annotations

from reconciler.providers.base import ProviderSettings


class Settings(ProviderSettings):
    catalog_id: str
    api_version: str  # e.g. v21.0
