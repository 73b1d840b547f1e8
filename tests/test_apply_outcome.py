"""`apply --format json`: a machine-readable outcome report on stdout (per target
counts, failed items with their reasons, why nothing was applied), the plan and the
progress on stderr; against the sandbox over real sockets."""
from __future__ import annotations

import orjson
import pytest

from conftest import product, sandbox_fixture, target
from reconciler.apply.outcome import error_kind, outcome
from reconciler.apply.result import ApplyResult, TargetResult
from reconciler.errors import ConfigError, ReconcilerError, StalePlanError

sandbox = sandbox_fixture(async_delay=0.02, latency=0.001)


@pytest.fixture
def shop(ws, sandbox):
    sandbox.reset()
    ws.write("targets.yaml", {"targets": {"bloom": target("bloomreach", sandbox.urls["bloomreach"]),
                                          "vouch": target("voucherify", sandbox.urls["voucherify"])}})
    return ws


def report(result) -> dict:
    return orjson.loads(result.stdout)  # stdout holds the report and nothing else


def test_an_apply_reports_its_outcome_per_target(shop):
    shop.write("p.yaml", {"products": [product(f"P{i}") for i in range(3)]})
    result = shop.run("apply", "--auto-approve", "--format", "json")
    assert result.exit_code == 0, result.stderr
    outcome_ = report(result)
    assert outcome_["format_version"] == 1 and outcome_["outcome"] == "applied" and outcome_["error"] is None
    assert set(outcome_["targets"]) == {"bloom", "vouch"}
    bloom = outcome_["targets"]["bloom"]
    assert (bloom["provider"], bloom["total"], bloom["confirmed"], bloom["accepted"], bloom["failed"],
            bloom["failed_items"]) == ("bloomreach", 3, 0, 3, 0, [])  # Bloomreach queues: only accepted
    assert bloom["requests"] >= 1 and bloom["stopped"] is None
    assert 0 <= outcome_["wait_seconds"] <= outcome_["seconds"]
    assert (outcome_["totals"]["confirmed"], outcome_["totals"]["accepted"], outcome_["totals"]["total"]) == (3, 3, 6)
    assert "Plan: 6 to create" in result.stderr and "Apply complete" in result.stderr


def test_failed_items_come_with_their_reasons_and_exit_1(shop):
    shop.write("p.yaml", {"products": [product("P0"), product("P1", attributes={"no_such_field": "x"})]})
    result = shop.run("apply", "--auto-approve", "--format", "json", "-t", "bloom")
    assert result.exit_code == 1
    outcome_ = report(result)
    assert outcome_["outcome"] == "failed"
    bloom = outcome_["targets"]["bloom"]
    assert (bloom["accepted"], bloom["failed"]) == (1, 1)
    [failed] = bloom["failed_items"]
    assert (failed["sku"], failed["record"], failed["action"]) == ("P1", "product", "create")
    assert "no_such_field" in failed["reason"]


def test_a_stale_saved_plan_is_an_error_of_kind_stale_plan(shop):
    shop.write("p.yaml", {"products": [product("P0")]})
    planfile = str(shop.root / "plan.out")
    assert shop.run("plan", "-o", planfile).exit_code == 0
    assert shop.run("apply", "--auto-approve").exit_code == 0  # the state moves on
    result = shop.run("apply", planfile, "--format", "json")
    assert result.exit_code == 1
    outcome_ = report(result)
    assert outcome_["outcome"] == "error" and outcome_["targets"] == {}
    assert outcome_["error"]["kind"] == "stale_plan" and "make a new plan" in outcome_["error"]["message"]
    assert "Error: " in result.stderr


def test_nothing_to_apply(shop):
    shop.write("p.yaml", {"products": [product("P0")]})
    assert shop.run("apply", "--auto-approve").exit_code == 0
    result = shop.run("apply", "--auto-approve", "--format", "json")
    assert result.exit_code == 0 and report(result)["outcome"] == "no_changes"
    assert "No changes." in result.stderr


def test_the_apply_wide_wait_is_wall_time_not_the_sum_of_the_targets():
    both_waiting = ApplyResult({"a": TargetResult("a", "bloomreach", total=1, wait_seconds=2.0),
                                "b": TargetResult("b", "bloomreach", total=1, wait_seconds=2.0)},
                               seconds=3.0, wait_seconds=2.5)
    written = outcome(both_waiting)
    assert written["wait_seconds"] == 2.5 and written["seconds"] == 3.0
    assert [t["wait_seconds"] for t in written["targets"].values()] == [2.0, 2.0]
    assert outcome(None)["wait_seconds"] == 0.0


def test_outcome_kinds():
    assert outcome(None, cancelled=True)["outcome"] == "cancelled"
    assert outcome(None)["totals"] == {key: 0 for key in ("total", "confirmed", "accepted", "failed", "pending", "local",
                                                          "not_sent", "requests", "items_sent", "polls", "retried")}
    assert error_kind(StalePlanError("x")) == "stale_plan"
    assert error_kind(ConfigError("x")) == "config"
    assert error_kind(ReconcilerError("x")) == "error"
