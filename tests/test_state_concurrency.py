"""Several runners on one state, as real processes, on each backend: applies of
disjoint targets run together and both land; an apply of a locked target is refused
naming its holder; two runners on one Meta catalog share its rate window."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import product, sandbox_fixture, sandbox_writes, target
from reconciler.state import State
from test_apply_limits import assert_window

SCALE = 0.0005  # Meta's hour: 1.8 s
sandbox = sandbox_fixture(time_scale=SCALE, async_delay=0.02, latency=0.005)
SCRIPT = Path(__file__).resolve().parent / "scaled_cli.py"


def cli(processes, ws, *args: str) -> subprocess.Popen:
    """``reconciler ARGS`` in a process of its own, its windows scaled like the sandbox's."""
    return processes.start([sys.executable, str(SCRIPT), str(SCALE), "-C", str(ws.root), *ws.global_args, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(SCRIPT.parents[1])})


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out + err


@pytest.fixture
def two_targets(ws, sandbox, state_location):
    """A workspace with two targets of one Meta catalog (a, b: same limit scope) and
    a Venddor one, each product routed to one of them by its tags."""
    sandbox.reset()
    ws.use_state(state_location)
    url = sandbox.urls["meta_catalog"]
    window = {"max_items_per_request": 10, "max_requests_per_window": 3}  # 3 calls an hour (1.8 s)
    ws.write("t.yaml", {"targets": {
        "a": target("meta_catalog", url, select={"tags": ["a"]}, limits=window),
        "b": target("meta_catalog", url, select={"tags": ["b"]}, limits=window),
        "vend": target("venddor", sandbox.urls["venddor"], select={"tags": ["vend"]},
                       limits={"max_in_flight": 1, "max_items_per_request": 5}),
    }})
    from test_e2e import with_check_digit

    ws.write("p.yaml", {"products": [product(f"A{i:02d}", tags=["a"]) for i in range(40)]
                        + [product(f"B{i:02d}", tags=["b"]) for i in range(40)]
                        + [product(f"V{i:02d}", tags=["vend"], gtin=with_check_digit(f"789100{i:06d}"))
                           for i in range(200)]})
    return ws


def test_applies_of_disjoint_targets_run_together_and_both_land(two_targets, sandbox, processes):
    ws = two_targets
    first = cli(processes, ws, "apply", "-t", "a", "--auto-approve")
    second = cli(processes, ws, "apply", "-t", "vend", "--auto-approve")
    (code_a, out_a), (code_v, out_v) = finish(first), finish(second)
    assert (code_a, code_v) == (0, 0), out_a + out_v
    state = State(ws.state_location, create=False)
    assert len(state.hashes("a")) == 40 and len(state.hashes("vend")) == 200
    assert {a["status"] for a in state.applies()} == {"ok"} and state.holders() == []
    applies = sorted(state.applies(), key=lambda a: a["id"])
    assert len(applies) == 2
    state.close()
    plan = ws.run("plan", "-t", "a", "-t", "vend", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def test_an_apply_of_a_locked_target_is_refused_at_once_naming_its_holder(two_targets, processes):
    ws = two_targets
    holder = State(ws.state_location)
    with holder.locked("reconciler apply (pid 4242)", ["vend"]):
        code, out = finish(cli(processes, ws, "apply", "-t", "vend", "--auto-approve"))
        assert code == 1 and "target vend is locked by reconciler apply (pid 4242)" in out
        assert "Traceback" not in out
        waited = finish(cli(processes, ws, "apply", "-t", "vend", "--auto-approve", "--lock-timeout", "1s"))
        assert waited[0] == 1 and "locked by" in waited[1]
        other = finish(cli(processes, ws, "apply", "-t", "a", "--auto-approve"))  # another target: not locked
        assert other[0] == 0, other[1]


def test_two_runners_on_one_meta_catalog_stay_within_its_window(two_targets, sandbox, processes):
    ws = two_targets
    runs = [cli(processes, ws, "apply", "-t", name, "--auto-approve") for name in ("a", "b")]
    results = [finish(run) for run in runs]
    assert [code for code, _ in results] == [0, 0], results
    writes = sandbox_writes(sandbox, "meta_catalog", "POST")
    assert len(writes) == 8  # 40 products a target, 10 a request
    assert_window(writes, 3, 3600 * SCALE)  # across both processes
    assert sandbox.violations == []
