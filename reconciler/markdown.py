"""Fitting a markdown comment (a plan on a pull request, a drift report in an issue)
into GitHub's size limit, the budget shared fairly between its sections.

A comment is a head that is always whole (title, summary table, roll-up) and sections
(the deletions, each target's details). Each section gets its frame (opening and
closing) and room for its first unit (a change, an item: never cut in the middle), in
order while they fit; then a fair share of what is left: a section needing less than
an equal share keeps all of it and leaves the rest to the others, so one target with a
million changes cannot crowd the others out of the comment. A section that is cut says how many units it left out, and the
comment ends with a notice saying how to see everything.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence


@dataclass(frozen=True)
class Section:
    """``opening``, then as many ``units()`` as fit, then ``closing(left out)`` (None: no
    line). ``units`` is called once to measure and once to write."""

    opening: str
    units: Callable[[], Iterable[str]]
    total: int
    closing: Callable[[int], str | None]


def share_fairly(demands: Sequence[int], budget: int) -> list[int]:
    """Max-min fair shares of ``budget``: the smallest demands are met whole, and what
    they leave is split equally among the larger ones."""
    shares = [0] * len(demands)
    left = budget
    order = sorted(range(len(demands)), key=demands.__getitem__)
    for done, index in enumerate(order):
        shares[index] = min(demands[index], left // (len(order) - done))
        left -= shares[index]
    return shares


def _needed(section: Section, cap: int) -> int:
    """Characters of all the section's units, counted up to ``cap`` only."""
    used = 0
    for unit in section.units():
        used += len(unit) + 1
        if used > cap:
            break
    return used


def fit(head: str, sections: Sequence[Section], limit: int, notice: Callable[[int], str]) -> str:
    """``head`` and ``sections`` in at most ``limit`` characters; ``notice(n)`` is added
    when ``n`` units were left out."""
    budget = limit - len(head) - len(notice(10**12)) - 2
    framed: list[tuple[Section, int]] = []  # with the room kept for its first unit
    dropped = 0  # units of the sections that do not fit at all (hundreds of targets)
    for section in sections:
        first = next(iter(section.units()), None)
        reserved = 0 if first is None else len(first) + 1
        need = len(section.opening) + len(section.closing(section.total) or "") + 2 + reserved
        if need <= budget and not dropped:
            framed.append((section, reserved))
            budget -= need
        else:
            dropped += section.total
    demands = [max(0, _needed(section, budget + reserved) - reserved) for section, reserved in framed]
    shares = share_fairly(demands, budget)
    lines, omitted = [head], dropped
    for (section, reserved), share in zip(framed, shares):
        kept, used = [], 0
        for unit in section.units():
            if used + len(unit) + 1 > share + reserved:
                break
            kept.append(unit)
            used += len(unit) + 1
        left = section.total - len(kept)
        omitted += left
        closing = section.closing(left)
        lines += [section.opening, *kept, *([closing] if closing is not None else [])]
    return "\n".join(lines) + "\n" + (notice(omitted) if omitted else "")
