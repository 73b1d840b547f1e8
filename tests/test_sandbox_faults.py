"""Sandbox facade and fault injection over real sockets."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from reconciler.providers import names
from reconciler.sandbox import Sandbox, SandboxConfig

PROVIDERS = ("vtex_ads", "meta_catalog", "bloomreach", "venddor", "voucherify")  # SPEC's port order
from conftest import sandbox_fixture

VENDDOR_AUTH = ("sandbox-user", "sandbox-pass")


def gtin13(n: int) -> str:
    body = f"789{n:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def send_many(sb, n=60):
    """n venddor writes, one product each; the outcome of each as seen by the client."""
    outcomes = []
    with httpx.Client(timeout=5) as client:
        for i in range(n):
            body = [{"product_code": gtin13(i), "product": "x", "price": "1", "amount": "1", "status": "A"}]
            try:
                r = client.post(sb.urls["venddor"] + "/api/products/", json=body, auth=VENDDOR_AUTH)
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                outcomes.append(type(exc).__name__)
            else:
                outcomes.append((r.status_code, r.headers.get("retry-after")))
    return outcomes


faulty = sandbox_fixture(fault_rate=0.5, seed=7, latency=0)


def test_faults_reproducible_and_drops_drop(faulty):
    faulty.reset()
    first = send_many(faulty)
    log = faulty.log
    kinds = [e["fault"] for e in log]
    assert {"500", "503", "429", "drop_before", "drop_after"} <= set(kinds)
    assert None in kinds
    for outcome, entry in zip(first, log):
        if entry["fault"] in ("drop_before", "drop_after"):
            assert outcome in ("RemoteProtocolError", "ReadError") and entry["status"] is None
        elif entry["fault"] == "429":
            assert outcome[0] == 429 and outcome[1] is not None and int(outcome[1]) >= 0
        elif entry["fault"]:
            assert outcome == (int(entry["fault"]), None)
        else:
            assert outcome == (201, None)
    # drop_after: applied, but the client never heard; drop_before: not applied
    stored = {p["product_code"] for p in faulty.catalog("venddor")}
    expected = {gtin13(i) for i, e in enumerate(log) if e["fault"] in (None, "drop_after")}
    assert stored == expected
    assert faulty.violations == []
    # same seed, same request sequence: same faults
    faulty.reset()
    assert send_many(faulty) == first
    assert [e["fault"] for e in faulty.log] == kinds


def test_other_seed_differs():
    with Sandbox(SandboxConfig(port=0, fault_rate=0.5, seed=8, latency=0)) as sb:
        other = [e for e in (send_many(sb, 30))]
    with Sandbox(SandboxConfig(port=0, fault_rate=0.5, seed=7, latency=0)) as sb:
        again = send_many(sb, 30)
    assert other != again


def test_queued_work_is_lost_at_its_rate_and_reproducibly():
    from reconciler.sandbox.common import Backlog

    backlog = Backlog(0.0, 0.5, seed=3)
    first = [backlog.dropped() for _ in range(40)]
    assert True in first and False in first
    backlog.reset()
    assert [backlog.dropped() for _ in range(40)] == first
    assert not any(Backlog(0.0, 0.0, seed=3).dropped() for _ in range(40))


def read_many(sb, n=40):
    outcomes = []
    with httpx.Client(timeout=5) as client:
        for _ in range(n):
            try:
                r = client.get(sb.urls["voucherify"] + "/v1/products",
                               headers={"X-App-Id": "sandbox-app", "X-App-Token": "sandbox-token"})
            except (httpx.RemoteProtocolError, httpx.ReadError):
                outcomes.append("drop")
            else:
                outcomes.append(r.status_code)
    return outcomes


def test_read_faults_at_their_own_rate_and_reproducible():
    with Sandbox(SandboxConfig(port=0, read_fault_rate=0.5, seed=3, latency=0)) as sb:
        first = read_many(sb)
        assert {200, 500, 503, 429, "drop"} <= set(first)
        kinds = [e["fault"] for e in sb.log]
        assert [e["status"] for e in sb.log] == [None if o == "drop" else o for o in first]
        assert send_many(sb, 10) == [(201, None)] * 10  # writes keep their own (zero) rate
        sb.reset()
        assert read_many(sb) == first and [e["fault"] for e in sb.log] == kinds
        assert sb.violations == []


def test_reads_not_faulted_by_the_write_rate_and_every_provider_faults():
    with Sandbox(SandboxConfig(port=0, fault_rate=1.0, seed=1, latency=0)) as sb:
        assert httpx.get(sb.urls["voucherify"] + "/v1/products",
                         headers={"X-App-Id": "sandbox-app", "X-App-Token": "sandbox-token"}).status_code == 200
        writes = {
            "vtex_ads": lambda c: c.post(sb.urls["vtex_ads"] + "/product/bulk/products", json=[],
                                         headers={"x-app-id": "sandbox-app", "x-api-key": "sandbox-key"}),
            "meta_catalog": lambda c: c.post(sb.urls["meta_catalog"] + "/v21.0/c/batch",
                                             json={"access_token": "sandbox-token", "requests": []}),
            "bloomreach": lambda c: c.put(sb.urls["bloomreach"] + "/data/v2/projects/p/catalogs/c/items",
                                          json=[], auth=("sandbox-key", "sandbox-secret")),
            "venddor": lambda c: c.post(sb.urls["venddor"] + "/api/products/", json=[],
                                        auth=VENDDOR_AUTH),
            "voucherify": lambda c: c.post(sb.urls["voucherify"] + "/v1/products/metadata/async",
                                           json={"source_ids": [], "metadata": {}},
                                           headers={"X-App-Id": "sandbox-app", "X-App-Token": "sandbox-token"}),
        }
        for name, call in writes.items():
            with httpx.Client() as client:
                for _ in range(4):
                    try:
                        r = call(client)
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        continue
                    assert r.status_code in (429, 500, 503), name
                    assert r.headers["content-type"] == "application/json"
                    r.json()
        assert all(e["fault"] for e in sb.log if e["method"] != "GET")
        assert sb.violations == []


def _free_base_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 4 > 65535:
            continue
        try:
            socks = []
            for i in range(5):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    pytest.skip("no 5 consecutive free ports")


def test_fixed_ports_in_provider_order_and_restart():
    base = _free_base_port()
    assert names() == PROVIDERS  # the registry's order is the ports' order
    with Sandbox(SandboxConfig(port=base)) as sb:
        assert list(sb.urls) == list(PROVIDERS)
        assert [sb.urls[p] for p in PROVIDERS] == [f"http://127.0.0.1:{base + i}" for i in range(5)]
        assert httpx.get(sb.urls["bloomreach"] + "/_sandbox/log").json() == []
    with Sandbox(SandboxConfig(port=base)) as sb:  # ports released on exit
        assert httpx.get(sb.urls["voucherify"] + "/_sandbox/items").json() == []


def test_ephemeral_ports_distinct():
    with Sandbox(SandboxConfig(port=0)) as sb:
        assert len(set(sb.urls.values())) == 5
        r = httpx.get(sb.urls["meta_catalog"] + "/nope/nope/nope")
        assert r.headers["content-type"] == "application/json"


def test_serve_forever_prints_urls_and_exits_on_ctrl_c(processes):
    base = _free_base_port()
    code = ("from reconciler.sandbox import serve_forever, SandboxConfig; "
            f"serve_forever(SandboxConfig(port={base}), echo=lambda s: print(s, flush=True))")
    proc = processes.start([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = [proc.stdout.readline().rstrip("\n") for _ in PROVIDERS]
    assert lines == [f"{p:<12} http://127.0.0.1:{base + i}" for i, p in enumerate(PROVIDERS)]
    assert httpx.get(f"http://127.0.0.1:{base + 3}/_sandbox/items").status_code == 200
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0
    assert "Traceback" not in proc.stderr.read()
