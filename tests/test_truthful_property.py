"""Property (issue 10): for random mixes of items each API refuses in its documented
way, injected faults (5xx, 429, dropped connections, before and after the work is done)
and queued work that is lost, the state never says more than the destination did:

* what it calls ``confirmed`` is exactly what the simulator applied (Venddor at once;
  Bloomreach once ``status --verify`` has read its accepted items back), but for items
  whose every attempt failed while one of them was applied unheard (a dropped answer);
* VTEX Ads confirms nothing: what it applied was only ever ``accepted``;
* a refused item is failed and never applied.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import queued_work_done
from reconciler.apply import NullReporter, apply_plan
from reconciler.drift.verify import verify_accepted
from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.sandbox.common import FaultInjector
from reconciler.state import State
from support import fast_tuning, make_product, plan_products, sandbox_targets

# per provider: an override by which the API refuses the item, the documented way
REFUSED = {"vtex_ads": {"tags": ["x" * 80]}, "bloomreach": {"price": "cheap"}, "venddor": {"price": "8.99"}}


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(port=0, time_scale=0.001, async_delay=0.01, latency=0)) as sb:
        yield sb


def disturb(sandbox: Sandbox, name: str, fault_rate: float, drop_rate: float, seed: int) -> None:
    sandbox.reset()
    simulator = sandbox.simulators[name]
    simulator.faults = FaultInjector(fault_rate, seed)
    simulator.backlog.drops = FaultInjector(drop_rate, seed + 3)


@pytest.mark.parametrize("name", sorted(REFUSED))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 24), refused=st.sets(st.integers(0, 23), max_size=6),
       fault_rate=st.sampled_from([0.0, 0.1, 0.3]), drop_rate=st.sampled_from([0.0, 0.2, 0.5]),
       seed=st.integers(0, 10_000))
@example(count=1, refused={0}, fault_rate=0.3, drop_rate=0.0, seed=9732)  # Venddor: six faults in a row, stopped
def test_the_state_confirms_exactly_what_was_applied(sandbox, name, count, refused, fault_rate, drop_rate, seed):
    disturb(sandbox, name, fault_rate, drop_rate, seed)
    targets = sandbox_targets(sandbox.urls, providers=(name,))
    target = targets[name]
    refused = {i for i in refused if i < count}
    products = [make_product(i, overrides={name: REFUSED[name]}) if i in refused else make_product(i)
                for i in range(count)]
    with tempfile.TemporaryDirectory() as directory:
        state = State(Path(directory) / "state.db")
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning(max_attempts=6))
        queued_work_done(sandbox)
        if name == "bloomreach":
            # no check at all when no item was accepted (every product refused)
            checks = verify_accepted(state, targets, [name], tuning=fast_tuning())
            assert [check.error for check in checks] == [None] * len(checks)
        remote = sandbox.simulators[name].stored(target.settings)
        items = {(i.record, i.key): i for i in state.items(name)}
        outcome = {at: item.last_outcome for at, item in items.items()}
        failures = {(f["record"], f["key"]): f["reason"] for f in state.failures(name)}
        state.close()
    confirmed = {at for at, said in outcome.items() if said == "confirmed"}
    accepted = {at for at, said in outcome.items() if said == "accepted"}
    unheard = {at for at, reason in failures.items() if "gave up after" in reason}  # may have been applied
    # every attempt in a row failing stops the target: what it never heard of may be
    # applied or not, and the state says nothing of it (the next apply sends it again)
    stopped = result.targets[name].error is not None
    if stopped:
        unheard |= set(remote) - confirmed - accepted
    for at in confirmed | accepted:  # what the state holds is what was sent
        assert at not in remote or remote[at] == items[at].payload, at
    if name == "vtex_ads":
        assert confirmed == set() and set(remote) <= accepted | unheard
    else:
        assert accepted == set()  # Venddor confirms; Bloomreach's were all read back
        assert confirmed <= set(remote) and set(remote) - confirmed <= unheard, (confirmed, set(remote))
    refused_products = {("product", item_key(name, products[i])) for i in refused}
    assert not refused_products & set(remote) and not refused_products & (confirmed | accepted)
    assert stopped or refused_products <= set(failures)


def item_key(name: str, product) -> str:
    return product.gtin if name == "venddor" else product.sku
