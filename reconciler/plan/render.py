"""Showing a plan: text (Terraform-like, for terminals), json (SPEC's format) and
markdown (for a pull-request comment, never longer than 60,000 characters).

Every form is summary first: counts per target and action, and the deletions, come
before any detail, so a reviewer sees what matters even when the details are long.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

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
def render_text(plan: Plan, color: bool = False) -> str:
    def paint(text: str, action: str, bold: bool = False) -> str:
        return click.style(text, fg=COLORS[action], bold=bold) if color else text

    out: list[str] = []
    if not plan.has_changes:
        out.append("No changes. The destinations match the manifests.")
        out.extend(f"  {name}: {t.unchanged} unchanged" for name, t in plan.targets.items())
        return "\n".join(out) + "\n"
    header = ["target", "provider", *ACTIONS, "unchanged"]
    rows = summary_rows(plan)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out.append("Summary:")
    for row in [header, *rows]:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  " + "  ".join(cells))
    deletions = [(name, c) for name, t in plan.targets.items() for c in t.changes if c.action == "delete"]
    if deletions:
        out.append("")
        out.append(paint(f"Deletions ({len(deletions)}):", "delete", bold=True))
        out.extend(paint(f"  - {name}: {c.sku} ({c.record})", "delete") for name, c in deletions)
    for name, target in plan.targets.items():
        if not target.changes:
            continue
        out.append("")
        out.append(click.style(f"Target {name} ({target.provider}):", bold=True) if color else f"Target {name} ({target.provider}):")
        for change in target.changes:
            out.append("")
            out.append(paint(f"  {SYMBOLS[change.action]} {change.record} {change.sku}", change.action, bold=True))
            out.extend(paint(f"      {line}", action) for action, line in change_lines(change))
        out.append("")
        out.append(f"  {closing_line(target.summary)}")
    out.append("")
    out.append(click.style(closing_line(plan.totals()), bold=True) if color else closing_line(plan.totals()))
    return "\n".join(out) + "\n"


# -- json --------------------------------------------------------------------------------
def render_json(plan: Plan) -> str:
    return orjson.dumps(plan.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


# -- markdown ------------------------------------------------------------------------------
def render_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    totals = plan.totals()
    head = ["## reconciler plan", ""]
    if not plan.has_changes:
        head.append("**No changes.** The destinations match the manifests.")
    else:
        head.append(f"**{closing_line(totals)}**")
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


RENDERERS: dict[str, Callable[..., str]] = {"text": render_text, "json": render_json, "markdown": render_markdown}


def render(plan: Plan, fmt: str, color: bool = False) -> str:
    return render_text(plan, color=color) if fmt == "text" else RENDERERS[fmt](plan)
