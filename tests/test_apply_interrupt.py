"""The lock, stale plans, and interruptions at any moment: a KeyboardInterrupt (from a
reporter callback), SIGTERM, and kill -9 of a separate process. The state stays
consistent and the next apply converges without re-sending what was confirmed."""
from __future__ import annotations

import concurrent.futures
import gc
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reconciler.apply import NullReporter, apply_plan
from reconciler.apply.recording import StateWriter
from support import (
    HoldAfter, convergence_problems, fast_tuning, make_product, make_products, plan_products, sandbox_targets,
)
from reconciler.errors import StalePlanError, StateError
from reconciler.plan.model import Plan
from reconciler.state import State
from conftest import assert_state_true, eventually, location_arg, sandbox_fixture

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("apply_in_subprocess.py")


sandbox = sandbox_fixture(time_scale=0.001, async_delay=0.05, latency=0.02, scope="function")


def apply(plan, targets, state, **kwargs):
    kwargs.setdefault("reporter", NullReporter())
    return apply_plan(plan, targets, state, tuning=fast_tuning(), **kwargs)


def sent_items(sb, provider):
    return sum(e["items"] or 0 for e in sb.log if e["provider"] == provider and e["method"] == "POST")


def test_a_second_apply_is_refused_while_the_lock_is_held(sandbox, state_location):
    path = state_location
    holder, other = State(path), State(path)
    targets = sandbox_targets(sandbox.urls, providers=("venddor",))
    plan = plan_products(other, targets, make_products(10))
    with holder.locked("reconciler apply (pid 1)"):
        with pytest.raises(StateError, match="locked by reconciler apply"):
            apply(plan, targets, other)
    assert sandbox.log == [] and other.applies() == []
    assert apply(plan, targets, other).ok  # released: goes through


def test_a_stale_plan_is_refused(sandbox, state_location):
    state = State(state_location)
    targets = sandbox_targets(sandbox.urls, providers=("venddor",))
    saved = plan_products(state, targets, make_products(10))
    assert apply(plan_products(state, targets, make_products(5)), targets, state).ok
    with pytest.raises(StalePlanError, match="changed since the plan was made"):
        apply(saved, targets, state)
    foreign = Plan(lineage="another-lineage", serial=state.serial, targets=saved.targets)
    with pytest.raises(StalePlanError, match="another state"):
        apply(foreign, targets, state)
    assert sent_items(sandbox, "venddor") == 5


def test_a_plan_made_before_any_state_existed_applies_to_a_new_state(sandbox, state_location):
    path = state_location
    targets = sandbox_targets(sandbox.urls, providers=("venddor",))
    empty = State(path, create=False)  # what `plan` sees without a state file
    plan = plan_products(empty, targets, make_products(10))
    assert plan.lineage is None and plan.serial == 0
    state = State(path)
    assert apply(plan, targets, state).ok
    assert state.serial == 1
    with pytest.raises(StalePlanError):  # the same plan again: the state moved on
        apply(plan, targets, state)


class InterruptAfter(NullReporter):
    """Interrupts (as Ctrl-C would) once ``target``'s ``batches``-th batch of confirmed
    outcomes is counted."""

    def __init__(self, target: str, batches: int):
        self.target, self.batches = target, batches

    def recorded(self, target, counts):
        if target == self.target and (counts.get("confirmed") or counts.get("accepted")):
            self.batches -= 1
            if self.batches == 0:
                raise KeyboardInterrupt


def test_interrupt_mid_apply_then_converge(sandbox, state_location, caplog):
    state = State(state_location)
    targets = sandbox_targets(sandbox.urls, providers=("venddor", "meta_catalog"),
                              limits={"meta_catalog": {"max_items_per_request": 50}})
    products = make_products(600)
    # Venddor's first 3 requests of 60 are answered, the others held; the interrupt comes
    # as the 3rd answer is counted, while Meta's requests and jobs are under way.
    with pytest.raises(KeyboardInterrupt):
        apply(plan_products(state, targets, products), targets, state, reporter=InterruptAfter("venddor", 3),
              transport=HoldAfter(sandbox.urls["venddor"], 3))
    gc.collect()  # the interrupt, raised in a task, left no task half-way nor its exception unretrieved
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    last = state.applies()[-1]
    assert last["status"] == "interrupted"
    assert json.loads(last["counts"])["venddor"]["confirmed"] == 180
    assert_state_true(sandbox, state, targets)
    confirmed = len(state.hashes("venddor"))
    assert confirmed == 180
    before = sent_items(sandbox, "venddor")
    assert before == 180  # what the held requests carried never left
    # the lock was released: a fresh plan applies, sending only what was not confirmed
    plan = plan_products(state, targets, products)
    assert len(plan.targets["venddor"].changes) == 600 - confirmed
    assert apply(plan, targets, state).ok
    assert sent_items(sandbox, "venddor") - before == 600 - confirmed
    assert convergence_problems(sandbox, state, targets, products) == []
    assert sandbox.violations == []


class QueuedWrites:
    """Holds the state's first write of outcomes on the state's thread until the apply
    (interrupted meanwhile) closes its writer, so that the writes after it wait in the
    thread's queue when the interrupt lands."""

    def __init__(self, state: State, monkeypatch):
        self.released = threading.Event()
        self.held = threading.Event()
        self.calls = 0
        record, close = state.record_batches, StateWriter.close

        def held_record(*args, **kwargs):
            self.calls += 1
            if self.calls == 1:
                self.held.set()
                self.released.wait()
            return record(*args, **kwargs)

        def close_then_release(writer):
            self.released.set()
            close(writer)

        monkeypatch.setattr(state, "record_batches", held_record)
        monkeypatch.setattr(StateWriter, "close", close_then_release)


class InterruptAtRequest(NullReporter):
    """Interrupts as the ``n``-th write request is about to go: by a KeyboardInterrupt
    raised in the apply's task (as a second Ctrl-C), or by SIGINT (a first Ctrl-C:
    asyncio's runner cancels the apply)."""

    def __init__(self, n: int, how: str):
        self.n, self.how = n, how

    def request_sent(self, target, endpoint, items):
        self.n -= 1
        if self.n == 0:
            if self.how == "SIGINT":
                signal.raise_signal(signal.SIGINT)
            else:
                raise KeyboardInterrupt


@pytest.mark.parametrize("how", ["KeyboardInterrupt", "SIGINT"])
def test_an_interrupt_while_confirmed_outcomes_wait_for_the_state(sandbox, state_location, monkeypatch, caplog, how):
    """Requests 1 and 2 (of 20 items, one at a time) are answered; the state's thread
    is still committing the first answer's outcomes and the second's wait behind it
    when the interrupt comes, as request 3 is about to go. Both are recorded and
    counted; nothing of request 3 is."""
    state = State(state_location)
    limits = {"venddor": {"max_in_flight": 1, "max_items_per_request": 20}}
    targets = sandbox_targets(sandbox.urls, providers=("venddor",), limits=limits)
    products = make_products(100)
    queued = QueuedWrites(state, monkeypatch)
    with pytest.raises(KeyboardInterrupt) as raised:
        apply(plan_products(state, targets, products), targets, state, reporter=InterruptAtRequest(3, how))
    assert raised.type is KeyboardInterrupt
    assert queued.held.is_set() and queued.calls >= 2  # the second write was queued, then committed
    last = state.applies()[-1]
    assert last["status"] == "interrupted"
    assert json.loads(last["counts"])["venddor"]["confirmed"] == 40
    assert_state_true(sandbox, state, targets)
    assert len(state.hashes("venddor")) == 40
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    monkeypatch.undo()
    plan = plan_products(state, targets, products)
    assert len(plan.targets["venddor"].changes) == 60
    assert apply(plan, targets, state).ok
    assert convergence_problems(sandbox, state, targets, products) == []
    assert sandbox.violations == []


class ControlCWhileClosing:
    """Holds the state's first write on the state's thread; a real second Ctrl-C (SIGINT
    from another thread) lands while the interrupted apply waits for that thread in its
    writer's close, and the write is let go only once the wait has been taken up
    again. What another process sees of the apply's row and lock as that commit ends
    is kept in ``seen``."""

    def __init__(self, state: State, location, monkeypatch):
        self.released, self.done = threading.Event(), threading.Event()
        self.seen: dict = {}
        self.waits = 0
        record, result, calls = state.record_batches, concurrent.futures.Future.result, []

        def held_record(*args, **kwargs):
            calls.append(1)
            if len(calls) > 1:
                return record(*args, **kwargs)
            self.released.wait()
            try:
                return record(*args, **kwargs)
            finally:
                other = State(location)
                self.seen = {"holders": other.holders(), "status": other.applies()[-1]["status"]}
                other.close()
                self.done.set()

        def interrupted_wait(future, *args, **kwargs):
            caller = sys._getframe(1).f_code
            if caller.co_name == "close" and caller.co_filename.endswith("recording.py"):
                self.waits += 1
                if self.waits == 1:  # the wait is under way when the signal comes, whenever it comes
                    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
                elif self.waits == 2:
                    self.released.set()
            return result(future, *args, **kwargs)

        monkeypatch.setattr(state, "record_batches", held_record)
        monkeypatch.setattr(concurrent.futures.Future, "result", interrupted_wait)


def test_a_second_interrupt_while_the_apply_waits_for_the_states_thread(sandbox, state_location, monkeypatch):
    """The first Ctrl-C as request 3 is about to go, a second one while the apply waits
    for the state's thread (held in its first write, request 1's log, with the answers
    of requests 1 and 2 behind it): the wait goes on, the apply's row says interrupted
    and the lock is released only after the commits."""
    state = State(state_location)
    limits = {"venddor": {"max_in_flight": 1, "max_items_per_request": 20}}
    targets = sandbox_targets(sandbox.urls, providers=("venddor",), limits=limits)
    products = make_products(100)
    held = ControlCWhileClosing(state, state_location, monkeypatch)
    try:
        with pytest.raises(KeyboardInterrupt):
            apply(plan_products(state, targets, products), targets, state,
                  reporter=InterruptAtRequest(3, "KeyboardInterrupt"))
    finally:
        held.released.set()  # never left held, whatever the apply did
    assert held.done.wait(60)
    # as the held commit ended, the apply still held its lock and its row was not finished yet
    assert held.seen["status"] == "running" and held.seen["holders"] != []
    assert held.waits >= 2  # the interrupted wait went on
    last = state.applies()[-1]
    assert last["status"] == "interrupted"
    assert json.loads(last["counts"])["venddor"]["confirmed"] == 40
    assert len(state.hashes("venddor")) == 40 and state.holders() == []
    assert_state_true(sandbox, state, targets)
    monkeypatch.undo()
    plan = plan_products(state, targets, products)
    assert len(plan.targets["venddor"].changes) == 60
    assert apply(plan, targets, state).ok
    assert convergence_problems(sandbox, state, targets, products) == []


def _spawn(processes, location, urls, n, version=0, limits=None):
    where, extra = location_arg(location)
    args = [sys.executable, str(SCRIPT), where, json.dumps(urls), str(n), str(version)]
    if limits:
        args.append(json.dumps(limits))
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    proc = processes.start(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout.readline().strip() == "planned"
    return proc


def _wait_for_requests(sb, provider, count, timeout=20.0):
    eventually(lambda: sum(1 for e in sb.log if e["provider"] == provider and e["method"] == "POST") >= count,
               f"{count} requests to {provider}", timeout, interval=0.005)


SLOW = {"venddor": {"max_in_flight": 1, "max_items_per_request": 20}}


def test_sigterm_is_an_interrupt(sandbox, state_location, processes):
    path = state_location
    State(path).close()
    urls = {"venddor": sandbox.urls["venddor"]}
    proc = _spawn(processes, path, urls, 400, limits=SLOW)
    _wait_for_requests(sandbox, "venddor", 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0 and "Terminated" in err  # KeyboardInterrupt's subclass for SIGTERM
    state = State(path)
    assert state.applies()[-1]["status"] == "interrupted"
    assert state.holders() == []
    targets = sandbox_targets(urls, providers=("venddor",), limits=SLOW)
    assert_state_true(sandbox, state, targets)
    products = make_products(400)
    assert apply(plan_products(state, targets, products), targets, state).ok
    assert convergence_problems(sandbox, state, targets, products) == []


def test_kill_9_at_random_moments_then_converge(sandbox, state_location, processes):
    path = state_location
    State(path).close()
    providers = ("venddor", "meta_catalog", "bloomreach")
    urls = {p: sandbox.urls[p] for p in providers}
    limits = {**SLOW, "meta_catalog": {"max_items_per_request": 40}, "bloomreach": {"max_items_per_request": 40}}
    rng = random.Random(11)
    n = 400
    for run, version in enumerate((0, 0, 1, 1)):
        proc = _spawn(processes, path, urls, n, version=version, limits=limits)
        if run == 0:  # on a loaded machine (or a state behind a network) sending starts later
            eventually(lambda: any(e["method"] == "POST" for e in sandbox.log), "a first write", timeout=30)
        time.sleep(rng.uniform(0.02, 0.4))
        proc.kill()
        proc.communicate(timeout=20)  # reaps it: its pid is dead, its lock is taken over
    assert any(e["method"] == "POST" for e in sandbox.log)  # the killed runs got as far as sending
    state = State(path)
    targets = sandbox_targets(urls, providers=providers, limits=limits)
    products = [make_product(i, version=1) for i in range(n)]
    assert_state_true(sandbox, state, targets, in_flight=products)
    plan = plan_products(state, targets, products)
    result = apply(plan, targets, state)
    assert result.ok, result.failures[:3]
    assert convergence_problems(sandbox, state, targets, products) == []
    assert sandbox.violations == []
    statuses = [a["status"] for a in state.applies()]
    assert statuses[-1] == "ok" and set(statuses[:-1]) <= {"aborted", "ok"}, statuses
    assert "aborted" in statuses  # the killed ones, found still "running" by the next apply
