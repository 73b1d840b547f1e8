"""Showing a drift report: text (like the plan's), markdown (for an issue or a
pull-request comment: summary table first, details folded, at most 60,000
characters) and json (the shape documented in :mod:`reconciler.drift`).

Remote keys, field names, values and servers' messages are escaped for the form they
appear in (:mod:`reconciler.display`): a hostile server cannot forge report lines.

Symbols are seen from the state: ``~`` an item or field changed remotely, ``-`` held
by the state but missing remotely, ``+`` held remotely only.
"""
from __future__ import annotations

from typing import Callable, Iterator

import click
import orjson

from reconciler.display import code_span, html_text, markdown_text, printable, table_cell
from reconciler.drift import DriftReport, ItemDrift, TargetDrift
from reconciler.drift.compare import FieldDrift
from reconciler.markdown import Section, fit
from reconciler.plan.render import value_text

MARKDOWN_LIMIT = 60_000
COLORS = {"+": "green", "~": "yellow", "-": "red"}
HEADER = ["target", "provider", "remote", "state", "changed", "missing", "unknown", "pending (manifests vs state)"]


def item_text(record: str, key: str) -> str:
    return f"{printable(record)} {printable(key)}"


def drift_line(counts: dict[str, int]) -> str:
    return (f"Drift: {counts['changed']} changed remotely, {counts['missing']} missing remotely, "
            f"{counts['unknown']} unknown to the state.")


def pending_text(target: TargetDrift) -> str:
    p = target.pending
    if p is None:
        return "-"
    text = f"{p['create']} to create, {p['update']} to update, {p['delete']} to delete"
    if target.pending_jobs:
        text += f"; {target.pending_jobs} async job(s) pending"
    return text


def summary_rows(report: DriftReport) -> list[list[str]]:
    rows = []
    for name, t in report.targets.items():
        if t.compared:
            counts = [str(t.remote_count), str(t.state_count), *(str(v) for v in t.counts().values())]
        else:
            counts = ["error" if t.error else "not readable", "-", "-", "-", "-"]
        rows.append([printable(name), printable(t.provider), *counts, pending_text(t)])
    return rows


def field_lines(field: FieldDrift) -> Iterator[tuple[str, str]]:
    name = printable(field.field)
    if field.kind == "changed":
        yield "~", f"~ {name} = {value_text(field.state)} -> {value_text(field.remote)}"
    elif field.kind == "added":
        yield "+", f"+ {name} = {value_text(field.remote)}   (only remotely)"
    else:
        yield "-", f"- {name} = {value_text(field.state)}   (only in the state)"


def hints(report: DriftReport) -> list[str]:
    out = []
    totals = report.totals()
    if totals["changed"] or totals["missing"]:
        out.append("To repair: `reconciler plan --refresh` shows the plan that restores the state's values "
                   "(and re-creates missing items); apply it to repair the drift.")
    unknown = [name for name, t in report.targets.items() if t.unknown]
    if unknown:
        out.append("To adopt remote items the state does not know: "
                   + ", ".join(f"`reconciler import -t {name}`" for name in unknown) + ".")
    return out


def headline(report: DriftReport, name_text: Callable[[str], str] = printable) -> str:
    """The first line: never claims more than was compared (a target that could not be
    read, or whose provider cannot be read, was not), and names the targets that could
    not be read (``name_text``: a name as the format shows it)."""
    unread = [name_text(name) for name, t in report.targets.items() if t.error]
    could_not = f" Could not read {', '.join(unread)}." if unread else ""
    if report.has_drift:
        return "Drift found." + could_not
    if unread:
        return "No drift where the catalogs could be read." + could_not
    if any(not t.compared for t in report.targets.values()):
        return "No drift. The readable destinations match the state."
    return "No drift. The destinations match the state."


# -- text --------------------------------------------------------------------------------
def render_text(report: DriftReport, color: bool = False) -> str:
    def paint(text: str, symbol: str, bold: bool = False) -> str:
        return click.style(text, fg=COLORS[symbol], bold=bold) if color else text

    def bold(text: str) -> str:
        return click.style(text, bold=True) if color else text

    out = [headline(report), "", "Summary:"]
    rows = summary_rows(report)
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    for row in [HEADER, *rows]:
        cells = [c.ljust(w) if i < 2 or i == len(HEADER) - 1 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  " + "  ".join(cells).rstrip())
    for name, t in report.targets.items():
        if t.compared and not t.drifted and not t.pending_jobs and not t.note:
            continue
        out.append("")
        out.append(bold(f"Target {printable(name)} ({printable(t.provider)}):"))
        if t.error:
            out.append(f"  Error: {printable(t.error)}")
            continue
        if t.note:
            out.append(f"  {printable(t.note)}.")
            if not t.compared:
                continue
        if t.pending_jobs:
            out.append(f"  {t.pending_jobs} asynchronous job(s) are not settled yet; their items may still "
                       "change remotely (`reconciler status` settles them).")
        for item in t.changed:
            out.append("")
            out.append(paint(f"  ~ {item_text(item.record, item.sku)} (changed remotely)", "~", bold=True))
            out.extend(paint(f"      {line}", symbol) for f in item.fields for symbol, line in field_lines(f))
        if t.missing:
            out.append("")
            out.extend(paint(f"  - {item_text(record, sku)} (missing remotely)", "-") for record, _, sku in t.missing)
        if t.unknown:
            out.append("")
            out.extend(paint(f"  + {item_text(record, key)} (unknown to the state) {value_text(payload, 100)}", "+")
                       for record, key, payload in t.unknown)
        if t.drifted:
            out.append("")
            out.append(f"  {drift_line(t.counts())}")
    out.append("")
    out.append(bold(drift_line(report.totals())))
    out.extend(hints(report))
    return "\n".join(out) + "\n"


# -- json --------------------------------------------------------------------------------
def render_json(report: DriftReport) -> str:
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


# -- markdown ------------------------------------------------------------------------------
def _diff_units(t: TargetDrift) -> Iterator[str]:
    """One unit of the markdown per item (see :mod:`reconciler.markdown`)."""
    for item in t.changed:
        yield "\n".join([f"@@ {item_text(item.record, item.sku)} changed remotely @@", *_item_lines(item)])
    for record, _, sku in t.missing:
        yield f"- {item_text(record, sku)} missing remotely"
    for record, key, payload in t.unknown:
        yield f"+ {item_text(record, key)} unknown to the state {value_text(payload, 100)}"


def _item_lines(item: ItemDrift) -> Iterator[str]:
    for f in item.fields:
        name = printable(f.field)
        if f.kind != "added":
            yield f"-     {name} = {value_text(f.state)}" + ("" if f.kind == "changed" else "   (only in the state)")
        if f.kind != "removed":
            yield f"+     {name} = {value_text(f.remote)}" + ("" if f.kind == "changed" else "   (only remotely)")


def render_markdown(report: DriftReport, limit: int = MARKDOWN_LIMIT) -> str:
    totals = report.totals()
    head = ["## reconciler drift", ""]
    sentence, _, rest = headline(report, code_span).partition(". ")
    if report.has_drift:
        rest = (f"{totals['changed']} changed remotely, {totals['missing']} missing remotely, "
                f"{totals['unknown']} unknown to the state.{rest and ' '}{rest}")
    head.append(f"**{sentence.removesuffix('.')}.** {rest}")
    head += ["", "| " + " | ".join(HEADER) + " |", "|---|---|--:|--:|--:|--:|--:|---|"]
    head += ["| " + " | ".join(table_cell(c) if i < 2 else c for i, c in enumerate(row)) + " |"
             for row in summary_rows(report)]
    notes = []
    for name, t in report.targets.items():
        if t.error:  # a server's words: kept inside a code span
            notes.append(f"- :x: {code_span(name)}: {code_span(t.error)}")
        elif t.note:
            notes.append(f"- {code_span(name)}: {markdown_text(t.note)}.")
        elif t.pending_jobs:
            notes.append(f"- {code_span(name)}: {t.pending_jobs} asynchronous job(s) not settled yet "
                         "(`reconciler status`); their items may still change remotely.")
    if notes:
        head += [""] + notes
    advice = hints(report)
    if advice:
        head += [""] + [f"> {line}" for line in advice]
    sections = [_details_section(name, t) for name, t in report.targets.items() if t.drifted]
    return fit("\n".join(head), sections, limit, _truncated_report)


def _details_section(name: str, t: TargetDrift) -> Section:
    c = t.counts()
    opening = (f"\n<details><summary><code>{html_text(name)}</code> ({html_text(t.provider)}): {c['changed']} changed, "
               f"{c['missing']} missing, {c['unknown']} unknown</summary>\n\n```diff")

    def closing(left: int) -> str:
        more = f"\n_… and {left:,} more items of {code_span(name)} not shown._\n" if left else ""
        return f"```\n{more}</details>"

    return Section(opening, lambda: _diff_units(t), c["changed"] + c["missing"] + c["unknown"], closing)


def _truncated_report(left: int) -> str:
    return (f"\n> **Report truncated** to fit a comment: {left:,} more items not shown. "
            "Run `reconciler drift` or `reconciler drift --format json` for the full report.\n")


def render(report: DriftReport, fmt: str, color: bool = False) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_text(report, color=color)
