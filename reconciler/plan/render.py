"""Showing a plan: text (Terraform-like, for terminals), json (SPEC's format) and
markdown (for a pull-request comment, never longer than 60,000 characters).

Every form is summary first: counts per target and action, and the deletions, come
before any detail, so a reviewer sees what matters even when the details are long.

Every user-supplied string (skus, field names, values) is escaped for the form it
appears in (:mod:`reconciler.display`): a hostile sku cannot forge a line, drive the
terminal or leave a markdown code span.

Text and json come as pieces (:func:`chunks`), a change or so at a time, which the CLI
writes as they come: the first load of a large catalog is a plan of millions of
changes, and its rendering must not be one string of gigabytes held in memory.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterator

import click
import orjson

from reconciler.display import code_span, html_text, markdown_text, printable, table_cell
from reconciler.markdown import Section, fit
from reconciler.plan.model import ACTIONS, Change, Changes, Plan, TargetPlan

MARKDOWN_LIMIT = 60_000
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}
COLORS = {"create": "green", "update": "yellow", "delete": "red"}


def value_text(value: Any, width: int = 120) -> str:
    text = printable(orjson.dumps(value).decode())  # JSON escapes C0 controls, not the others
    return text if len(text) <= width else text[: width - 1] + "…"


def item_text(change: Change) -> str:
    return f"{printable(change.record)} {printable(change.sku)}"


def closing_line(counts: dict[str, int]) -> str:
    return f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete."


def warning_lines(plan: Plan) -> list[str]:
    """What the plan warns of: the targets the state holds items of that the manifests
    no longer declare, and what a provider says apply cannot carry out as planned."""
    return [f"Target {printable(name)} is not declared in the manifests, but the state holds {count} of its items: "
            f"they are left as they are, never deleted by omission (`reconciler state rm -t {printable(name)} --all` "
            "forgets them)." for name, count in plan.orphans.items()] + [
        f"Target {printable(name)}: {printable(text)}" for name, target in plan.targets.items()
        for text in target.warnings]


def no_changes(plan: Plan) -> str:
    if plan.orphans:
        return "No changes. The destinations of the declared targets match the manifests."
    return "No changes. The destinations match the manifests."


def summary_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for name, target in plan.targets.items():
        s = target.summary
        rows.append([printable(name), printable(target.provider), *(str(s[a]) for a in (*ACTIONS, "unchanged"))])
    return rows


def change_lines(change: Change) -> Iterator[tuple[str, str]]:
    """``(action, line)`` pairs describing one change's fields."""
    before, after = change.before or {}, change.after or {}
    if change.action == "create":
        for name in sorted(after):
            yield "create", f"+ {printable(name)} = {value_text(after[name])}"
    elif change.action == "update":
        for name in change.fields.changed:
            yield "update", f"~ {printable(name)} = {value_text(before[name])} -> {value_text(after[name])}"
        for name in change.fields.added:
            yield "create", f"+ {printable(name)} = {value_text(after[name])}"
        for name in change.fields.removed:
            yield "delete", f"- {printable(name)} = {value_text(before[name])}"


# -- text --------------------------------------------------------------------------------
def text_chunks(plan: Plan, color: bool = False, per_target: int | None = None) -> Iterator[str]:
    """The text form, one piece per change (and per heading), each ending in a newline;
    with ``per_target``, the details of at most that many changes per target (the
    summary and the deletions are always whole)."""
    def paint(text: str, action: str, bold: bool = False) -> str:
        return click.style(text, fg=COLORS[action], bold=bold) if color else text

    def bold(text: str) -> str:
        return click.style(text, bold=True) if color else text

    orphans = "".join(f"\nWarning: {line}\n" for line in warning_lines(plan))
    if not plan.has_changes:
        yield no_changes(plan) + "\n"
        yield from (f"  {printable(name)}: {t.unchanged} unchanged\n" for name, t in plan.targets.items())
        yield orphans
        return
    header = ["target", "provider", *ACTIONS, "unchanged"]
    rows = summary_rows(plan)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    yield "Summary:\n"
    for row in [header, *rows]:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        yield "  " + "  ".join(cells) + "\n"
    yield orphans
    deletions = plan.totals()["delete"]
    if deletions:
        yield "\n" + paint(f"Deletions ({deletions}):", "delete", bold=True) + "\n"
        yield from (paint(f"  - {printable(name)}: {printable(c.sku)} ({printable(c.record)})", "delete") + "\n"
                    for name, c in plan.deletions())
    for name, target in plan.targets.items():
        if not target.changes:
            continue
        yield "\n" + bold(f"Target {printable(name)} ({printable(target.provider)}):") + "\n"
        for change in target.changes[:per_target]:
            lines = [paint(f"  {SYMBOLS[change.action]} {item_text(change)}", change.action, bold=True)]
            lines += [paint(f"      {line}", action) for action, line in change_lines(change)]
            yield "\n" + "\n".join(lines) + "\n"
        if per_target is not None and len(target.changes) > per_target:
            yield (f"\n  … and {len(target.changes) - per_target} more changes not shown here "
                   f"(`reconciler plan -t {printable(name)}` shows them all)\n")
        yield f"\n  {closing_line(target.summary)}\n"
    yield "\n" + bold(closing_line(plan.totals())) + "\n"


# -- json --------------------------------------------------------------------------------
def json_chunks(plan: Plan) -> Iterator[str]:
    """``orjson.dumps(plan.to_json())``, indented by two spaces and ending in a newline,
    to the byte, one piece per change."""
    def dump(value: Any, level: int) -> str:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode().replace("\n", newline(level))

    def newline(level: int) -> str:
        return "\n" + "  " * level

    def member(key: str, value: Any, level: int) -> str:
        return f"{newline(level)}{dump(key, 0)}: {dump(value, level)}"

    skeleton = plan.to_json(changes=False)
    targets = skeleton.pop("targets")
    yield "{" + ",".join(member(key, value, 1) for key, value in skeleton.items()) + ","
    yield f'{newline(1)}"targets": {{' if targets else f'{newline(1)}"targets": {{}}'
    for index, (name, target) in enumerate(targets.items()):
        changes = plan.targets[name].changes
        opening = ",".join(member(key, value, 3) for key, value in target.items())
        yield (f"{',' if index else ''}{newline(2)}{dump(name, 0)}: {{{opening},"
               f'{newline(3)}"changes": {"[" if changes else "[]"}')
        for number, line in enumerate(changes.lines()):  # each change's JSON: no Change object made
            yield f"{',' if number else ''}{newline(4)}{dump(orjson.loads(line), 4)}"
        yield (newline(3) + "]" if changes else "") + newline(2) + "}"
    yield (newline(1) + "}" if targets else "") + "\n}\n"


# -- markdown ------------------------------------------------------------------------------
# How many fields a target's line of the roll-up names before "and N more fields".
ROLLUP_FIELDS = 12


def render_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """The plan for a pull-request comment: the summary table and a roll-up of the
    updates by field, whole; then the deletions and each target's details, sharing
    what is left of ``limit`` fairly (see :mod:`reconciler.markdown`)."""
    head = ["## reconciler plan", ""]
    if not plan.has_changes:
        head.append(f"**No changes.** {no_changes(plan).removeprefix('No changes. ')}")
    else:
        head.append(f"**{closing_line(plan.totals())}**")
    head += [f"\n> :warning: {line}" for line in warning_lines(plan)]
    head += ["", "| target | provider | create | update | delete | unchanged |",
             "|---|---|--:|--:|--:|--:|"]
    head += ["| " + " | ".join(table_cell(c) if i < 2 else c for i, c in enumerate(row)) + " |" for row in summary_rows(plan)]
    rollup = [f"- {code_span(name)}: {text}" for name, target in plan.targets.items()
              if target.summary["update"] and (text := field_rollup(target.changes))]
    if rollup:
        head += ["", "### Updates by field", "", *rollup]
    sections = []
    deletions = plan.totals()["delete"]
    if deletions:  # read again each time the fitter asks (a change at a time)
        sections.append(Section(
            f"\n### :warning: Deletions ({deletions})\n",
            lambda: (f"- {code_span(name)}: {code_span(c.sku)} ({markdown_text(c.record)})" for name, c in plan.deletions()),
            deletions,
            lambda left: f"- _… and {left:,} more deletions not shown_" if left else None))
    for name, target in plan.targets.items():
        if target.changes:
            sections.append(details_section(name, target))
    return fit("\n".join(head), sections, limit, truncated_plan)


def field_rollup(changes: Changes) -> str:
    """The updates of one target by field, most frequent first: "`price` changed on
    1,204 items, `name` changed on 3, `gtin` added on 2". Every change is read once,
    a line at a time, keeping a count per field; only its JSON is parsed (making a
    :class:`Change` of each was most of a large plan's comment's time)."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in changes.lines():
        change = orjson.loads(line)
        if change["action"] == "update":
            for verb, names in change["fields"].items():  # changed, added, removed
                counts.update((verb, name) for name in names)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))
    parts = [f"{code_span(name)} {verb} on {n:,} item{'s' if n != 1 else ''}" for (verb, name), n in ranked[:ROLLUP_FIELDS]]
    if len(ranked) > ROLLUP_FIELDS:
        parts.append(f"and {len(ranked) - ROLLUP_FIELDS} more fields")
    return ", ".join(parts)


def details_section(name: str, target: TargetPlan) -> Section:
    s = target.summary
    opening = (f"\n<details><summary><code>{html_text(name)}</code> ({html_text(target.provider)}): "
               f"{s['create']} to create, {s['update']} to update, {s['delete']} to delete</summary>\n\n```diff")

    def closing(left: int) -> str:
        more = f"\n_… and {left:,} more changes to {code_span(name)} not shown._\n" if left else ""
        return f"```\n{more}</details>"

    return Section(opening, lambda: ("\n".join(diff_lines(c)) for c in target.changes), len(target.changes), closing)


def diff_lines(change: Change) -> Iterator[str]:
    """A change as lines of a ```diff block, which GitHub colours by first character."""
    before, after = change.before or {}, change.after or {}
    if change.action == "create":
        yield f"+ create {item_text(change)}"
        yield from (f"+     {printable(name)} = {value_text(after[name])}" for name in sorted(after))
    elif change.action == "delete":
        yield f"- delete {item_text(change)}"
    else:
        yield f"@@ update {item_text(change)} @@"
        for name in change.fields.changed:
            yield f"-     {printable(name)} = {value_text(before[name])}"
            yield f"+     {printable(name)} = {value_text(after[name])}"
        yield from (f"+     {printable(name)} = {value_text(after[name])}" for name in change.fields.added)
        yield from (f"-     {printable(name)} = {value_text(before[name])}" for name in change.fields.removed)


def truncated_plan(left: int) -> str:
    return (f"\n> **Plan truncated** to fit a comment: {left:,} more changes not shown. "
            "Run `reconciler plan -o plan.out` then `reconciler show plan.out`, or "
            "`reconciler plan --format json`, for the full plan.\n")


# The marker of a plan the mass-delete guard refused, for tools that post the comment
# (the GitHub Actions recipe adds how to approve it there).
MASS_DELETE_REFUSED = "<!-- reconciler: mass-delete refused -->"


def render_refusal_markdown(error: Exception) -> str:
    """What a pull request should say when no plan could be made: for the mass-delete
    guard, which targets, why the guard exists and how to approve the deletions."""
    from reconciler.plan.planner import MassDeleteError

    if isinstance(error, MassDeleteError):
        reasons = [f"- {line}" for line in str(error).splitlines()]
        return "\n".join([
            "## reconciler plan", "", MASS_DELETE_REFUSED,
            "**:no_entry: Refused by the mass-delete guard.** No plan was made; nothing will be applied.", "",
            *reasons, "",
            "A target may lose at most its `max_delete_fraction` of its items in one plan (default 10%), so "
            "that an emptied or truncated manifest file cannot wipe a catalog.", "",
            "* If these deletions are a mistake, fix the manifests; this comment is updated on the next push.",
            "* If they are intended, approve them: `reconciler plan --allow-mass-delete -o plan.out` makes the "
            "plan with them (review it with `reconciler show plan.out`), and `reconciler apply plan.out` applies "
            "exactly it.", ""])
    message = str(error)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", message)), default=0))
    return "\n".join(["## reconciler plan", "", "**:x: No plan could be made.**", "",
                      f"{fence}text", message, fence, ""])


def chunks(plan: Plan, fmt: str, color: bool = False, per_target: int | None = None) -> Iterator[str]:
    """The plan in ``fmt`` (text, json or markdown), piece by piece (``per_target``:
    see :func:`text_chunks`)."""
    if fmt == "text":
        return text_chunks(plan, color, per_target)
    if fmt == "json":
        return json_chunks(plan)
    return iter([render_markdown(plan)])


def render(plan: Plan, fmt: str, color: bool = False) -> str:
    return "".join(chunks(plan, fmt, color))
