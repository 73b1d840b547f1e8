"""The executor end to end against the sandbox, over sockets: all five providers,
creates, updates, deletes, asynchronous jobs left pending and settled later, and a
target that stops on bad credentials while the others go on."""
from __future__ import annotations

import io


from reconciler.apply import ApplyResult, NullReporter, PlainReporter, apply_plan, settle
from support import (
    PROVIDERS, convergence_problems, fast_tuning, make_product, make_products, plan_products, sandbox_targets,
)
from conftest import sandbox_fixture


sandbox = sandbox_fixture(time_scale=0.001, async_delay=0.05, scope="function")


def run(plan, targets, state, **kwargs) -> ApplyResult:
    kwargs.setdefault("reporter", NullReporter())
    kwargs.setdefault("tuning", fast_tuning())
    return apply_plan(plan, targets, state, **kwargs)


def test_all_providers_create_update_delete(sandbox, state):
    targets = sandbox_targets(sandbox.urls)
    products = make_products(700)
    result = run(plan_products(state, targets, products), targets, state)
    assert result.ok, (result.errors, result.failures[:3])
    assert convergence_problems(sandbox, state, targets, products) == []
    # batching: the fewest requests the item limits allow
    counts = {name: t.requests for name, t in result.targets.items()}
    assert counts["vtex_ads"] == 4          # 700 products + 700 inventories, 500 per request
    assert counts["meta_catalog"] == 1
    assert counts["bloomreach"] == 1
    assert counts["venddor"] == 12          # ceil(700 / 60)
    assert counts["voucherify"] == 20       # one request per distinct metadata
    assert result.targets["meta_catalog"].polls >= 1

    # 100 updated, 100 deleted, 20 new
    kept = products[:600]
    changed = [make_product(i, version=1) if 100 <= i < 200 else p for i, p in enumerate(kept)]
    changed += make_products(20, start=1000)
    deleted = products[600:]
    plan = plan_products(state, targets, changed)
    summary = plan.targets["meta_catalog"].summary
    assert (summary["create"], summary["update"], summary["delete"]) == (20, 100, 100)
    result = run(plan, targets, state)
    assert result.ok, (result.errors, result.failures[:3])
    assert result.targets["vtex_ads"].local == 100   # a vtex product cannot be deleted: recorded locally
    assert convergence_problems(sandbox, state, targets, changed, deleted) == []
    assert sandbox.violations == []
    applies = state.applies()
    assert [a["status"] for a in applies] == ["ok", "ok"]
    assert state.pending_jobs() == []


def test_no_wait_then_settle(sandbox, state):
    targets = sandbox_targets(sandbox.urls, providers=("meta_catalog", "voucherify"))
    products = make_products(120)
    result = run(plan_products(state, targets, products), targets, state, wait=False)
    assert result.ok
    assert result.targets["meta_catalog"].pending == 120
    assert result.targets["voucherify"].pending == 120
    assert result.targets["meta_catalog"].confirmed == 0
    assert len(state.pending_jobs()) == 1 + 20
    assert state.hashes("meta_catalog") == {}     # nothing confirmed yet
    settled = settle(state, targets, reporter=NullReporter(), tuning=fast_tuning(), wait=True)
    assert settled.ok
    assert settled.targets["meta_catalog"].confirmed == 120
    assert settled.targets["voucherify"].confirmed == 120
    assert state.pending_jobs() == []
    assert convergence_problems(sandbox, state, targets, products) == []


def test_pending_jobs_of_an_earlier_apply_are_settled_first(sandbox, state):
    targets = sandbox_targets(sandbox.urls, providers=("meta_catalog",))
    products = make_products(30)
    run(plan_products(state, targets, products), targets, state, wait=False)
    assert state.pending_jobs()
    updated = [make_product(i, version=2) for i in range(30)]
    plan = plan_products(state, targets, updated)   # the state has nothing confirmed: 30 creates again
    result = run(plan, targets, state)
    assert result.ok
    assert state.pending_jobs() == []
    assert convergence_problems(sandbox, state, targets, updated) == []


def test_bad_credentials_stop_one_target_only(sandbox, state):
    auth = {"venddor": {"username": "sandbox-user", "password": "wrong-password-123"}}
    targets = sandbox_targets(sandbox.urls, providers=("venddor", "bloomreach"), auth=auth)
    products = make_products(100)
    out = io.StringIO()
    result = apply_plan(plan_products(state, targets, products), targets, state,
                        reporter=PlainReporter(out), tuning=fast_tuning())
    assert not result.ok
    assert "venddor" in result.errors and "credentials" in result.errors["venddor"]
    assert result.targets["venddor"].requests == 1
    assert result.targets["bloomreach"].accepted == 100
    assert "wrong-password-123" not in out.getvalue()
    assert "wrong-password-123" not in str(result)
    assert state.applies()[-1]["status"] == "failed"


def test_unset_environment_variable_stops_that_target(sandbox, state):
    auth = {"voucherify": {"app_id": "sandbox-app", "app_token": "${VOUCHERIFY_TOKEN}"}}
    targets = sandbox_targets(sandbox.urls, providers=("voucherify", "venddor"), auth=auth)
    products = make_products(10)
    result = run(plan_products(state, targets, products), targets, state, environ={})
    assert "VOUCHERIFY_TOKEN" in result.errors["voucherify"]
    assert result.targets["venddor"].confirmed == 10
    result = run(plan_products(state, targets, products), targets, state,
                 environ={"VOUCHERIFY_TOKEN": "sandbox-token"})
    assert result.ok
    assert convergence_problems(sandbox, state, targets, products) == []


def test_ignore_fields_are_sent_on_create_and_never_updated(sandbox, state):
    targets = sandbox_targets(sandbox.urls, providers=("bloomreach",), ignore_fields=["stock"])
    products = make_products(5)
    assert run(plan_products(state, targets, products), targets, state).ok
    restocked = [make_product(i, stock=99) for i in range(5)]
    assert plan_products(state, targets, restocked).targets["bloomreach"].changes == ()
    stored = {row["item_id"]: row["properties"] for row in sandbox.catalog("bloomreach", catalog_id="cat-1")}
    assert stored["SKU-000003"]["stock"] == 3


def test_empty_plan_changes_nothing(sandbox, state):
    targets = sandbox_targets(sandbox.urls, providers=PROVIDERS)
    serial = state.serial
    result = run(plan_products(state, targets, []), targets, state)
    assert result.ok and result.targets == {}
    assert state.serial == serial and state.applies() == []
