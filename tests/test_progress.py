"""Progress a person trusts: a wait for a rate window is said when it starts, with for
what and until when (on a terminal and in CI), waiting figures are wall time, a
terminal gets the overall line too, `status` says what it did (not "Apply complete"),
and the sandbox survives a client that hangs up mid-request without a traceback."""
from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from rich.console import Console

from conftest import eventually, product, sandbox_fixture, target
from reconciler.apply import ApplyResult, PlainReporter, RichReporter, TargetResult, apply_plan
from reconciler.apply.window import WaitClock
from reconciler.sandbox import Sandbox, SandboxConfig
from support import fast_tuning, make_products, plan_products, sandbox_targets


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_overlapping_waits_count_once_per_target_and_once_for_the_apply():
    clock = FakeClock()
    apply = WaitClock(clock=clock)
    a, b = WaitClock(apply, clock), WaitClock(apply, clock)
    assert a.start()                       # t=0: a worker of a waits
    clock.now = 1
    assert not a.start()                   # t=1: another worker of a
    clock.now = 2
    assert b.start()                       # t=2: b waits too
    clock.now = 5
    assert a.stop() is None                # one of a's workers goes on; a still waits
    clock.now = 6
    assert a.stop() == 6                   # a waited from 0 to 6
    clock.now = 8
    assert b.stop() == 6                   # b from 2 to 8
    assert (a.seconds, b.seconds, apply.seconds) == (6, 6, 8)  # not 5 + 6 for a, nor 12 for both


class Recording(PlainReporter):
    """The plain reporter with every wait event kept, and waits said however short."""

    def __init__(self):
        super().__init__(io.StringIO(), min_wait=0.0)
        self.events: list[tuple] = []

    def waiting(self, target, until, why):
        self.events.append(("waiting", target, until, why, time.time()))
        super().waiting(target, until, why)

    def waited(self, target, seconds):
        self.events.append(("waited", target, seconds))
        super().waited(target, seconds)


def test_a_wait_is_said_when_it_starts_for_what_and_until_when(state):
    scale = 0.02  # Bloomreach's 5 requests per 10 s become 5 per 0.2 s
    with Sandbox(SandboxConfig(port=0, time_scale=scale)) as sb:
        targets = sandbox_targets(sb.urls, providers=("bloomreach",),
                                  limits={"bloomreach": {"max_items_per_request": 20}})
        # a second catalog: its own window, waited for at the same time
        targets["bloom-b"] = targets["bloomreach"].model_copy(update={
            "name": "bloom-b", "settings": {**targets["bloomreach"].settings, "catalog_id": "c2"}})
        reporter = Recording()
        result = apply_plan(plan_products(state, targets, make_products(300)), targets, state,
                            reporter=reporter, tuning=fast_tuning(window_scale=scale))
    assert result.ok
    for name in targets:
        events = [e for e in reporter.events if e[1] == name]
        assert events and events[0][0] == "waiting" and events[-1][0] == "waited"
        waiting = False
        for event in events:  # every wait is said as it begins (again if its next slot moves), then ends once
            if event[0] == "waiting":
                _, _, until, why, said = event
                assert why == "bloomreach's window"
                assert until is None or until > said
                waiting = True
            else:
                assert waiting
                waiting = False
        # wall time: the waits of its several workers counted once
        waits = sum(e[2] for e in events if e[0] == "waited")
        figure = result.targets[name].wait_seconds
        assert figure == pytest.approx(waits) and 0 < figure <= result.targets[name].seconds
    # the apply's figure is wall time too, not the sum over targets
    assert max(t.wait_seconds for t in result.targets.values()) <= result.wait_seconds <= result.seconds
    text = reporter.stream.getvalue()
    said = text.index("bloomreach: waiting for bloomreach's window, next slot ")
    assert said < text.index("bloomreach: waited ")
    [overall] = [line for line in text.splitlines() if line.startswith("Apply complete")]
    assert f"{result.wait_seconds:.1f}s waiting for rate windows in" in overall


def test_plain_lines_say_when_the_next_slot_is():
    out = io.StringIO()
    reporter = PlainReporter(out)
    until = time.time() + 90
    reporter.waiting("bloom-eu", until, "bloomreach's window")
    reporter.waiting("bloom-eu", None, "bloomreach's window")  # in-flight answers: short, said when it ends
    reporter.waiting("bloom-eu", time.time() + 0.2, "bloomreach's window")  # under a second: no news
    reporter.waited("bloom-eu", 87.25)
    slot = time.strftime("%H:%M:%S", time.localtime(until))
    assert out.getvalue() == (f"bloom-eu: waiting for bloomreach's window, next slot {slot}\n"
                              "bloom-eu: waited 87.2s; sending\n")


def finished_result() -> ApplyResult:
    bloom = TargetResult("bloom-eu", "bloomreach", total=30, accepted=29, failed=1, requests=3,
                         wait_seconds=20.0, seconds=31.0)
    meta = TargetResult("meta-us", "meta_catalog", total=10, confirmed=10, requests=1, wait_seconds=18.0,
                        seconds=25.0)
    result = ApplyResult(targets={"bloom-eu": bloom, "meta-us": meta}, seconds=31.5, wait_seconds=24.0)
    from reconciler.apply import Failure

    result.failures.append(Failure("bloom-eu", "SKU-1", "product", "create", "no such field"))
    return result


def test_the_overall_line_says_the_wall_time_waited():
    out = io.StringIO()
    PlainReporter(out).finished(finished_result())
    lines = out.getvalue().splitlines()
    assert lines[0] == ("Apply finished with failures: 10 confirmed, 29 only accepted, 1 failed, 0 pending, "
                        "4 requests, 24.0s waiting for rate windows in 31.5s.")  # 24.0, not 20 + 18
    assert lines[1].startswith("29 items only accepted: ")
    assert lines[2] == "  bloom-eu: create product SKU-1: no such field"
    quiet = io.StringIO()
    PlainReporter(quiet, overall=False).finished(finished_result())
    assert quiet.getvalue() == ""


def test_a_terminal_gets_rate_eta_the_wait_and_the_overall_line():
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, force_terminal=True, width=120))
    reporter.target_started("bloom-eu", "bloomreach", 100)
    reporter.request_sent("bloom-eu", "partial-update", 40)
    reporter.recorded("bloom-eu", {"accepted": 40})
    until = time.time() + 300
    reporter.waiting("bloom-eu", until, "bloomreach's window")
    reporter.progress.refresh()
    screen = out.getvalue()
    assert f"waiting for bloomreach's window, next slot {time.strftime('%H:%M:%S', time.localtime(until))}" in screen
    assert "40/100" in screen and "/s" in screen and "ETA " in screen
    reporter.waited("bloom-eu", 2.0)
    reporter.progress.refresh()
    assert "waited 2.0s" in out.getvalue()
    reporter.finished(finished_result())
    closing = out.getvalue()
    assert ("bloom-eu (bloomreach): 0 confirmed, 29 only accepted, 1 failed, 3 requests, "
            "20.0s waiting for rate windows") in closing
    assert "Apply finished with failures: 10 confirmed, 29 only accepted, 1 failed" in closing
    assert "bloom-eu: create product SKU-1: no such field" in closing


sandbox = sandbox_fixture(async_delay=0.05, latency=0.001)


def test_status_says_what_it_settled_not_apply_complete(ws, sandbox):
    sandbox.reset()
    ws.write("targets.yaml", {"targets": {"vouch": target("voucherify", sandbox.urls["voucherify"]),
                                          "bloom": target("bloomreach", sandbox.urls["bloomreach"])}})
    # a catalog field that does not exist: Bloomreach refuses that item
    ws.write("products.yaml", {"products": [product("A"), product("B", attributes={"no_such_field": "x"}),
                                            product("C")]})
    applied = ws.run("apply", "--auto-approve", "--no-wait")
    assert applied.exit_code == 1 and "Apply finished with failures" in applied.output, applied.output
    status = eventually(lambda: (lambda r: r if "Settled 1 of 1" in r.output else None)(ws.run("status")),
                        "status settling the job")
    out = status.output
    assert status.exit_code == 1 and "Apply" not in out
    assert "vouch (voucherify): 3 confirmed, 0 failed, 1 status request" in out
    assert "Settled 1 of 1 asynchronous job(s): 3 items confirmed, 0 failed." in out
    # then the failed items of every apply, once
    assert out.index("Settled") < out.index("Failed items (1); the next plan proposes them again:")
    assert out.count("no_such_field") == 1
    again = ws.run("status").output
    assert "Apply" not in again and "Settled" not in again and "Failed items (1)" in again


def test_the_sandbox_prints_no_traceback_when_a_client_hangs_up_mid_request(tmp_path, processes):
    process = processes.start([sys.executable, "-m", "reconciler", "sandbox", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        urls: dict[str, str] = {}
        while "venddor" not in urls:  # a line per provider: NAME URL
            name, url = process.stdout.readline().split()
            urls[name] = url
        host, port = urls["venddor"].removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:  # a body announced, half sent
            client.sendall(b"POST /api/products/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100000\r\n\r\n{\"products\": [")
        log = eventually(lambda: [e for e in httpx.get(urls["venddor"] + "/_sandbox/log").json()
                                  if e["path"] == "/api/products/"], "the hang-up logged")
        assert log[0]["status"] is None  # logged as unanswered
        # and the server still answers
        assert httpx.post(urls["venddor"] + "/api/products/", content=b"{}").status_code >= 400
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
