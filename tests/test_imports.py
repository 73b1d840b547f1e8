"""Lean imports: the pure parts load neither the HTTP client, nor a provider, nor the
executor. Each import is checked in a fresh interpreter."""
from __future__ import annotations

import json
import subprocess
import sys

from reconciler.providers import names

# What the drift reader shares with apply (the HTTP rules, the retry policy, the knobs).
NOT_THE_EXECUTOR = {"reconciler.apply", "reconciler.apply.http", "reconciler.apply.retry", "reconciler.apply.tuning"}


def modules_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def test_the_planner_loads_no_http_client_and_no_provider():
    loaded = modules_after("import reconciler.plan")
    assert "reconciler.plan.planner" in loaded
    assert not {m for m in loaded if m == "httpx" or m.startswith("httpx.")}
    providers = tuple(f"reconciler.providers.{name}" for name in names())
    assert not {m for m in loaded if m.startswith(providers)}


def test_the_drift_comparison_does_not_load_the_executor():
    loaded = modules_after("import reconciler.drift.compare")
    assert "reconciler.drift.compare" in loaded
    assert {m for m in loaded if m.startswith("reconciler.apply")} <= NOT_THE_EXECUTOR


def test_the_apply_facade_loads_its_names_when_used():
    loaded = modules_after("from reconciler.apply import apply_plan, settle, Tuning, NullReporter")
    assert {"reconciler.apply.session", "reconciler.apply.target"} <= loaded
