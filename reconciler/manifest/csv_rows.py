"""CSV manifests: a header row, then one product per row, streamed.

Each row becomes a raw product (:func:`csv_product`): empty cells are absent, list
fields split on ``|``, ``metadata.KEY``/``attributes.KEY``/``overrides.TARGET.FIELD``
columns fill those objects. What is wrong with the header (a column twice, a column that
is no product field) is said once, for the file, not on each of its rows; a row with
bytes that are not UTF-8 or with more or fewer cells than the header is an error at its
line.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Iterator

from reconciler.display import shorten
from reconciler.errors import Problem, suggestion
from reconciler.manifest.loader import Location, Manifests
from reconciler.manifest.models import Product

LIST_FIELDS = frozenset({"additional_image_urls", "categories", "tags", "targets"})
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
        # an unknown column is said once, here, and its cells left out of every row
        header, unknown = _known_columns(header)
        manifests.problems.extend(Problem(name, 1, None, message) for message in unknown)
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


_NESTED = ("metadata", "attributes", "overrides")  # columns that need a key after a dot


def _known_columns(header: list[str]) -> tuple[list[str | None], list[str]]:
    """The header with each unknown column as None, and a message per unknown column."""
    columns: list[str | None] = []
    problems = []
    for number, column in enumerate(header, 1):
        head, dot, rest = column.partition(".")
        if head in _NESTED[:2] and rest or head == "overrides" and all(rest.partition(".")[::2]):
            columns.append(column)
        elif not dot and column in Product.model_fields and column not in _NESTED:
            columns.append(column)
        else:
            columns.append(None)
            if head in _NESTED:
                hint = f"{head}.TARGET.FIELD" if head == "overrides" else f"{head}.KEY"
                problems.append(f"column {number} {shorten(repr(column))}: write it {hint}")
            else:
                fields = [f for f in Product.model_fields if f not in _NESTED]
                problems.append(f"column {number} {shorten(repr(column))} is not a product field "
                                f"({suggestion(column, fields)}); its cells are not read")
    return columns, problems


def _undecoded(cells: list[str]) -> tuple[int, str] | None:
    """``(lines into the row, message)`` for the first byte of ``cells`` that was not
    UTF-8, if any."""
    text = "\x00".join(cells)
    match = _UNDECODED.search(text)
    if match is None:
        return None
    byte = ord(match.group()) - 0xDC00
    return text.count("\n", 0, match.start()), f"invalid UTF-8 (byte 0x{byte:02x}); save the file as UTF-8"


def csv_product(header: list[str | None], row: list[str]) -> dict[str, Any]:
    """A CSV row as a raw product: empty cells are absent (and those of unknown columns,
    None), list fields split on ``|``, ``metadata.KEY``/``attributes.KEY``/
    ``overrides.TARGET.FIELD`` fill those objects."""
    product: dict[str, Any] = {}
    for column, cell in zip(header, row):
        if cell == "" or column is None:
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
