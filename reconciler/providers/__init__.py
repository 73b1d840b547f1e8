"""The provider registry: the one list of provider names, each loaded when first used.

A provider is a :class:`Provider` subclass in its own package (its folder holds its
settings, mapping, wire format, reads and sandbox simulator). The registry maps a name,
as written in a target's ``provider:``, to where that class lives, ``"module:Class"``;
nothing is imported until :func:`get_provider` asks for it, so importing this package
(or ``reconciler.plan``) loads no provider module and no HTTP client. The order of the
registry is the order of ``reconciler providers`` and of the sandbox's ports.

:func:`register` adds a provider defined elsewhere (the tests' fake provider does).
The base types of the interface are re-exported so that callers need only
``reconciler.providers``.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, TypeVar

from reconciler.errors import ConfigError
from reconciler.providers.base import (
    Action, Capabilities, Job, Limits, Operation, Outcome, OutcomeStatus, Page, Provider, ReadError,
    Request,
)

if TYPE_CHECKING:
    from reconciler.manifest.models import Target

_REGISTRY: dict[str, str] = {
    "vtex_ads": "reconciler.providers.vtex_ads:VtexAds",
    "meta_catalog": "reconciler.providers.meta_catalog:MetaCatalog",
    "bloomreach": "reconciler.providers.bloomreach:Bloomreach",
    "venddor": "reconciler.providers.venddor:Venddor",
    "voucherify": "reconciler.providers.voucherify:Voucherify",
}
_loaded: dict[str, type[Provider]] = {}
T = TypeVar("T")


def register(name: str, where: str) -> None:
    """Add the provider class at ``where`` (``"package.module:Class"``) as ``name``,
    after the others. Registering a name again replaces it."""
    _REGISTRY[name] = where
    _loaded.pop(name, None)


def unregister(name: str) -> None:
    """Forget a provider added by :func:`register`."""
    _REGISTRY.pop(name, None)
    _loaded.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered provider names, in registry order."""
    return tuple(_REGISTRY)


def load(where: str) -> type:
    """The object at ``"package.module:attribute"``."""
    module, _, attribute = where.partition(":")
    return getattr(importlib.import_module(module), attribute)


def get_provider(name: str) -> type[Provider]:
    """The provider class called ``name``; a ConfigError naming the known ones otherwise."""
    cls = _loaded.get(name)
    if cls is None:
        if name not in _REGISTRY:
            raise ConfigError(f"unknown provider {name!r} (known: {', '.join(_REGISTRY)})")
        cls = _loaded[name] = load(_REGISTRY[name])
    return cls


class RegistryView(Mapping[str, T]):
    """A read-only mapping of every registered name to ``value(name)``, computed when
    looked up (so that iterating the names loads nothing)."""

    def __init__(self, value: Callable[[str], T]):
        self._value = value

    def __getitem__(self, name: str) -> T:
        if name not in _REGISTRY:
            raise KeyError(name)
        return self._value(name)

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(_REGISTRY)


PROVIDERS: Mapping[str, type[Provider]] = RegistryView(get_provider)


def limits_for(target: "Target") -> Limits:
    """A target's limits: its provider's documented ones, lowered by its ``limits:``."""
    if target.limits is None:
        return get_provider(target.provider).limits
    documented = {f.name for f in dataclasses.fields(Limits)}  # the other keys bound the engine's requests
    wanted = target.limits.model_dump(include=documented, exclude_none=True)
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
    "PROVIDERS", "RegistryView", "get_provider", "limit_scope", "limits_for", "load", "names", "register",
    "unregister", "Action", "Capabilities", "Job", "Limits", "Operation", "Outcome", "OutcomeStatus", "Page",
    "Provider", "ReadError", "Request",
]
