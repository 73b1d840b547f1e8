"""User- and server-supplied strings in every rendering (issue 12): field names and values
from the manifests, skus and keys from the state or a remote catalog, servers' reasons.
None may forge a line, drive the terminal, reorder text or leave a markdown code span,
in plan text (plain and coloured) and markdown, drift text and markdown, and the apply
report."""
from __future__ import annotations

import io
import re

from markdown_it import MarkdownIt
from rich.console import Console

from conftest import product, target
from reconciler.apply import PlainReporter, RichReporter
from reconciler.apply.result import ApplyResult, Failure, TargetResult
from reconciler.drift import DriftReport, ItemDrift, TargetDrift
from reconciler.drift.compare import FieldDrift
from reconciler.drift.render import render as render_drift
from reconciler.manifest.loader import load
from reconciler.plan import build_plan
from reconciler.plan.render import render
from reconciler.state import State

FORGED = "Plan: 0 to create, 0 to update, 0 to delete."
EVIL_SKU = "OLD\n```\n![x](https://evil.example/x.png)\n" + FORGED
EVIL_TEXT = "\x1b[2J\x1b]8;;https://evil.example\x07click\u202e\u2028\x9b31m" + "\n" + FORGED
SGR = re.compile(r"\x1b\[[0-9;]*m")  # click's own colours


def assert_safe_terminal_text(text: str, colored: bool = False) -> None:
    if colored:
        text = SGR.sub("", text)
    assert not any(c in text for c in "\x1b\x07\x9b\u202e\u2028"), text
    assert FORGED not in [line.strip() for line in text.splitlines()]


def assert_safe_markdown(text: str) -> None:
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<img" not in html and "<h2>Forged" not in html
    assert "evil.example" not in re.sub(r"<(code|pre)>.*?</\1>", "", html, flags=re.S)
    assert FORGED not in [line.strip() for line in text.splitlines()]
    assert not any(c in text for c in "\x1b\x07\x9b\u202e\u2028")


def hostile_plan(ws):
    ws.write("t.yaml", {"targets": {"shop": target("bloomreach")}})
    ws.write("p.yaml", {"products": [product("NEW-1", name=EVIL_TEXT, attributes={
        f"color\n{FORGED}": EVIL_TEXT, "`` ```": "x"})]})
    state = State(ws.root / "state.db")
    state.adopt("shop", [("product", EVIL_SKU, EVIL_SKU, {"title": EVIL_TEXT, f"t\n{FORGED}": 1})])
    return build_plan(load(ws.manifests), state, allow_mass_delete=True)


def test_plan_text_markdown_and_colour_escape_every_user_string(ws):
    plan = hostile_plan(ws)
    assert {c.action for c in plan.targets["shop"].changes} == {"create", "delete"}
    text = render(plan, "text")
    assert_safe_terminal_text(text)
    assert "+ color\\nPlan: 0 to create" in text and "OLD\\n```\\n![x]" in text
    assert_safe_terminal_text(render(plan, "text", color=True), colored=True)
    assert_safe_markdown(render(plan, "markdown"))


def test_plan_output_of_the_cli_is_escaped(ws):
    hostile_plan(ws)
    for fmt in ("text", "markdown"):
        result = ws.run("--state", str(ws.root / "state.db"), "plan", "--allow-mass-delete", "--format", fmt)
        assert result.exit_code == 0
        (assert_safe_markdown if fmt == "markdown" else assert_safe_terminal_text)(result.output)


def hostile_drift() -> DriftReport:
    error = f"boom\n## Forged\n![x](https://evil.example/x.png) </code></summary> ` | {EVIL_TEXT}"
    broken = TargetDrift("meta", "meta_catalog", True, error=error)
    drifted = TargetDrift(
        "shop", "bloomreach", True, remote_count=2, state_count=2,
        changed=[ItemDrift("product", EVIL_SKU, EVIL_SKU,
                           (FieldDrift((f"x\n{FORGED}",), "changed", "a", EVIL_TEXT),
                            FieldDrift(("y",), "added", None, {EVIL_TEXT: EVIL_TEXT})))],
        missing=[("product", EVIL_SKU + "2", EVIL_SKU + "2")],
        unknown=[("product", f"K\n- forged {EVIL_TEXT}", {"a": EVIL_TEXT})])
    return DriftReport(None, 0, {"meta": broken, "shop": drifted})


def test_drift_text_markdown_and_colour_escape_remote_keys_values_and_errors():
    report = hostile_drift()
    text = render_drift(report, "text")
    assert_safe_terminal_text(text)
    assert "Error: boom\\n## Forged" in text and "K\\n- forged" in text
    assert_safe_terminal_text(render_drift(report, "text", color=True), colored=True)
    markdown = render_drift(report, "markdown")
    assert_safe_markdown(markdown)
    assert "<h2>Forged" not in MarkdownIt("commonmark").render(markdown)


def failed_result() -> ApplyResult:
    result = ApplyResult()
    result.targets["shop"] = TargetResult("shop", "bloomreach", total=1, failed=1,
                                          error=f"[/] [bold red]stopped[/] {EVIL_TEXT}")
    result.failures.append(Failure("shop", EVIL_SKU, "product", "create", f"[/] refused {EVIL_TEXT}"))
    return result


def test_apply_report_escapes_reasons_skus_and_rich_markup():
    stream = io.StringIO()
    plain = PlainReporter(stream, interval=0)
    plain.retrying("shop", 3, f"[/] {EVIL_TEXT}", 1.0)
    plain.message("shop", EVIL_TEXT)
    plain.target_finished("shop", failed_result().targets["shop"])
    plain.finished(failed_result())
    assert_safe_terminal_text(stream.getvalue())
    assert "refused \\x1b[2J" in stream.getvalue()

    out = io.StringIO()
    rich = RichReporter(console=Console(file=out, force_terminal=True, width=400, color_system=None), color=False)
    rich.target_started("shop", "bloomreach", 1)
    rich.message("shop", f"[/] [link=https://evil.example]x[/link] {EVIL_TEXT}")  # raised MarkupError before
    rich.finished(failed_result())
    printed = out.getvalue()
    assert "[/] [link=https://evil.example]x[/link]" in printed
    assert "\x1b]8;" not in printed and "\u202e" not in printed and FORGED not in printed.splitlines()
