"""Apply at scale: N products (default 100,000) to all five sandbox targets.

    python benchmarks/apply_scale.py [--products N] [--time-scale S] [--latency L] [--state postgresql://…]

Each provider's simulator runs in a process of its own (so that its work shares neither
our GIL nor another simulator's event loop), with time-scaled rate windows; the
executor gets the same scale. Prints:

* requests sent / the minimum the limits allow (goal 1.00): the minimum is, per target
  and group of operations that may share a request, the larger of ceil(items /
  max_items) and ceil(bytes / max_bytes);
* wall time / the lower bound that the rate windows and concurrency imply (goal
  <= 1.10): per target the larger of (a) the window: request i cannot be sent before
  floor(i / N) windows have passed, plus one request's service time, and (b) the
  concurrency: ceil(requests / in_flight) requests one after the other, each taking
  the median service time the sandbox measured for that target; plus the asynchronous
  delay of the last job for Meta and Voucherify. Targets run concurrently, so the bound
  is the largest of the targets';
* for a 1% change, items sent / a naive full re-push of every item (goal <= 0.011).

With ``--state postgresql://…`` the state is kept in that database (a schema of its
own, dropped afterwards) instead of a SQLite file: the same goals hold.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package, and the tests' helpers

from reconciler.apply import NullReporter, apply_plan  # noqa: E402
from reconciler.providers import get_provider, limits_for  # noqa: E402
from reconciler.state import Location, State  # noqa: E402
from support import (  # noqa: E402
    PROVIDERS, fast_tuning, make_product, make_products, plan_products, sandbox_targets,
)


def _serve(config_kwargs: dict, queue, stop) -> None:
    from reconciler.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(**config_kwargs)) as sandbox:
        queue.put(dict(sandbox.urls))
        stop.wait()


def _get(url: str):
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def server_log(urls: dict[str, str]) -> list[dict]:
    entries = []
    for url in urls.values():
        entries += _get(url + "/_sandbox/log")
    return entries


def minimum_requests(plan, targets) -> dict[str, int]:
    minimum = {}
    for name, tp in plan.targets.items():
        cls = get_provider(targets[name].provider)
        provider = cls(targets[name].settings, {k: "x" for k in cls.auth_keys})
        limits = limits_for(targets[name])
        local = set(cls.capabilities.local_deletes)
        groups: dict = {}
        for change in tp.changes:
            op = change.operation()
            if op.action == "delete" and op.record in local:
                continue
            groups.setdefault(provider.group_key(op), []).append(op)
        count = 0
        for ops in groups.values():
            need = math.ceil(len(ops) / limits.max_items_per_request) if limits.max_items_per_request else 1
            if limits.max_bytes_per_request:
                size = len(provider.encode(ops).body or b"")
                need = max(need, math.ceil(size / limits.max_bytes_per_request))
            count += need
        minimum[name] = count
    return minimum


def lower_bound(result, targets, log, time_scale: float, async_delay: float) -> tuple[float, dict[str, float]]:
    bounds = {}
    for name, tr in result.targets.items():
        limits = limits_for(targets[name])
        writes = [e for e in log if e["provider"] == targets[name].provider and e["method"] in ("POST", "PUT", "DELETE")]
        service = statistics.median(e["finished"] - e["started"] for e in writes) if writes else 0.0
        requests = tr.requests
        in_flight = limits.max_in_flight or fast_tuning().default_in_flight
        concurrency = math.ceil(requests / in_flight) * service
        window = 0.0
        if limits.max_requests_per_window and limits.window_seconds and requests:
            window = ((requests - 1) // limits.max_requests_per_window) * limits.window_seconds * time_scale + service
        bound = max(concurrency, window)
        if get_provider(targets[name].provider).capabilities.asynchronous:
            bound += async_delay
        bounds[name] = bound
    return max(bounds.values()), bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.005)
    parser.add_argument("--async-delay", type=float, default=0.2)
    parser.add_argument("--state", help="keep the state in this postgresql:// database instead of SQLite")
    args = parser.parse_args()

    # One sandbox process per provider, as the real APIs are independent servers: one
    # busy simulator must not slow the answers of another (one thread serves them all
    # within a process).
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    config = dict(port=0, time_scale=args.time_scale, latency=args.latency, async_delay=args.async_delay)
    servers, urls = [], {}
    for provider in PROVIDERS:
        queue = ctx.Queue()
        server = ctx.Process(target=_serve, args=(config, queue, stop), daemon=True)
        server.start()
        servers.append(server)
        urls[provider] = queue.get(timeout=60)[provider]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            location = (Location.parse(args.state, f"bench_{os.getpid()}") if args.state
                        else Location(path=Path(tmp) / "reconciler.db"))
            state = State(location)
            targets = sandbox_targets(urls, providers=PROVIDERS)
            tuning = fast_tuning(window_scale=args.time_scale, poll_initial=0.05, poll_cap=0.2)
            products = make_products(args.products)

            started = time.perf_counter()
            plan = plan_products(state, targets, products)
            plan_seconds = time.perf_counter() - started
            items = sum(len(tp.changes) for tp in plan.targets.values())
            minimum = minimum_requests(plan, targets)

            started, cpu = time.perf_counter(), time.process_time()
            result = apply_plan(plan, targets, state, reporter=NullReporter(), tuning=tuning)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            log = server_log(urls)
            bound, bounds = lower_bound(result, targets, log, args.time_scale, args.async_delay)
            violations = [e for e in log if e.get("violation")]

            print(f"products: {args.products:,}  items (target records): {items:,}  time scale: {args.time_scale}")
            print(f"plan: {plan_seconds:.2f}s   apply ok: {result.ok}   violations: {len(violations)}")
            print(f"{'target':<14}{'items':>9}{'requests':>10}{'minimum':>9}{'polls':>7}{'waited s':>10}"
                  f"{'seconds':>9}{'bound s':>9}")
            for name, tr in result.targets.items():
                print(f"{name:<14}{tr.total:>9,}{tr.requests:>10}{minimum[name]:>9}{tr.polls:>7}"
                      f"{tr.wait_seconds:>10.2f}{tr.seconds:>9.2f}{bounds[name]:>9.2f}")
            sent, least = sum(t.requests for t in result.targets.values()), sum(minimum.values())
            print(f"requests sent / minimum the limits allow: {sent} / {least} = {sent / least:.2f}  (goal 1.00)")
            print(f"wall time / lower bound: {wall:.2f}s / {bound:.2f}s = {wall / bound:.2f}  (goal <= 1.10)")
            print(f"throughput: {items / wall:,.0f} items/s; client CPU {cpu:.1f}s = {cpu / items * 1e6:.0f} µs/item "
                  "(state recording, providers' encode/decode, HTTP, executor)")

            # a 1% change
            changed = [make_product(i, version=1) if i % 100 == 0 else p for i, p in enumerate(products)]
            plan = plan_products(state, targets, changed)
            result2 = apply_plan(plan, targets, state, reporter=NullReporter(), tuning=tuning)
            sent_items = sum(t.items_sent for t in result2.targets.values())
            full = sum(len(state.hashes(name)) for name in targets)
            print(f"1% change: ok {result2.ok}; items sent / naive full re-push: {sent_items:,} / {full:,} = "
                  f"{sent_items / full:.4f}  (goal <= 0.011)")
            state.close()
            if args.state:
                drop_schema(location)
    finally:
        stop.set()
        for server in servers:
            server.join(timeout=10)
            if server.is_alive():
                server.terminate()


def drop_schema(location: Location) -> None:
    import psycopg

    with psycopg.connect(location.url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{location.schema}" CASCADE')


if __name__ == "__main__":
    main()
