"""A Bloomreach target's ``settings:``."""
from __future__ import annotations

from typing import Literal

from reconciler.providers.base import ProviderSettings, SettingText


class Settings(ProviderSettings):
    project_id: SettingText
    catalog_id: SettingText
    # full: creates and updates replace the whole item; partial: they merge properties.
    update_mode: Literal["full", "partial"] = "partial"
    # The catalog's fields: a list keeps only those properties; a mapping renames
    # properties (a property mapped to nothing is left out).
    fields: list[str] | dict[str, str | None] | None = None
