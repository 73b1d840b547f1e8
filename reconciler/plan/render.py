"""Showing a plan: text (Terraform-like, for terminals), json (SPEC's format) and
markdown (for a pull-request comment, never longer than 60,000 characters).

Every form is summary first: counts per target and action, and the deletions, come
before any detail, so a reviewer sees what matters even when the details are long.

Text and json come as pieces (:func:`chunks`), a change or so at a time, which the CLI
writes as they come: the first load of a large catalog is a plan of millions of
changes, and its rendering must not be one string of gigabytes held in memory.
"""
from __future__ import annotations

from typing import Any, Iterator

import click
import orjson

from reconciler.plan.model import ACTIONS, Change, Plan

MARKDOWN_LIMIT = 60_000
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}
COLORS = {"create": "green", "update": "yellow", "delete": "red"}


def value_text(value: Any, width: int = 120) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def closing_line(counts: dict[str, int]) -> str:
    return f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete."


def orphan_lines(plan: Plan) -> list[str]:
    """The targets the state holds items of that the manifests no longer declare."""
    return [f"Target {name} is not declared in the manifests, but the state holds {count} of its items: "
            f"they are left as they are, never deleted by omission (`reconciler state rm -t {name} --all` "
            "forgets them)." for name, count in plan.orphans.items()]


def no_changes(plan: Plan) -> str:
    if plan.orphans:
        return "No changes. The destinations of the declared targets match the manifests."
    return "No changes. The destinations match the manifests."


def summary_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for name, target in plan.targets.items():
        s = target.summary
        rows.append([name, target.provider, *(str(s[a]) for a in (*ACTIONS, "unchanged"))])
    return rows


def change_lines(change: Change) -> Iterator[tuple[str, str]]:
    """``(action, line)`` pairs describing one change's fields."""
    before, after = change.before or {}, change.after or {}
    if change.action == "create":
        for name in sorted(after):
            yield "create", f"+ {name} = {value_text(after[name])}"
    elif change.action == "update":
        for name in change.fields.changed:
            yield "update", f"~ {name} = {value_text(before[name])} -> {value_text(after[name])}"
        for name in change.fields.added:
            yield "create", f"+ {name} = {value_text(after[name])}"
        for name in change.fields.removed:
            yield "delete", f"- {name} = {value_text(before[name])}"


# -- text --------------------------------------------------------------------------------
def text_chunks(plan: Plan, color: bool = False, per_target: int | None = None) -> Iterator[str]:
    """The text form, one piece per change (and per heading), each ending in a newline;
    with ``per_target``, the details of at most that many changes per target (the
    summary and the deletions are always whole)."""
    def paint(text: str, action: str, bold: bool = False) -> str:
        return click.style(text, fg=COLORS[action], bold=bold) if color else text

    def bold(text: str) -> str:
        return click.style(text, bold=True) if color else text

    orphans = "".join(f"\nWarning: {line}\n" for line in orphan_lines(plan))
    if not plan.has_changes:
        yield no_changes(plan) + "\n"
        yield from (f"  {name}: {t.unchanged} unchanged\n" for name, t in plan.targets.items())
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
    deletions = [(name, c) for name, t in plan.targets.items() for c in t.changes if c.action == "delete"]
    if deletions:
        yield "\n" + paint(f"Deletions ({len(deletions)}):", "delete", bold=True) + "\n"
        yield from (paint(f"  - {name}: {c.sku} ({c.record})", "delete") + "\n" for name, c in deletions)
    for name, target in plan.targets.items():
        if not target.changes:
            continue
        yield "\n" + bold(f"Target {name} ({target.provider}):") + "\n"
        for change in target.changes[:per_target]:
            lines = [paint(f"  {SYMBOLS[change.action]} {change.record} {change.sku}", change.action, bold=True)]
            lines += [paint(f"      {line}", action) for action, line in change_lines(change)]
            yield "\n" + "\n".join(lines) + "\n"
        if per_target is not None and len(target.changes) > per_target:
            yield (f"\n  … and {len(target.changes) - per_target} more changes not shown here "
                   f"(`reconciler plan -t {name}` shows them all)\n")
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
        for number, change in enumerate(changes):
            yield f"{',' if number else ''}{newline(4)}{dump(change.to_json(), 4)}"
        yield (newline(3) + "]" if changes else "") + newline(2) + "}"
    yield (newline(1) + "}" if targets else "") + "\n}\n"


# -- markdown ------------------------------------------------------------------------------
def render_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    totals = plan.totals()
    head = ["## reconciler plan", ""]
    if not plan.has_changes:
        head.append(f"**No changes.** {no_changes(plan).removeprefix('No changes. ')}")
    else:
        head.append(f"**{closing_line(totals)}**")
    head += [f"\n> :warning: {line}" for line in orphan_lines(plan)]
    head += ["", "| target | provider | create | update | delete | unchanged |",
             "|---|---|--:|--:|--:|--:|"]
    head += ["| " + " | ".join(f"`{c}`" if i < 2 else c for i, c in enumerate(row)) + " |" for row in summary_rows(plan)]
    sections: list[str] = []
    deletions = [(name, c) for name, t in plan.targets.items() for c in t.changes if c.action == "delete"]
    if deletions:
        sections.append(f"\n### :warning: Deletions ({len(deletions)})\n")
        sections.extend(f"- `{name}`: `{c.sku}` ({c.record})" for name, c in deletions)
    for name, target in plan.targets.items():
        if not target.changes:
            continue
        s = target.summary
        sections.append(f"\n<details><summary><code>{name}</code> ({target.provider}): "
                        f"{s['create']} to create, {s['update']} to update, {s['delete']} to delete</summary>\n")
        sections.append("```diff")
        for change in target.changes:
            sections.extend(diff_lines(change))
        sections.append("```\n</details>")
    return fit_markdown("\n".join(head), sections, limit, TRUNCATED_PLAN)


def diff_lines(change: Change) -> Iterator[str]:
    """A change as lines of a ```diff block, which GitHub colours by first character."""
    before, after = change.before or {}, change.after or {}
    if change.action == "create":
        yield f"+ create {change.record} {change.sku}"
        yield from (f"+     {name} = {value_text(after[name])}" for name in sorted(after))
    elif change.action == "delete":
        yield f"- delete {change.record} {change.sku}"
    else:
        yield f"@@ update {change.record} {change.sku} @@"
        for name in change.fields.changed:
            yield f"-     {name} = {value_text(before[name])}"
            yield f"+     {name} = {value_text(after[name])}"
        yield from (f"+     {name} = {value_text(after[name])}" for name in change.fields.added)
        yield from (f"-     {name} = {value_text(before[name])}" for name in change.fields.removed)


TRUNCATED_PLAN = ("\n\n> **Plan truncated** to fit a comment: {n} more lines not shown. "
                  "Run `reconciler plan -o plan.out` then `reconciler show plan.out`, or "
                  "`reconciler plan --format json`, for the full plan.\n")


def fit_markdown(head: str, sections: list[str], limit: int, notice: str) -> str:
    """Join ``head`` and as many section lines as fit in ``limit`` characters; when
    cut, close an open code block and details, and add ``notice`` (``{n}``: the
    number of lines left out), which says how to see everything."""
    budget = limit - len(head) - len(notice) - 40
    kept, used = [], 0
    for index, line in enumerate(sections):
        if used + len(line) + 1 > budget:
            text = "\n".join(kept)
            if text.count("```") % 2:
                text += "\n```"
            if text.count("<details>") > text.count("</details>"):
                text += "\n</details>"
            return head + "\n" + text + notice.format(n=len(sections) - index)
        kept.append(line)
        used += len(line) + 1
    return head + "\n" + "\n".join(kept) + "\n"


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
