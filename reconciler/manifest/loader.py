"""Reading manifest files: every format, every error located.

Manifests are read recursively in sorted path order. YAML and JSON files may hold
``targets:`` and ``products:``; JSONL holds one product per line and CSV one per row.
YAML/JSON files are parsed whole (they are the small, hand-written part of a
workspace); JSONL and CSV are streamed, so a catalog of millions of products is never
held in memory at once.

Nothing here raises on bad input: problems are collected as :class:`Problem` values
with the file, the line and the sku, so that all of them can be reported together.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson
import yaml
from pydantic import ValidationError

from reconciler.errors import Problem
from reconciler.manifest.models import Product, Target
from reconciler.providers import names as provider_names

EXTENSIONS = (".yaml", ".yml", ".json", ".jsonl", ".csv")
LIST_FIELDS = frozenset({"additional_image_urls", "categories", "tags", "targets"})
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int

    def problem(self, message: str, sku: str | None = None) -> Problem:
        return Problem(self.file, self.line, sku, message)


@dataclass
class Manifests:
    """The targets, the products of YAML/JSON files (parsed), and the files to stream."""

    root: Path
    targets: dict[str, Target] = field(default_factory=dict)
    target_locations: dict[str, Location] = field(default_factory=dict)
    documents: list[tuple[Location, Any]] = field(default_factory=list)  # raw products
    streamed: list[Path] = field(default_factory=list)  # JSONL and CSV files
    problems: list[Problem] = field(default_factory=list)

    def display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root.parent))
        except ValueError:
            return str(path)


def manifest_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS),
        key=lambda p: p.relative_to(root).as_posix(),
    )


def load(root: str | Path) -> Manifests:
    """Parse targets and YAML/JSON products; list the files to stream."""
    root = Path(root)
    manifests = Manifests(root=root)
    if not root.exists():
        manifests.problems.append(Problem(str(root), 0, None, "manifests directory does not exist"))
        return manifests
    for path in manifest_files(root):
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".csv"):
            manifests.streamed.append(path)
        elif suffix == ".json":
            _read_json(manifests, path)
        else:
            _read_yaml(manifests, path)
    return manifests


# -- YAML and JSON documents ---------------------------------------------------------
def _read_yaml(manifests: Manifests, path: Path) -> None:
    name = manifests.display(path)
    try:
        loader = _YAML_LOADER(path.read_text(encoding="utf-8"))
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        manifests.problems.append(Problem(name, line, None, f"invalid YAML: {exc.problem or exc}"))
        return
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        manifests.problems.append(Problem(name, 0, None, f"invalid YAML: {exc}"))
        return
    if root is None:
        return
    if not isinstance(root, yaml.MappingNode):
        manifests.problems.append(Problem(name, root.start_mark.line + 1, None,
                                          "a manifest must be a mapping with `targets:` and/or `products:`"))
        return
    for key_node, value_node in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key == "targets":
            if not isinstance(value_node, yaml.MappingNode):
                manifests.problems.append(Problem(name, line, None, "`targets` must be a mapping of name to target"))
                continue
            for name_node, target_node in value_node.value:
                _add_target(manifests, name_node.value, loader.construct_object(target_node, deep=True),
                            Location(name, name_node.start_mark.line + 1))
        elif key == "products":
            if not isinstance(value_node, yaml.SequenceNode):
                manifests.problems.append(Problem(name, line, None, "`products` must be a list"))
                continue
            for item in value_node.value:
                manifests.documents.append(
                    (Location(name, item.start_mark.line + 1), loader.construct_object(item, deep=True)))
        else:
            manifests.problems.append(Problem(name, line, None, f"unknown top-level key {key!r} (expected targets, products)"))


def _read_json(manifests: Manifests, path: Path) -> None:
    name = manifests.display(path)
    text = path.read_bytes()
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        manifests.problems.append(Problem(name, exc.lineno, None, f"invalid JSON: {exc.msg}"))
        return
    if not isinstance(data, dict):
        manifests.problems.append(Problem(name, 1, None, "a manifest must be an object with `targets` and/or `products`"))
        return
    lines = _JsonLines(text.decode("utf-8", "replace"))
    for key, value in data.items():
        if key == "targets" and isinstance(value, dict):
            for target_name, raw in value.items():
                _add_target(manifests, target_name, raw, Location(name, lines.of_key(target_name)))
        elif key == "products" and isinstance(value, list):
            for raw in value:
                sku = raw.get("sku") if isinstance(raw, dict) else None
                manifests.documents.append((Location(name, lines.of_sku(sku, key)), raw))
        elif key in ("targets", "products"):
            kind = "an object" if key == "targets" else "a list"
            manifests.problems.append(Problem(name, lines.of_key(key), None, f"`{key}` must be {kind}"))
        else:
            manifests.problems.append(Problem(name, lines.of_key(key), None,
                                              f"unknown top-level key {key!r} (expected targets, products)"))


class _JsonLines:
    """Line numbers in a JSON text, found by searching for the key that names an item
    (orjson keeps no positions; this is only read for locating items)."""

    def __init__(self, text: str):
        self.text = text
        self.next_sku_from = 0

    def _line(self, position: int) -> int:
        return self.text.count("\n", 0, position) + 1

    def of_key(self, key: str) -> int:
        match = re.search(r'"%s"\s*:' % re.escape(key), self.text)
        return self._line(match.start()) if match else 1

    def of_sku(self, sku: Any, fallback_key: str) -> int:
        if isinstance(sku, str):
            pattern = r'"sku"\s*:\s*%s' % re.escape(orjson.dumps(sku).decode())
            match = re.compile(pattern).search(self.text, self.next_sku_from)
            if match:
                self.next_sku_from = match.end()
                return self._line(match.start())
        return self.of_key(fallback_key)


def _add_target(manifests: Manifests, name: str, raw: Any, where: Location) -> None:
    if name in manifests.target_locations:
        first = manifests.target_locations[name]
        manifests.problems.append(where.problem(f"target {name!r} is already defined at {first.file}:{first.line}"))
        return
    manifests.target_locations[name] = where
    if not isinstance(raw, dict):
        manifests.problems.append(where.problem(f"target {name!r} must be a mapping"))
        return
    provider = raw.get("provider")
    if provider not in provider_names():
        manifests.problems.append(where.problem(
            f"target {name!r}: unknown provider {provider!r} (expected one of {', '.join(provider_names())})"))
        return
    try:
        manifests.targets[name] = Target.model_validate({**raw, "name": name})
    except ValidationError as exc:
        for message in validation_messages(exc):
            manifests.problems.append(where.problem(f"target {name!r}: {message}"))


def validation_messages(exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"])
        text = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            text = "unknown field"
        elif loc == "currency" and error["type"] == "literal_error":
            text = f"currency {error['input']!r} is not an ISO 4217 code"
        elif loc == "sku" and error["type"] == "string_pattern_mismatch":
            text = "sku must not be blank"
        messages.append(f"{loc}: {text}" if loc else text)
    return messages


# -- products --------------------------------------------------------------------------
def csv_products(manifests: Manifests, path: Path) -> Iterator[tuple[Location, Any]]:
    """Each row of a CSV file as a raw product with its location (see :func:`csv_product`)."""
    name = manifests.display(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            manifests.problems.append(Problem(name, 1, None, f"invalid CSV: {exc}"))
            return
        line = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                manifests.problems.append(Problem(name, line, None, f"invalid CSV: {exc}"))
                return
            if any(cell.strip() for cell in row):
                if len(row) != len(header):
                    manifests.problems.append(Problem(
                        name, line, row[0] if row else None,
                        f"row has {len(row)} cells, the header has {len(header)}"))
                else:
                    yield Location(name, line), csv_product(header, row)
            line = reader.line_num + 1


def csv_product(header: list[str], row: list[str]) -> dict[str, Any]:
    """A CSV row as a raw product: empty cells are absent, list fields split on ``|``,
    ``metadata.KEY``/``attributes.KEY``/``overrides.TARGET.FIELD`` fill those objects."""
    product: dict[str, Any] = {}
    for column, cell in zip(header, row):
        if cell == "":
            continue
        head, _, rest = column.partition(".")
        if head in ("metadata", "attributes") and rest:
            product.setdefault(head, {})[rest] = cell
        elif head == "overrides" and "." in rest:
            target, _, provider_field = rest.partition(".")
            product.setdefault("overrides", {}).setdefault(target, {})[provider_field] = cell
        elif column in LIST_FIELDS:
            product[column] = [part for part in cell.split("|") if part]
        else:
            product[column] = cell
    return product


def parse_product(raw: Any, where: Location) -> tuple[Product | None, list[Problem]]:
    """A raw product (a mapping, or a JSON line as bytes) as a validated model."""
    try:
        if isinstance(raw, bytes):
            return Product.model_validate_json(raw), []
        if isinstance(raw, dict):
            return Product.model_validate(raw), []
        return None, [where.problem("a product must be a mapping")]
    except ValidationError as exc:
        if isinstance(raw, bytes):
            try:
                raw = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                return None, [where.problem(f"invalid JSON: {error.msg}")]
            if not isinstance(raw, dict):
                return None, [where.problem("a product must be a JSON object")]
        sku = raw.get("sku")
        sku = sku if isinstance(sku, str) and sku else None
        return None, [where.problem(message, sku) for message in validation_messages(exc)]
