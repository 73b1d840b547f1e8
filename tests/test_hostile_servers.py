"""Hostile servers (issue 12): a destination that never answers, trickles its headers
or body, resets mid-body, asks to wait for 31 years, answers without end, answers a
success in HTML, or redirects. For each, ``apply``, ``status`` (a pending job whose
status call meets it) and ``drift`` end with one clear message and exit 1, and nothing
is recorded as applied. The bounds are the target's ``limits``, set low; the tests
assert what the commands say and record, never how long they took (the pytest
timeout only says that they finished)."""
from __future__ import annotations

import gzip

import httpx
import pytest

from conftest import product, target
from hostile_server import HUGE, MODES, HostileServer
from reconciler.apply.http import exchange, open_client
from reconciler.apply.tuning import Tuning
from reconciler.errors import DestinationError
from reconciler.manifest.models import Target
from reconciler.providers import get_provider
from reconciler.providers.base import Request
from reconciler.state import State

pytestmark = pytest.mark.timeout(60)

TOKEN = "sandbox-token"  # the target's app_token (the sandbox's credentials)
LIMITS = {"request_timeout_seconds": 10, "retry_budget_seconds": 0.6, "max_response_bytes": 100_000,
          "max_retry_after_seconds": 5}
# Where the deadline is what ends a request, it is short; elsewhere long, so that a
# busy machine cannot turn a quick answer into a late one.
SLOW = ("never_answer", "slowloris_headers", "slow_body")
KEPT_FAILING = "shop: voucherify kept failing: "
BUDGET = "(limits.retry_budget_seconds is 0.6 s); run again later"
LATE = "no complete answer within 0.3 s (limits.request_timeout_seconds)"
# What each mode makes a command say (a line of its output holds every part).
SAID = {
    "never_answer": (KEPT_FAILING, LATE, BUDGET),
    "slowloris_headers": (KEPT_FAILING, LATE, BUDGET),
    "slow_body": (KEPT_FAILING, LATE, BUDGET),
    "reset_mid_body": (KEPT_FAILING, "voucherify: no answer (", BUDGET),
    "huge_retry_after": ("shop: voucherify asks to wait 999999999 s; run again later "
                         "(limits.max_retry_after_seconds is 5 s)",),
    "huge_body": ("shop: voucherify answered more than 100,000 bytes (HTTP 200); stopped reading it "
                  "(limits.max_response_bytes)",),
    "redirect": ("shop: voucherify answered HTTP 302, a redirect to http://127.0.0.1:9/login?…; redirects are "
                 "not followed: set the target's base_url to the API's own address",),
    # a success whose body is not the documented shape is no success: tried again
    "html_200": (KEPT_FAILING, ": <html><body><h1>Please sign in</h1></body></html>); stopped", BUDGET),
}
DRIFT_ERROR = "  Error: "  # drift says which target first: "Target shop (voucherify):"
# A redirect's Location holds our credential as a user's password and in its query.
LOCATION = f"http://admin:{TOKEN}@127.0.0.1:9/login?app_token={TOKEN}#{TOKEN}"
# Answers no retry can change: one request, then the target stops.
ONCE = ("huge_retry_after", "huge_body", "redirect")


def hostile(mode: str, **options) -> HostileServer:
    return HostileServer(mode, location=LOCATION, **options)


def workspace(ws, server: HostileServer, **limits):
    if server.mode in SLOW:
        limits.setdefault("request_timeout_seconds", 0.3)
    ws.write("targets.yaml", {"targets": {"shop": target("voucherify", server.url, limits={**LIMITS, **limits})}})
    ws.write("products.yaml", {"products": [product(f"SKU-{i}") for i in range(3)]})
    return ws


def state_of(ws) -> State:
    return State(ws.root / "state" / "reconciler.db")


def assert_said(output: str, parts: tuple[str, ...]) -> None:
    if DRIFT_ERROR in output:
        assert "Target shop (voucherify):" in output
        parts = (parts[0].replace("shop: ", DRIFT_ERROR), *parts[1:])
    assert any(all(part in line for part in parts) for line in output.splitlines()), output
    assert "Traceback" not in output and "internal error" not in output
    assert TOKEN not in output


@pytest.mark.parametrize("mode", MODES)
def test_apply_stops_the_target_with_one_message(ws, mode):
    with hostile(mode) as server:
        result = workspace(ws, server).run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert_said(result.output, SAID[mode])
    assert "shop (voucherify): 0 confirmed, 0 failed, 3 not sent" in result.output
    state = state_of(ws)
    assert state.hashes("shop") == {} and state.failures("shop") == [] and state.pending_jobs() == []
    if mode in ONCE:
        assert server.requests == [("POST", "/v1/products/metadata/async")]


@pytest.mark.parametrize("mode", MODES)
def test_status_stops_when_a_pending_jobs_status_call_meets_it(ws, mode):
    with hostile(mode, accept_writes=True) as server:
        workspace(ws, server)
        applied = ws.run("apply", "--auto-approve", "--no-wait")
        assert applied.exit_code == 0, applied.output
        result = ws.run("status")
    assert result.exit_code == 1
    assert_said(result.output, SAID[mode])
    assert "3 items in 1 asynchronous jobs are still pending" in result.output
    state = state_of(ws)
    assert state.hashes("shop") == {} and len(state.pending_jobs("shop")) == 1
    if mode in ONCE:
        assert server.requests[1:] == [("GET", "/v1/async-actions/aa_1")]


@pytest.mark.parametrize("mode", MODES)
def test_drift_reports_the_target_as_not_read(ws, mode):
    with hostile(mode) as server:
        result = workspace(ws, server).run("drift")
    assert result.exit_code == 1
    assert_said(result.output, SAID[mode])
    if mode in ONCE:
        assert len(server.requests) == 1


@pytest.mark.parametrize("command", [("import", "-t", "shop"), ("plan", "--refresh")])
@pytest.mark.parametrize("mode", ["slow_body", "huge_body"])
def test_import_and_refresh_read_by_the_same_rules(ws, mode, command):
    with hostile(mode) as server:
        result = workspace(ws, server).run(*command)
    assert result.exit_code == 1
    assert_said(result.output, SAID[mode])


def test_a_huge_body_is_not_read_whole(ws):
    with hostile("huge_body") as server:
        result = workspace(ws, server).run("drift")
    assert result.exit_code == 1
    # the client hung up after 100,000 bytes: what the server got out is socket buffers' worth
    assert server.body_bytes < HUGE / 100


def test_a_retry_after_within_the_bound_is_honoured_then_the_budget_ends_it(ws):
    """``Retry-After: 999999999`` is over any sane bound; with a bound above it, the
    target waits as asked, and its retry budget stops it at once instead."""
    with hostile("huge_retry_after") as server:
        result = workspace(ws, server, max_retry_after_seconds=10**9).run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert_said(result.output, (KEPT_FAILING, "rate limited (HTTP 429)", BUDGET))
    assert len(server.requests) == 1


def test_a_certificate_that_fails_verification_is_not_retried(ws):
    with hostile("html_200", tls=True) as server:
        for command in (("apply", "--auto-approve"), ("drift",)):
            result = workspace(ws, server).run(*command)
            assert result.exit_code == 1
            assert_said(result.output, ("shop: voucherify: the TLS connection failed (certificate verify failed: "
                                        "self-signed certificate); check the target's base_url",))
    assert server.connections == 2 and server.requests == []  # one each


# -- the HTTP seam alone ------------------------------------------------------------------------------
def voucherify() -> tuple[Target, object]:
    config = Target(name="shop", provider="voucherify", base_url="http://voucherify.test",
                    auth={"app_id": "app", "app_token": TOKEN})
    return config, get_provider("voucherify")({}, {"app_id": "app", "app_token": TOKEN})


async def send_one(request: Request, handler=None, **tuning):
    config, provider = voucherify()
    bounds = Tuning(**tuning)
    transport = httpx.MockTransport(handler) if handler else None
    async with open_client(config, bounds, 1, transport) as client:
        return await exchange(client, request, provider, bounds)


@pytest.mark.parametrize("path, error", [("ftp://127.0.0.1/products", "UnsupportedProtocol"),
                                         ("http://[::1/products", "InvalidURL")])
def test_requests_that_cannot_be_sent_stop_the_target(path, error):
    import asyncio

    with pytest.raises(DestinationError) as info:
        asyncio.run(send_one(Request(method="GET", path=path)))
    assert str(info.value).startswith(f"voucherify: the request cannot be sent ({error}")


def test_a_compressed_answer_is_counted_as_it_expands():
    import asyncio

    bomb = gzip.compress(b" " * 1_000_000)
    answer = lambda request: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb)  # noqa: E731
    with pytest.raises(DestinationError, match="answered more than 100,000 bytes"):
        asyncio.run(send_one(Request(method="GET", path="/v1/products"), answer, max_response_bytes=100_000))
    small = gzip.compress(b'{"products": []}')
    answer = lambda request: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=small)  # noqa: E731
    response = asyncio.run(send_one(Request(method="GET", path="/v1/products"), answer))
    assert response.json() == {"products": []} and "content-encoding" not in response.headers
