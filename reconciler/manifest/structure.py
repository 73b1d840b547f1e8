"""What YAML and JSON manifests may not do, checked before any of their values is used.

* A key given twice in one mapping is an error naming both lines (parsers keep the last
  silently: ``price: 1.00`` then ``price: 999.00`` would give 999).
* YAML: only the plain tags (strings, numbers, booleans, null, timestamps, mappings,
  sequences, merge keys). ``!!python/object``, ``!!set``, ``!!binary`` or a custom tag
  is refused: such values are no manifest data. Aliases may repeat at most
  ``ALIAS_LIMIT`` values in a file, and may not contain themselves: a 20-line alias
  bomb would otherwise expand to billions of values.
* JSON: where each product and target starts (orjson keeps no positions), from a scan
  of the text's tokens, so that every error names its true line.
* Both: the line of each field of a product or a target, by key path
  (``("overrides", "meta-us", "name")``; a list item by its index), so that an error
  about a field names the field's own line.

Problems come back as ``(line, message)``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Iterator

import yaml

ALIAS_LIMIT = 100_000
_YAML = "tag:yaml.org,2002:"
PLAIN_TAGS = frozenset(_YAML + name for name in
                       ("str", "int", "float", "bool", "null", "timestamp", "map", "seq", "merge"))
MERGE = _YAML + "merge"

Problems = list[tuple[int, str]]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def check_yaml(root: yaml.Node) -> Problems:
    """Duplicate keys, tags and aliases of a composed YAML document (aliases are the
    same node met again: composing never expands them; constructing and validating
    would). Iterative: a deep document must not exhaust Python's recursion."""
    problems: Problems = []
    sizes: dict[int, int] = {}     # node -> values it stands for, aliases expanded
    references: dict[int, int] = {}
    nodes: dict[int, yaml.Node] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        ident = id(node)
        if done:
            open_nodes.discard(ident)
            sizes[ident] = 1 + sum(sizes.get(id(child), 0) for child in _children(node))
            continue
        references[ident] = references.get(ident, 0) + 1
        if ident in sizes:
            continue
        if ident in open_nodes:
            problems.append((_line(node), "an alias refers to a value that contains it (a recursive alias)"))
            return problems
        nodes[ident] = node
        open_nodes.add(ident)
        problems.extend(_node_problems(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    added = sizes[id(root)] - len(sizes)
    if added > ALIAS_LIMIT:
        worst = max((n for i, n in nodes.items() if references[i] > 1),
                    key=lambda n: (references[id(n)] - 1) * sizes[id(n)])
        problems.append((_line(worst), f"aliases make the file repeat {added:,} values, more than the "
                                       f"{ALIAS_LIMIT:,} allowed (an alias bomb?); the most repeated one starts here"))
    return problems


def _node_problems(node: yaml.Node) -> Problems:
    problems: Problems = []
    if node.tag not in PLAIN_TAGS:
        tag = node.tag.replace(_YAML, "!!")
        problems.append((_line(node), f"YAML tag {tag} is not allowed in a manifest (only plain values)"))
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if key.tag == MERGE:
                continue
            if not isinstance(key, yaml.ScalarNode):
                problems.append((_line(key), "a mapping key must be a plain value, not a list or mapping"))
                continue
            ident = (key.tag, key.value)
            if ident in seen:
                problems.append((_line(key), f"duplicate key {key.value!r}, first at line {seen[ident]}"))
            else:
                seen[ident] = _line(key)
    return problems


def yaml_item_fields(root: yaml.Node | None) -> dict[str, dict]:
    """The lines of the fields of each item of a composed YAML manifest:
    ``{"products": {index: fields}, "targets": {name: fields}}``."""
    found: dict[str, dict] = {"products": {}, "targets": {}}
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        if key.value == "products" and isinstance(value, yaml.SequenceNode):
            found["products"] = dict(enumerate(yaml_fields(item) for item in value.value))
        elif key.value == "targets" and isinstance(value, yaml.MappingNode):
            found["targets"] = {name.value: yaml_fields(node) for name, node in value.value}
    return found


def yaml_fields(node: yaml.Node) -> dict[tuple, int]:
    """The line of each field under ``node`` (a product or a target), by key path."""
    fields: dict[tuple, int] = {}
    stack: list[tuple[yaml.Node, tuple]] = [(node, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            children = [(path + (key.value,), key, value) for key, value in node.value
                        if isinstance(key, yaml.ScalarNode) and key.tag != MERGE]
        elif isinstance(node, yaml.SequenceNode):
            children = [(path + (index,), item, item) for index, item in enumerate(node.value)]
        else:
            continue
        for child_path, marked, value in children:
            fields.setdefault(child_path, _line(marked))  # a merged or repeated key: its first line
            stack.append((value, child_path))
    return fields


# -- JSON ------------------------------------------------------------------------------
# Tokens of a valid JSON text: strings (a key when a colon follows), brackets, commas and
# bare values (numbers, true, false, null).
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]|[^\s{}\[\],:"]+')


@dataclass
class JsonLayout:
    """Where things are in a JSON manifest: the line of each element of the top-level
    ``products`` list and of its fields (``product_fields``), of each name under
    ``targets`` and of its fields (``target_fields``), and of each top-level key."""

    products: list[int] = field(default_factory=list)
    product_fields: list[dict[tuple, int]] = field(default_factory=list)
    targets: dict[str, int] = field(default_factory=dict)
    target_fields: dict[str, dict[tuple, int]] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    problems: Problems = field(default_factory=list)


@dataclass
class _Frame:
    role: str                      # "root", "products", "targets" or ""
    keys: dict[str, int] | None    # an object's keys and their lines; None for a list
    key: str | None = None         # the key whose value comes next
    fields: dict[tuple, int] | None = None  # the fields of the product or target it is in
    path: tuple = ()               # its own path in that product or target
    items: int = 0                 # a list's items so far


def scan_json(text: str, fields: bool = False) -> JsonLayout:
    """The layout of a JSON text that parsed (so its tokens are well formed), and its
    duplicate keys; with ``fields``, the lines of the fields of each product and
    target too. A key given twice keeps its last value, as parsers do, so the lines
    recorded are those of the last ``products`` list and ``targets`` object."""
    layout = JsonLayout()
    frames: list[_Frame] = []
    expect_key = False
    line, counted = 1, 0
    for match in _TOKEN.finditer(text):
        token, position = match.group(), match.start()
        line += text.count("\n", counted, position)
        counted = position
        first = token[0]
        if first == "}" or first == "]":
            frames.pop()
            expect_key = False
        elif first == ",":
            expect_key = frames[-1].keys is not None
        elif first == ":":
            pass
        elif expect_key:
            key = json.loads(token) if "\\" in token else token[1:-1]
            frame = frames[-1]
            if key in frame.keys:
                layout.problems.append((line, f"duplicate key {key!r}, first at line {frame.keys[key]}"))
            else:
                frame.keys[key] = line
            frame.key = key
            if frame.role == "targets":
                layout.targets[key] = line
            elif frame.role == "root":
                layout.keys.setdefault(key, line)
            if frame.fields is not None:
                frame.fields.setdefault(frame.path + (key,), line)
            expect_key = False
        else:  # a value starts
            parent = frames[-1] if frames else None
            lines, path = None, ()
            if parent is not None and parent.role == "products":
                layout.products.append(line)
                if fields:
                    lines = {}
                    layout.product_fields.append(lines)
            elif parent is not None and parent.role == "targets" and fields:
                lines = layout.target_fields[parent.key] = {}
            elif parent is not None and parent.fields is not None:  # inside a product or a target
                lines = parent.fields
                if parent.keys is None:
                    path = parent.path + (parent.items,)
                    lines.setdefault(path, line)
                else:
                    path = parent.path + (parent.key,)
            if parent is not None and parent.keys is None:
                parent.items += 1
            if first == "{" or first == "[":
                role = "" if parent is not None else "root"
                if parent is not None and parent.role == "root" and parent.key in ("products", "targets"):
                    role = parent.key
                    if role == "products":
                        layout.products, layout.product_fields = [], []
                    else:
                        layout.targets, layout.target_fields = {}, {}
                frames.append(_Frame(role, {} if first == "{" else None, fields=lines, path=path))
                expect_key = first == "{"
    return layout
