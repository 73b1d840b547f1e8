"""The JSON Schema (draft 2020-12) of a workspace's manifest files, for editors.

One schema serves every YAML and JSON manifest (``targets:`` and/or ``products:``);
its ``$defs/product`` is also the schema of one JSON Lines line. It is made from the
models that validate manifests, so it cannot drift from them: ``Product`` and
``Target`` (``reconciler.manifest.models``) and, through the provider registry, each
provider's settings model, auth keys and override fields.

Targets are validated by provider (``if provider is X then settings, auth are X's``).
Products name targets (``targets:``, ``overrides:``), so the schema is made for a
workspace's targets: a product may name only those, and a target's overrides may set
only the fields its provider takes there. Checks that need more than one file or the
routing of products (duplicates, what a provider requires of the products it gets, a
GTIN's check digit) are ``reconciler validate``'s alone.
"""
from __future__ import annotations

from typing import Any, Collection, Mapping

import orjson

from reconciler.manifest.loader import SCHEMA_KEY, Manifests
from reconciler.manifest.models import TARGET_NAME, Product, Target
from reconciler.providers import get_provider, names

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Where `reconciler init` writes it: beside the manifests directory, not in it (every
# .json file there is read as a manifest).
FILE_NAME = "reconciler.schema.json"
MODELINE = f"# yaml-language-server: $schema=../{FILE_NAME}"

# What the models check in Python, said as patterns (ECMA-262, as editors run them, with
# the `u` flag) where a pattern can say it.
_GTIN = r"^([0-9]{8}|[0-9]{12,14})$"  # the check digit is validate's
# A price as text: digits, below 10^11 (PRICE_LIMIT); its decimals per currency are validate's.
_DECIMAL = r"^\s*\+?([0-9]{1,11}(\.[0-9]*)?|\.[0-9]+)\s*$"
# An http(s) URL with a host, maybe a port (1-65535) and a path: no user or password, no
# query or fragment, no space, control or format character (models._check_base_url).
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_BASE_URL = (r"^[hH][tT][tT][pP][sS]?://(\[[0-9A-Fa-f:.]+\]|[^\p{C}\p{Z}/?#@:\[\]]+)"
             rf"(:{_PORT})?(/[^\p{{C}}\p{{Z}}?#]*)?$")


def workspace_schema(manifests: Manifests) -> str:
    """The schema for the targets ``manifests`` define, as indented JSON text."""
    targets = {name: manifests.targets.get(name) for name in manifests.target_locations}
    return orjson.dumps(manifest_schema(targets), option=orjson.OPT_INDENT_2).decode() + "\n"


def manifest_schema(targets: Mapping[str, Target | None] | None = None) -> dict[str, Any]:
    """The schema of a manifest file. ``targets`` are the workspace's targets by name
    (``None`` for one that does not load: it may be named, its overrides are not
    checked); without them, products may name any target and override any field."""
    defs: dict[str, Any] = {}
    target = _target_schema(defs)
    product = _product_schema(defs, targets)
    defs.update(target=target, product=product)
    known = f" Made for the targets {', '.join(targets)}: run `reconciler schema` again after changing them." \
        if targets else ""
    return {
        "$schema": DIALECT,
        "title": "reconciler manifest",
        "description": "Targets (destinations) and products (desired state) of a reconciler workspace." + known,
        "type": "object",
        "properties": {
            SCHEMA_KEY: {"type": "string", "description": "This schema's address, for editors; reconciler ignores it."},
            "targets": {
                "type": "object",
                "propertyNames": {"pattern": TARGET_NAME.pattern},
                "additionalProperties": {"$ref": "#/$defs/target"},
            },
            "products": {"type": "array", "items": {"$ref": "#/$defs/product"}},
        },
        "additionalProperties": False,
        "$defs": defs,
    }


def _target_schema(defs: dict[str, Any]) -> dict[str, Any]:
    schema = Target.model_json_schema()
    defs.update(schema.pop("$defs", {}))
    del schema["properties"]["name"]  # the key under `targets:` is the name
    _string_branch(schema["properties"]["base_url"])["pattern"] = _BASE_URL
    schema["required"] = ["provider"]
    schema["properties"]["provider"] = {"title": "Provider", "enum": list(names())}
    schema["allOf"] = [_provider_rules(name, defs) for name in names()]
    return schema


def _provider_rules(name: str, defs: dict[str, Any]) -> dict[str, Any]:
    """What a target of provider ``name`` must say: its settings and its auth keys."""
    provider = get_provider(name)
    prefix = name.replace("~", "~0").replace("/", "~1")  # a JSON pointer's escapes
    settings = provider.settings_model.model_json_schema(ref_template=f"#/$defs/{prefix}.{{model}}")
    for model, schema in settings.pop("$defs", {}).items():
        defs[f"{name}.{model}"] = _numbers_as_text(schema)
    settings["title"] = f"{name} settings"
    defs[f"{name}.settings"] = _numbers_as_text(settings)
    auth = {"type": "object", "properties": {key: {"type": "string"} for key in provider.auth_keys},
            "required": list(provider.auth_keys), "additionalProperties": {"type": "string"}}
    required = [key for key, needed in (("settings", settings.get("required")), ("auth", provider.auth_keys))
                if needed]
    return {
        "if": {"properties": {"provider": {"const": name}}, "required": ["provider"]},
        "then": {"properties": {"settings": {"$ref": f"#/$defs/{prefix}.settings"}, "auth": auth},
                 "required": required},
    }


def _numbers_as_text(schema: Any) -> Any:
    """Settings read a number as its text (``catalog_id: 1234567890``): wherever a
    settings model takes a string, a number is valid too."""
    if isinstance(schema, dict):
        schema = {key: _numbers_as_text(value) for key, value in schema.items()}
        if schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
            schema["type"] = ["string", "number"]
        return schema
    if isinstance(schema, list):
        return [_numbers_as_text(value) for value in schema]
    return schema


def _product_schema(defs: dict[str, Any], targets: Mapping[str, Target | None] | None) -> dict[str, Any]:
    schema = Product.model_json_schema()
    defs.update(schema.pop("$defs", {}))
    properties = schema["properties"]
    _string_branch(properties["gtin"])["pattern"] = _GTIN
    for price in ("price", "sale_price"):
        _string_branch(properties[price])["pattern"] = _DECIMAL
    if targets:
        _string_branch(properties["targets"]["anyOf"][0]["items"])["enum"] = list(targets)
        overrides = {name: _overrides(target) for name, target in targets.items()}
        properties["overrides"]["anyOf"][0] = {"type": "object", "properties": overrides,
                                               "additionalProperties": False}
    return schema


def _string_branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The part of a field's schema that takes a string."""
    if schema.get("type") == "string":
        return schema
    return next(branch for branch in schema["anyOf"] if branch.get("type") == "string")


def _overrides(target: Target | None) -> dict[str, Any]:
    """The fields a product's ``overrides`` may set at ``target`` (any value; ``null``
    removes the field)."""
    allowed: Collection[str] | None = None
    if target is not None:
        allowed = get_provider(target.provider).overridable(target)
    if allowed is None:
        return {"type": "object"}
    return {"type": "object", "properties": {field: {} for field in sorted(allowed)}, "additionalProperties": False}
