"""Reading manifest files: every format, every error located.

Manifests are read recursively in sorted path order (see ``reconciler.manifest.files``:
nothing is skipped silently). YAML and JSON files may hold ``targets:`` and
``products:``; JSONL holds one product per line and CSV one per row (read by
``reconciler.manifest.csv_rows``). YAML/JSON files are
parsed whole (they are the small, hand-written part of a workspace) after the checks of
``reconciler.manifest.structure`` (duplicate keys, YAML tags and aliases); JSONL and CSV
are streamed, so a catalog of millions of products is never held in memory at once.

Nothing here raises on bad input: problems are collected as :class:`Problem` values
with the file, the line and the sku, so that all of them can be reported together.
"""
from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import orjson
import yaml
from pydantic import ValidationError

from reconciler.display import UNSAFE_CATEGORIES, shorten
from reconciler.errors import Problem, suggestion
from reconciler.manifest.files import decode, manifest_files, reason, utf16_problem
from reconciler.manifest.models import SKU_MAX_LENGTH, Product, Select, Target, TargetLimits
from reconciler.manifest.structure import check_yaml, scan_json, yaml_item_fields
from reconciler.providers import get_provider, names as provider_names

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A top-level key beside `targets` and `products`: where an editor finds the file's JSON
# Schema (docs/editors.md). The loader checks that it is text and reads nothing from it.
SCHEMA_KEY = "$schema"
_NOT_AN_ADDRESS = f"`{SCHEMA_KEY}` must be a string: the address of a JSON Schema, for editors"


class FieldLines:
    """The line of each field of a file's items by key path, found by ``find`` (a second
    reading of the file's text) the first time a problem asks: a file without a problem
    never pays for them. ``find()`` gives ``{"products": {index: fields}, "targets":
    {name: fields}}``."""

    def __init__(self, find: Callable[[], dict[str, Mapping]]):
        self.find = find
        self.found: dict[str, Mapping] | None = None

    def of(self, kind: str, item: int | str) -> Callable[[], Mapping[tuple, int]]:
        return partial(self._fields, kind, item)

    def _fields(self, kind: str, item: int | str) -> Mapping[tuple, int]:
        if self.found is None:
            self.found = self.find()
        return self.found[kind].get(item, {})


@dataclass(frozen=True, slots=True)
class Location:
    """Where an item (a product, a target) is: its file and first line, and in YAML and
    JSON files the lines of its fields (see :class:`FieldLines`; a JSON line or a CSV
    row is one line)."""

    file: str
    line: int
    fields: Callable[[], Mapping[tuple, int]] | None = field(default=None, compare=False)

    def line_of(self, path: tuple) -> int:
        """The line of the field at ``path``, or of the nearest field holding it, or the
        item's."""
        if path and self.fields is not None:
            fields = self.fields()
            for end in range(len(path), 0, -1):
                line = fields.get(path[:end])
                if line is not None:
                    return line
        return self.line

    def problem(self, message: str, sku: str | None = None, path: tuple = ()) -> Problem:
        return Problem(self.file, self.line_of(path), sku, message, path)

    def located(self, problem: Problem) -> Problem:
        """``problem`` (found at this item's line) at its field's line."""
        line = self.line_of(problem.path)
        return problem if line == problem.line else replace(problem, line=line)


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
        _yaml_document(manifests, name, loader, root, FieldLines(lambda: yaml_item_fields(_compose(path))))
    finally:
        loader.dispose()


def _reread(path: Path) -> str:
    """The text of a manifest read once already ("" if it no longer reads)."""
    try:
        return decode(path.read_bytes())[0] or ""
    except OSError:
        return ""


def _compose(path: Path) -> yaml.Node | None:
    """A YAML manifest that composed once already, composed again (None if it no longer does)."""
    loader = _YAML_LOADER(_reread(path))
    try:
        return loader.get_single_node()
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def _yaml_document(manifests: Manifests, name: str, loader: Any, root: yaml.Node, lines: FieldLines) -> None:
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
                    _add_target(manifests, str(name_node.value), raw,
                                Location(name, name_node.start_mark.line + 1, lines.of("targets", name_node.value)))
        elif key == "products":
            if not isinstance(value_node, yaml.SequenceNode):
                manifests.problems.append(Problem(name, line, None, "`products` must be a list"))
                continue
            for index, item in enumerate(value_node.value):
                ok, raw = value(item)
                if ok:
                    where = Location(name, item.start_mark.line + 1, lines.of("products", index))
                    manifests.documents.append((where, raw))
        elif key == SCHEMA_KEY:
            ok, address = value(value_node)
            if ok and not isinstance(address, str):
                manifests.problems.append(Problem(name, line, None, _NOT_AN_ADDRESS))
        else:
            manifests.problems.append(Problem(name, line, None, _unknown_top_level(key)))


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
    lines = FieldLines(lambda: _json_item_fields(_reread(path)))
    for key, value in data.items():
        line = layout.keys.get(key, 1)
        if key == "targets" and isinstance(value, dict):
            for target_name, raw in value.items():
                _add_target(manifests, target_name, raw, Location(name, layout.targets.get(target_name, line),
                                                                  lines.of("targets", target_name)))
        elif key == "products" and isinstance(value, list):
            if len(layout.products) == len(value):
                manifests.documents.extend((Location(name, at, lines.of("products", index)), raw)
                                           for index, (at, raw) in enumerate(zip(layout.products, value)))
            else:
                manifests.documents.extend((Location(name, line), raw) for raw in value)
        elif key in ("targets", "products"):
            kind = "an object" if key == "targets" else "a list"
            manifests.problems.append(Problem(name, line, None, f"`{key}` must be {kind}"))
        elif key == SCHEMA_KEY:
            if not isinstance(value, str):
                manifests.problems.append(Problem(name, line, None, _NOT_AN_ADDRESS))
        else:
            manifests.problems.append(Problem(name, line, None, _unknown_top_level(key)))


def _unknown_top_level(key: str) -> str:
    return f"unknown top-level key {shorten(repr(key))} ({suggestion(key, ('targets', 'products'))})"


def _json_item_fields(text: str) -> dict[str, Mapping]:
    try:
        layout = scan_json(text, fields=True)
    except (IndexError, ValueError):  # no longer the JSON that parsed
        return {"products": {}, "targets": {}}
    return {"products": dict(enumerate(layout.product_fields)), "targets": layout.target_fields}


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
            f"target {name!r}: unknown provider {shorten(repr(provider))} ({suggestion(provider, provider_names())})",
            path=("provider",)))
        return
    if "name" in raw:  # the name is the key above: a `name:` would be overwritten without a word
        manifests.problems.append(where.problem(
            f"target {name!r}: name: unknown field (a target's name is its key under `targets:`)", path=("name",)))
    try:
        manifests.targets[name] = Target.model_validate({**raw, "name": name})
    except ValidationError as exc:
        for path, message in validation_messages(exc, _target_keys(provider)):
            manifests.problems.append(where.problem(f"target {name!r}: {message}", path=path))


_TARGET_KEYS = {(): [key for key in Target.model_fields if key != "name"],  # the name is the key above it
                ("limits",): list(TargetLimits.model_fields), ("select",): list(Select.model_fields)}
_PRODUCT_KEYS = {(): list(Product.model_fields)}


def _target_keys(provider: str) -> Callable[[tuple], Collection[str]]:
    """The keys a target of ``provider`` may have at each path."""
    settings = list(get_provider(provider).settings_model.model_fields)
    return lambda path: settings if path == ("settings",) else _TARGET_KEYS.get(path, ())


def validation_messages(exc: ValidationError, keys: Callable[[tuple], Collection[str]] = _PRODUCT_KEYS.get
                        ) -> list[tuple[tuple, str]]:
    """``(field path, message)`` per error; an unknown key gets the closest of
    ``keys(path of its mapping)`` as a hint."""
    messages = []
    for error in exc.errors(include_url=False):
        path = error["loc"]
        loc = ".".join(str(part) for part in path)
        kind = error["type"]
        text = error["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            known = keys(path[:-1]) or ()
            text = f"unknown field ({suggestion(path[-1], known)})" if known else "unknown field"
        elif loc == "currency" and kind == "literal_error":
            text = f"currency {shorten(repr(error['input']))} is not an ISO 4217 code"
        elif loc == "sku" and kind in ("string_pattern_mismatch", "string_too_long", "string_too_short"):
            text = sku_problem(error["input"])
        elif kind == "less_than":
            text = f"must be less than {_bound(error['ctx']['lt'])}"
        elif kind == "less_than_equal":
            text = f"must be at most {_bound(error['ctx']['le'])}"
        messages.append((path, f"{loc}: {text}" if loc else text))
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
        _, problem = _json_line_problem(line)  # valid: only a key given twice is left to find
        return (None, [Location(file, number).problem(problem)]) if problem else (product, [])
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
        return None, [where.problem(message, sku, path) for path, message in validation_messages(exc)]
