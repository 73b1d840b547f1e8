"""Reading manifest files: every format, every error located.

Manifests are read recursively in sorted path order (see ``reconciler.manifest.files``:
nothing is skipped silently). YAML and JSON files may hold ``targets:`` and
``products:``; JSONL holds one product per line and CSV one per row. YAML/JSON files are
parsed whole (they are the small, hand-written part of a workspace) after the checks of
``reconciler.manifest.structure`` (duplicate keys, YAML tags and aliases); JSONL and CSV
are streamed, so a catalog of millions of products is never held in memory at once.

Nothing here raises on bad input: problems are collected as :class:`Problem` values
with the file, the line and the sku, so that all of them can be reported together.
"""
from __future__ import annotations

import csv
import json
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import orjson
import yaml
from pydantic import ValidationError

from reconciler.display import UNSAFE_CATEGORIES, shorten
from reconciler.errors import Problem
from reconciler.manifest.files import decode, manifest_files, reason, utf16_problem
from reconciler.manifest.models import SKU_MAX_LENGTH, Product, Target
from reconciler.manifest.structure import check_yaml, scan_json
from reconciler.providers import names as provider_names

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


def load(root: str | Path) -> Manifests:
    """Parse targets and YAML/JSON products; list the files to stream."""
    root = Path(root)
    manifests = Manifests(root=root)
    if not root.exists():
        manifests.problems.append(Problem(str(root), 0, None, "manifests directory does not exist"))
        return manifests
    files, unreadable = manifest_files(root, manifests.display)
    manifests.problems.extend(Problem(manifests.display(path), 0, None, message) for path, message in unreadable)
    for path in files:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".csv"):
            problem = _unstreamable(path)  # read later, as a stream: what is wrong at once is found now
            if problem:
                manifests.problems.append(Problem(manifests.display(path), problem[0], None, problem[1]))
            else:
                manifests.streamed.append(path)
            continue
        text = _text(manifests, path)
        if text is None:
            continue
        if suffix == ".json":
            _read_json(manifests, path, text)
        else:
            _read_yaml(manifests, path, text)
    return manifests


def _unstreamable(path: Path) -> tuple[int, str] | None:
    """``(line, message)`` when a JSONL or CSV file cannot be read or is no UTF-8."""
    try:
        with path.open("rb") as handle:
            start = handle.read(2)
    except OSError as exc:
        return 0, f"cannot read: {reason(exc)}"
    utf16 = utf16_problem(start)
    return (1, utf16) if utf16 else None


def _text(manifests: Manifests, path: Path) -> str | None:
    """A YAML or JSON file's text, or None with a problem reported."""
    name = manifests.display(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        manifests.problems.append(Problem(name, 0, None, f"cannot read: {reason(exc)}"))
        return None
    text, line, message = decode(data)
    if text is None:
        manifests.problems.append(Problem(name, line, None, message))
    return text


# -- YAML and JSON documents ---------------------------------------------------------
def _read_yaml(manifests: Manifests, path: Path, text: str) -> None:
    name = manifests.display(path)
    loader = _YAML_LOADER(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            words = ", ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
            manifests.problems.append(Problem(name, line, None, f"invalid YAML: {words}"))
            return
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow
            line = text.count("\n", 0, exc.position) + 1
            manifests.problems.append(Problem(name, line, None, f"invalid YAML: character U+{exc.character:04X} "
                                                                "is not allowed (control characters are not)"))
            return
        except yaml.YAMLError as exc:
            manifests.problems.append(Problem(name, 0, None, f"invalid YAML: {exc}"))
            return
        if root is None:
            return
        structural = check_yaml(root)
        if structural:  # never construct what these guard against
            manifests.problems.extend(Problem(name, line, None, message) for line, message in structural)
            return
        _yaml_document(manifests, name, loader, root)
    finally:
        loader.dispose()


def _yaml_document(manifests: Manifests, name: str, loader: Any, root: yaml.Node) -> None:
    def value(node: yaml.Node) -> tuple[bool, Any]:
        try:
            return True, loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # e.g. `!!int abc`
            problem = getattr(exc, "problem", None) or exc
            manifests.problems.append(Problem(name, node.start_mark.line + 1, None, f"invalid YAML value: {problem}"))
            return False, None

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
                ok, raw = value(target_node)
                if ok:
                    _add_target(manifests, str(name_node.value), raw, Location(name, name_node.start_mark.line + 1))
        elif key == "products":
            if not isinstance(value_node, yaml.SequenceNode):
                manifests.problems.append(Problem(name, line, None, "`products` must be a list"))
                continue
            for item in value_node.value:
                ok, raw = value(item)
                if ok:
                    manifests.documents.append((Location(name, item.start_mark.line + 1), raw))
        else:
            manifests.problems.append(Problem(name, line, None, f"unknown top-level key {key!r} (expected targets, products)"))


def _read_json(manifests: Manifests, path: Path, text: str) -> None:
    name = manifests.display(path)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        manifests.problems.append(Problem(name, exc.lineno, None, f"invalid JSON: {exc.msg}"))
        return
    if not isinstance(data, dict):
        manifests.problems.append(Problem(name, 1, None, "a manifest must be an object with `targets` and/or `products`"))
        return
    layout = scan_json(text)
    manifests.problems.extend(Problem(name, line, None, message) for line, message in layout.problems)
    for key, value in data.items():
        line = layout.keys.get(key, 1)
        if key == "targets" and isinstance(value, dict):
            for target_name, raw in value.items():
                _add_target(manifests, target_name, raw, Location(name, layout.targets.get(target_name, line)))
        elif key == "products" and isinstance(value, list):
            lines = layout.products if len(layout.products) == len(value) else [line] * len(value)
            manifests.documents.extend((Location(name, at), raw) for at, raw in zip(lines, value))
        elif key in ("targets", "products"):
            kind = "an object" if key == "targets" else "a list"
            manifests.problems.append(Problem(name, line, None, f"`{key}` must be {kind}"))
        else:
            manifests.problems.append(Problem(name, line, None,
                                              f"unknown top-level key {key!r} (expected targets, products)"))


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
        kind = error["type"]
        text = error["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            text = "unknown field"
        elif loc == "currency" and kind == "literal_error":
            text = f"currency {shorten(repr(error['input']))} is not an ISO 4217 code"
        elif loc == "sku" and kind in ("string_pattern_mismatch", "string_too_long", "string_too_short"):
            text = sku_problem(error["input"])
        elif kind == "less_than":
            text = f"must be less than {_bound(error['ctx']['lt'])}"
        elif kind == "less_than_equal":
            text = f"must be at most {_bound(error['ctx']['le'])}"
        messages.append(f"{loc}: {text}" if loc else text)
    return messages


def _bound(value: Any) -> str:
    """A limit as people write it: 100,000,000,000 rather than 1E+11."""
    if isinstance(value, (int, Decimal)) and value == int(value):
        return f"{int(value):,}"
    return str(value)


def sku_problem(sku: str) -> str:
    """Why pydantic-core refused a sku (``models.SKU_PATTERN``), in words."""
    if not sku.strip():
        return "must not be empty or blank"
    if len(sku) > SKU_MAX_LENGTH:
        return f"is {len(sku):,} characters long; at most {SKU_MAX_LENGTH} are allowed"
    for position, char in enumerate(sku, 1):
        if unicodedata.category(char) in UNSAFE_CATEGORIES:
            return (f"must not contain control, format or line-separator characters "
                    f"(U+{ord(char):04X} at character {position})")
    return "must not start or end with whitespace"


# -- products --------------------------------------------------------------------------
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


def csv_products(manifests: Manifests, path: Path) -> Iterator[tuple[Location, Any]]:
    """Each row of a CSV file as a raw product with its location (see :func:`csv_product`)."""
    name = manifests.display(path)
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            manifests.problems.append(Problem(name, 1, None, f"invalid CSV: {exc}"))
            return
        problems = _header_problems(header)
        if problems:
            manifests.problems.extend(Problem(name, 1, None, message) for message in problems)
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
                undecoded = _undecoded(row)
                if undecoded:
                    manifests.problems.append(Problem(name, line + undecoded[0], None, undecoded[1]))
                elif len(row) != len(header):
                    manifests.problems.append(Problem(
                        name, line, row[0] if row else None,
                        f"row has {len(row)} cells, the header has {len(header)}"))
                else:
                    yield Location(name, line), csv_product(header, row)
            line = reader.line_num + 1


def _header_problems(header: list[str]) -> list[str]:
    undecoded = _undecoded(header)
    if undecoded:
        return [undecoded[1]]
    first: dict[str, int] = {}
    problems = []
    for number, column in enumerate(header, 1):
        if column in first:
            problems.append(f"duplicate column {shorten(repr(column))} (columns {first[column]} and {number})")
        else:
            first[column] = number
    return problems


def _undecoded(cells: list[str]) -> tuple[int, str] | None:
    """``(lines into the row, message)`` for the first byte of ``cells`` that was not
    UTF-8, if any."""
    text = "\x00".join(cells)
    match = _UNDECODED.search(text)
    if match is None:
        return None
    byte = ord(match.group()) - 0xDC00
    return text.count("\n", 0, match.start()), f"invalid UTF-8 (byte 0x{byte:02x}); save the file as UTF-8"


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


# A key of a JSON line ends with a quote and a colon (``":``), possibly with whitespace
# between them. When no whitespace stands before a colon, counting ``":`` gives at least
# the keys the line holds (more when a string holds one); when that equals the keys of
# the validated product (counted flat first: most products nest no deeper), no key was
# given twice. One byte count per line: the hot path of a million-product plan cannot
# afford a second parse.
_KEY_END = b'":'


def spaced_colons(data: bytes) -> bool:
    """Whether whitespace may stand between a key and its colon somewhere in ``data``
    (JSON lines): searched once per chunk of lines, then line by line where it may.
    Spaces end in ``" :`` or ``  :``; a raw tab or CR is whitespace wherever it is (JSON
    strings escape them) and is found at memchr's speed."""
    return b'" :' in data or b"  :" in data or b"\t" in data or (b"\r" in data and b"\r:" in data)


def json_line_product(line: bytes, file: str, number: int,
                      spaced: bool = True) -> tuple[Product | None, list[Problem]]:
    """A JSONL line as a validated product: one parse in pydantic-core, and a closer
    look only at a line that may repeat a key (``spaced``: whether the line's chunk
    has whitespace before a colon, see :func:`spaced_colons`)."""
    try:
        product = Product.model_validate_json(line)
    except ValidationError:
        return parse_product(line, Location(file, number))
    fields = product.__dict__  # a third cheaper than attribute lookups
    metadata, attributes, overrides = fields["metadata"], fields["attributes"], fields["overrides"]
    flat = len(product.__pydantic_fields_set__) + len(metadata or ()) + len(attributes or ()) + len(overrides or ())
    found = line.count(_KEY_END)
    if (found != flat and found != _key_count(product)) or (spaced and spaced_colons(line)):
        return parse_product(line, Location(file, number))
    return product, []


def _key_count(product: Product) -> int:
    """The keys a product was given, nested ones included (its top-level keys and those
    of its metadata, attributes and overrides are the count of a flat product)."""
    count = len(product.__pydantic_fields_set__) + len(product.metadata or ())  # metadata holds scalars
    if product.attributes:
        count += _nested_keys(product.attributes)
    if product.overrides:
        count += _nested_keys(product.overrides)
    return count


def _nested_keys(value: dict | list) -> int:
    count = 0
    if type(value) is dict:
        count = len(value)
        value = value.values()  # type: ignore[assignment]
    for item in value:
        if type(item) is dict or type(item) is list:
            count += _nested_keys(item)
    return count


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return data


def _json_line_problem(line: bytes) -> tuple[Any, str | None]:
    """``(data, None)`` for a JSON line with no key given twice, else ``(None, why)``."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        text, _, message = decode(line)
        return None, message if text is None else f"invalid JSON: {exc.msg}"
    try:
        json.loads(line, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as exc:
        return None, f"duplicate key {shorten(repr(exc.key))} in this line"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    return data, None


def parse_product(raw: Any, where: Location) -> tuple[Product | None, list[Problem]]:
    """A raw product (a mapping, or a JSON line as bytes) as a validated model."""
    if isinstance(raw, bytes):
        data, problem = _json_line_problem(raw)
        if problem:
            return None, [where.problem(problem)]
        if not isinstance(data, dict):
            return None, [where.problem("a product must be a JSON object")]
    elif isinstance(raw, dict):
        data = raw
    else:
        return None, [where.problem("a product must be a mapping")]
    try:
        return (Product.model_validate_json(raw) if isinstance(raw, bytes) else Product.model_validate(raw)), []
    except ValidationError as exc:
        sku = data.get("sku")
        sku = sku if isinstance(sku, str) and sku.strip() else None
        return None, [where.problem(message, sku) for message in validation_messages(exc)]
