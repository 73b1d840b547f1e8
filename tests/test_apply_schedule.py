"""Targets run concurrently, but one that needs several rate windows gets a head start:
the others begin once its first window's requests are answered, or after
``Tuning.head_start`` seconds if they never are."""
from __future__ import annotations

import socket
import threading

import pytest

from reconciler.apply import NullReporter, apply_plan
from support import HoldAfter, convergence_problems, fast_tuning, make_products, plan_products, sandbox_targets
from reconciler.sandbox import Sandbox, SandboxConfig
from conftest import sandbox_writes

# 300 products in requests of 20 items, 5 requests per window: 15 requests, 3 windows.
LONG_POLE = {"bloomreach": {"max_items_per_request": 20}}


def test_the_others_start_once_the_long_poles_first_window_is_answered(state):
    scale = 0.05  # Bloomreach: 5 requests per 0.5 s
    with Sandbox(SandboxConfig(port=0, time_scale=scale)) as sb:
        targets = sandbox_targets(sb.urls, providers=("bloomreach", "venddor", "vtex_ads"), limits=LONG_POLE)
        products = make_products(300)
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=fast_tuning(window_scale=scale))
        assert result.ok and sb.violations == []
        assert convergence_problems(sb, state, targets, products) == []
        lead = sandbox_writes(sb, "bloomreach")
        assert len(lead) == 15
        first_window_answered = max(e["finished"] for e in lead[:5])
        for follower in ("venddor", "vtex_ads"):
            entries = sandbox_writes(sb, follower)
            assert entries[0]["started"] >= first_window_answered
            assert entries[0]["started"] < lead[-1]["started"]  # concurrently, not after it


def test_a_target_that_fits_in_one_window_gets_no_head_start(state):
    with Sandbox(SandboxConfig(port=0, time_scale=0.05, latency=0.2)) as sb:
        targets = sandbox_targets(sb.urls, providers=("bloomreach", "venddor"))  # 300 items: one request
        result = apply_plan(plan_products(state, targets, make_products(300)), targets, state,
                            reporter=NullReporter(), tuning=fast_tuning(window_scale=0.05))
        assert result.ok
        # held 0.2 s by the sandbox: the follower's first request went before it was answered
        assert sandbox_writes(sb, "venddor")[0]["started"] < sandbox_writes(sb, "bloomreach")[0]["finished"]


@pytest.fixture
def silent_server():
    """A server that accepts connections, reads, and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in accepted:
        conn.close()


class Events(NullReporter):
    """What the apply told, in order: (event, target)."""

    def __init__(self):
        self.events = []

    def request_sent(self, target, endpoint, items):
        self.events.append(("sent", target))

    def target_finished(self, target, result):
        self.events.append(("finished", target))


def test_a_hung_long_pole_holds_the_others_back_only_for_the_head_start(state, silent_server):
    with Sandbox(SandboxConfig(port=0)) as sb:
        urls = {**sb.urls, "bloomreach": silent_server}
        targets = sandbox_targets(urls, providers=("bloomreach", "venddor"), limits=LONG_POLE)
        plan = plan_products(state, targets, make_products(120))  # 6 requests: more than a window
        told = Events()
        result = apply_plan(plan, targets, state, reporter=told,
                            tuning=fast_tuning(head_start=0.2, request_timeout_seconds=3.0, max_attempts=1))
        assert result.targets["venddor"].ok
        bloomreach = result.targets["bloomreach"]  # out of attempts after the deadline: stopped
        assert bloomreach.error.startswith("bloomreach kept failing") and bloomreach.not_sent == 120
        # the follower did not wait for the hung target's first answer (it never came: the deadline ended it)
        assert told.events.index(("sent", "venddor")) < told.events.index(("finished", "bloomreach"))


class InterruptOnFirstBatch(NullReporter):
    def recorded(self, target, counts):
        if counts.get("confirmed") or counts.get("accepted"):
            raise KeyboardInterrupt


def test_an_interrupt_during_the_head_start_then_converge(state):
    with Sandbox(SandboxConfig(port=0, time_scale=0.05)) as sb:
        targets = sandbox_targets(sb.urls, providers=("bloomreach", "venddor"), limits=LONG_POLE)
        products = make_products(300)
        # The 5th request of Bloomreach's first window is held (its first window is never
        # answered, and no timer ends the head start): the interrupt, at its first answer
        # counted, lands during the head start however loaded the machine. The requests it
        # cuts off keep their slots until their deadline, then a window more: the server
        # may still see them.
        tuning = fast_tuning(window_scale=0.05, head_start=600, request_timeout_seconds=3.0)
        with pytest.raises(KeyboardInterrupt):
            apply_plan(plan_products(state, targets, products), targets, state, reporter=InterruptOnFirstBatch(),
                       tuning=tuning, transport=HoldAfter(sb.urls["bloomreach"], 4))
        assert state.applies()[-1]["status"] == "interrupted"
        assert sandbox_writes(sb, "venddor") == []  # it was still waiting for the head start
        result = apply_plan(plan_products(state, targets, products), targets, state, reporter=NullReporter(),
                            tuning=tuning)
        assert result.ok and sb.violations == []
        assert convergence_problems(sb, state, targets, products) == []
