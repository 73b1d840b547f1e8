"""Prices as a Meta catalog reads them back, in integer minor units.

Meta does not document the format of ``price`` and ``sale_price`` on read: its SDKs
type them as a string on read (an unsigned integer of minor units on write), and the
strings seen are formatted amounts such as ``"$1,299.00"``, ``"R$ 1.299,90"``,
``"1.299,00 €"``, ``"¥1,299"`` or ``"12.99 USD"``. So a price is read with the item's
``currency`` (or the one ISO code the string names) and that currency's number of
decimals (ISO 4217: JPY 0, USD 2, KWD 3):

* the number is the one run of digits and separators (``.``, ``,``, spaces, ``'``)
  between the affixes (symbols, codes, spaces); a sign, a second number, or an ISO
  code other than the item's is an error;
* with two kinds of separators the last one is the decimal mark; with one kind, a
  single ``.`` or ``,`` followed by 1 to ``decimals`` digits is the decimal mark, and a
  separator followed by three digits is a thousands separator (the currency cannot
  have three decimals then: with three, ``"1.299"`` is ambiguous and an error);
* thousands groups must be of three digits (or of two before the last three, as in
  ``"1,29,999.00"``), and the decimals at most the currency's: ``"¥12.5"`` and
  ``"12.9999 USD"`` are errors, and ``"12.999 USD"`` is twelve thousand dollars.

An integer is minor units (what the API takes), as is a string of digits alone. A
price that cannot be read this way raises :class:`PriceError`: never a guess.
"""
from __future__ import annotations

import re
from typing import Any

from reconciler.manifest.currencies import exponent
from reconciler.providers._common import is_count

SEPARATORS = ".,' \u00a0\u202f\u2009\u2019"
DECIMAL_MARKS = ".,"
CODE = re.compile(r"(?<![A-Za-z])[A-Z]{3}(?![A-Za-z])")
SEPARATOR = re.compile(f"[{re.escape(SEPARATORS)}]")


class PriceError(ValueError):
    """A price that cannot be read without guessing."""


def minor_units(value: Any, currency: str | None) -> int:
    """``value`` (as the Graph API returns it) in minor units of ``currency``."""
    if is_count(value):
        return value
    if not isinstance(value, str):
        raise PriceError(f"{value!r} is not a price")
    text = value.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    currency = _currency(text, currency)
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    if not digits:
        raise PriceError(f"{value!r} holds no amount")
    number, before, after = text[digits[0]:digits[-1] + 1], text[:digits[0]], text[digits[-1] + 1:]
    if any(sign in before + after for sign in "-(\u2212"):
        raise PriceError(f"{value!r} is negative")
    if before[-1:] in (*DECIMAL_MARKS, "'") or after[:1] in (*DECIMAL_MARKS, "'"):
        raise PriceError(f"{value!r} is not one amount")  # ".99" or "12.": a mark with no digits beside it
    if any(not (ch.isascii() and ch.isdigit()) and ch not in SEPARATORS for ch in number):
        raise PriceError(f"{value!r} is not one amount")
    decimals = exponent(currency)
    whole, fraction = _split(number, decimals, value, currency)
    return int(whole + fraction.ljust(decimals, "0"))


def _currency(text: str, currency: str | None) -> str:
    codes = set(CODE.findall(text))
    if currency is None:
        if len(codes) != 1:
            raise PriceError(f"{text!r} has no currency to read it with")
        return codes.pop()
    if codes - {currency}:
        raise PriceError(f"{text!r} names {', '.join(sorted(codes))}, but the item's currency is {currency}")
    return currency


def _split(number: str, decimals: int, value: str, currency: str) -> tuple[str, str]:
    """``(whole digits, decimal digits)`` of ``number``."""
    groups = SEPARATOR.split(number)
    seps = SEPARATOR.findall(number)
    if not seps:
        return number, ""
    last, tail = seps[-1], groups[-1]
    if len(set(seps)) > 1:
        if last not in DECIMAL_MARKS or seps.count(last) > 1:
            raise PriceError(f"{value!r}: no decimal mark can be told apart")
        decimal = True
    elif last in DECIMAL_MARKS and len(seps) == 1 and len(tail) != 3:
        decimal = True
    elif len(tail) == 3 and decimals == 3 and last in DECIMAL_MARKS and len(seps) == 1:
        raise PriceError(f"{value!r}: {last!r} may be a thousands separator or the decimal mark of {currency}")
    else:
        decimal = False
    if decimal:
        if not 1 <= len(tail) <= decimals:
            raise PriceError(f"{value!r} has {len(tail)} decimal(s), and {currency} has {decimals}")
        groups = groups[:-1]
    _check_grouping(groups, value)
    return "".join(groups), tail if decimal else ""


def _check_grouping(groups: list[str], value: str) -> None:
    """Thousands groups: 1-3 digits, then threes; or Indian: 1-2, then twos, then three."""
    first, rest = groups[0], groups[1:]
    if not rest:
        if not first:
            raise PriceError(f"{value!r} is not one amount")
        return
    western = 1 <= len(first) <= 3 and all(len(g) == 3 for g in rest)
    indian = 1 <= len(first) <= 2 and all(len(g) == 2 for g in rest[:-1]) and len(rest[-1]) == 3
    if not (western or indian):
        raise PriceError(f"{value!r} is not grouped in thousands")
