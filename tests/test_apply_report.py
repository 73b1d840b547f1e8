"""Reporters: the plain one writes a line per event and a closing summary per target;
the rich one draws progress bars; neither shows a credential."""
from __future__ import annotations

import io
import os

from rich.console import Console

from reconciler.apply import PlainReporter, RichReporter, apply_plan, default_reporter
from support import fast_tuning, make_products, plan_products, sandbox_targets
from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.state import State


def test_plain_and_rich_reporters(tmp_path):
    with Sandbox(SandboxConfig(port=0, time_scale=0.001, async_delay=0.02)) as sb:
        targets = sandbox_targets(sb.urls, providers=("venddor", "meta_catalog"))
        state = State(tmp_path / "a.db")
        plain = io.StringIO()
        result = apply_plan(plan_products(state, targets, make_products(130)), targets, state,
                            reporter=PlainReporter(plain), tuning=fast_tuning())
        assert result.ok
        text = plain.getvalue()
        assert "venddor: applying 130 changes (venddor)" in text
        assert "venddor (venddor): 130 confirmed, 0 failed, 3 requests" in text
        assert "Apply complete: 260 confirmed, 0 only accepted, 0 failed, 0 pending" in text
        assert "sandbox-pass" not in text and "sandbox-token" not in text

        state = State(tmp_path / "b.db")
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=120)
        result = apply_plan(plan_products(state, targets, make_products(130)), targets, state,
                            reporter=RichReporter(console), tuning=fast_tuning())
        assert result.ok
        rendered = out.getvalue()
        assert "130/130" in rendered and "meta_catalog (meta_catalog): 130 confirmed" in rendered
        assert "sandbox-token" not in rendered


def test_default_reporter_is_plain_when_not_a_terminal():
    assert isinstance(default_reporter(io.StringIO()), PlainReporter)


def test_no_color_reaches_the_progress_bars():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert default_reporter(Terminal(), color=False).console.no_color
    assert not default_reporter(Terminal()).console.no_color or "NO_COLOR" in os.environ
