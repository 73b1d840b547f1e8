"""Showing text that came from users or servers, so it can never act as anything else.

Skus, field names, values, file names and servers' reasons reach terminals, CI logs and
pull-request comments. A newline in one would forge lines (``Plan: 0 to create``), an
escape sequence would drive the terminal, a right-to-left override would reorder what a
reviewer reads, a backtick would end a markdown code span. :func:`printable` writes
every such character as a Python-style escape (``\\n``, ``\\x1b``, ``\\u202e``);
:func:`code_span` then makes a markdown code span that its content cannot close.
"""
from __future__ import annotations

import html
import re
import unicodedata

# Control, format and surrogate characters, and the line and paragraph separators:
# everything that moves the cursor, changes the direction or breaks a line. Other
# characters print as themselves (accents, emoji, CJK, spaces of every width).
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_BACKTICKS = re.compile(r"`+")
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&:])")


def _escape(char: str) -> str:
    code = ord(char)
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with its control, format and separator characters escaped."""
    if text.isprintable():  # the common case, in C: nothing to escape
        return text
    return "".join(_escape(c) if unicodedata.category(c) in UNSAFE_CATEGORIES else c for c in text)


def shorten(text: str, width: int = 80) -> str:
    """``text`` printable and cut to ``width`` characters (a hostile manifest may hold
    a sku of a megabyte; an error message names it, it need not repeat it)."""
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def code_span(text: str) -> str:
    """``text`` as a markdown code span: fenced by more backticks than it holds in a
    row, and padded when it starts or ends with one (CommonMark's rule)."""
    text = printable(text)
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_text(text: str) -> str:
    """``text`` as plain markdown text: every punctuation mark markdown or its HTML could
    read as syntax backslash-escaped (CommonMark allows it before any ASCII punctuation)."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", printable(text))


def table_cell(text: str) -> str:
    """``text`` as a code span in a markdown table cell (where even a code span's ``|``
    would end the cell)."""
    return code_span(text).replace("|", "\\|")


def html_text(text: str) -> str:
    """``text`` inside markdown's HTML (a ``<details>`` summary)."""
    return html.escape(printable(text))
