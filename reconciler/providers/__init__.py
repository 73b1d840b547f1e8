"""The five providers and their registry.

``PROVIDERS`` maps a provider name (as written in a target's ``provider:``) to its
:class:`Provider` subclass; ``get_provider(name)`` looks one up. The base types of the
interface are re-exported so that callers need only ``reconciler.providers``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.errors import ConfigError
from reconciler.providers._common import ReadError
from reconciler.providers.base import (
    Action, Capabilities, Job, Limits, Operation, Outcome, OutcomeStatus, Page, Provider, Request,
)
from reconciler.providers.bloomreach import Bloomreach
from reconciler.providers.meta_catalog import MetaCatalog
from reconciler.providers.venddor import Venddor
from reconciler.providers.voucherify import Voucherify
from reconciler.providers.vtex_ads import VtexAds

if TYPE_CHECKING:
    from reconciler.manifest.models import Target

PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls for cls in (VtexAds, MetaCatalog, Bloomreach, Venddor, Voucherify)
}


def get_provider(name: str) -> type[Provider]:
    """The provider class called ``name``; a ConfigError naming the known ones otherwise."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise ConfigError(f"unknown provider {name!r} (known: {known})") from None


def limits_for(target: "Target") -> Limits:
    """A target's limits: its provider's documented ones, lowered by its ``limits:``."""
    wanted = target.limits.model_dump(exclude_none=True) if target.limits is not None else None
    return get_provider(target.provider).limits.lowered(wanted)


def limit_scope(target: "Target") -> tuple:
    """What a target's rate window and in-flight cap count: targets with equal scopes
    share them (see :attr:`Provider.limit_scope`)."""
    cls = get_provider(target.provider)
    if cls.limit_scope is None:
        return ("target", target.name)
    base_url = (target.base_url or cls.default_base_url).rstrip("/")
    return (target.provider, base_url, *(str(target.settings.get(key)) for key in cls.limit_scope))


__all__ = [
    "PROVIDERS", "get_provider", "limits_for", "limit_scope", "Action", "Capabilities", "Job", "Limits", "Operation", "Outcome",
    "OutcomeStatus", "Page", "Provider", "ReadError", "Request",
    "Bloomreach", "MetaCatalog", "Venddor", "Voucherify", "VtexAds",
]
