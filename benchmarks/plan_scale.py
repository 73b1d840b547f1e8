"""How fast `reconciler plan` is on a large catalog, against an orjson parse baseline:
every figure of issue 14's table, in one run, each beside its baseline.

    python benchmarks/plan_scale.py                       # 1,000,000 products
    python benchmarks/plan_scale.py --products 100000     # everything scaled down
    python benchmarks/plan_scale.py --only first-load     # one part: plans, first-load, state
    python benchmarks/plan_scale.py --products 200000 --only plans --state postgresql://user@127.0.0.1/db

Parts:

* ``plans``: N products on ``meta_catalog`` (one record a product) and N/2 on
  ``vtex_ads`` (two records), against a state holding exactly what an apply of the
  catalog left; a no-op plan, and a plan after 1% of the lines were edited (a pull
  request), with the plan cache (warmed by a plan of the unedited catalog, as on the
  base branch) and without it (``--no-cache``: every product evaluated).
* ``first-load``: N products to all five targets, an empty state: every record a
  change (``--format json`` and text), with its peak RSS.
* ``state``: the state's bytes per record after one apply of N/5 products on
  ``vtex_ads`` (outcomes recorded as the executor records them, one request logged per
  batch), and what they are spent on.

``--state postgresql://…`` also times the plans with the state copied into that
database (a schema of its own, dropped afterwards), beside SQLite in the same run, and
prints PostgreSQL's time over SQLite's (goal <= 1.5).

Prints seconds (best of ``--repeat`` runs: the machine is shared; the best run is the
least disturbed one), the ratio to the baseline measured in the same run, and peak RSS.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.manifest.loader import Location, parse_product  # noqa: E402
from reconciler.manifest.models import Target  # noqa: E402
from reconciler.mapping import canonical, item_key, records  # noqa: E402
from reconciler.providers import get_provider  # noqa: E402
from reconciler.providers.base import Operation, Outcome  # noqa: E402
from reconciler.state import Location as StateLocation, State  # noqa: E402
from reconciler.state.transfer import migrate  # noqa: E402

TARGETS = {
    "meta_catalog": {"settings": {"catalog_id": "1", "api_version": "v21.0"}, "auth": {"access_token": "${T}"}},
    "bloomreach": {"settings": {"project_id": "p", "catalog_id": "c"}, "auth": {"key_id": "${K}", "key_secret": "${S}"}},
    "vtex_ads": {"auth": {"app_id": "${A}", "api_key": "${K}"}},
    "voucherify": {"auth": {"app_id": "${A}", "app_token": "${T}"}},
    "venddor": {"auth": {"username": "${U}", "password": "${P}"}},
}
CATEGORIES = [["Apparel", "Men", "Shirts"], ["Home", "Kitchen"], ["Electronics", "Audio", "Headphones"]]


def make_product(i: int, rng: random.Random) -> dict:
    sku = f"SKU-{i:08d}"
    return {
        "sku": sku, "name": f"Product {i} {rng.choice(['Red', 'Blue', 'Green'])}",
        "description": "A fine product. " * rng.randint(2, 6),
        "url": f"https://shop.example.com/p/{sku}", "image_url": f"https://cdn.example.com/{sku}.jpg",
        "additional_image_urls": [f"https://cdn.example.com/{sku}-2.jpg"],
        "brand": rng.choice(["Acme", "Northwind", "Contoso"]), "categories": rng.choice(CATEGORIES),
        "tags": ["export"], "price": f"{rng.randint(100, 99999) / 100:.2f}", "currency": "USD",
        "availability": "in stock", "condition": "new", "stock": rng.randint(0, 500), "status": "active",
        "weight_grams": rng.randint(50, 5000), "gtin": gtin(i),
        "metadata": {"season": rng.choice(["all", "fall"]), "warranty": rng.randint(0, 24), "origin": "BR"},
        "attributes": {"color": rng.choice(["red", "blue"]), "size": rng.choice(["S", "M", "L"])},
    }


def gtin(i: int) -> str:
    """A valid GTIN-13 per product (Venddor keys on it)."""
    body = f"789{i:09d}"
    total = sum(int(d) * (3 if n % 2 else 1) for n, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def target_config(provider: str) -> dict:
    return {"provider": provider, **TARGETS[provider]}


def write_catalog(manifests: Path, count: int, targets: dict[str, dict], seed: int = 7) -> Path:
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / "targets.json").write_bytes(orjson.dumps({"targets": targets}))
    rng = random.Random(seed)
    jsonl = manifests / "products.jsonl"
    with jsonl.open("wb") as out:
        for i in range(count):
            out.write(orjson.dumps(make_product(i, rng)) + b"\n")
    return jsonl


def applied_state(path: Path, jsonl: Path, name: str, provider: str) -> int:
    """A state holding exactly what an apply of ``jsonl`` to one target leaves (the
    outcomes recorded as the executor does, one request logged per batch); returns
    the number of records."""
    target = Target.model_validate({**target_config(provider), "name": name})
    batch = get_provider(provider).limits.max_items_per_request or 1000
    state = State(path)
    apply_id = state.begin_apply([name])
    outcomes, total = [], 0
    with jsonl.open("rb") as lines:
        for line in lines:
            product, _ = parse_product(line, Location("", 0))
            key = item_key(target, product)
            for record, payload in records(target, product).items():
                outcomes.append(Outcome(Operation("create", record, key, product.sku, None, payload), "confirmed",
                                        remote_id=None))
            if len(outcomes) >= batch:
                total += len(outcomes)
                state.record(name, outcomes, apply_id)
                state.log_request(name, "items", time.time(), 200, len(outcomes), 1000 * len(outcomes))
                outcomes = []
    if outcomes:
        total += len(outcomes)
        state.record(name, outcomes, apply_id)
        state.log_request(name, "items", time.time(), 200, len(outcomes), 1000 * len(outcomes))
    state.finish_apply(apply_id, "ok", {})
    state.close()
    return total


def edit_lines(source: Path, out: Path, fraction: float, seed: int = 11) -> int:
    """``source`` with ``fraction`` of its lines edited (a new price); returns how many."""
    rng, edited = random.Random(seed), 0
    with source.open("rb") as lines, out.open("wb") as result:
        for line in lines:
            if rng.random() < fraction:
                product = orjson.loads(line)
                product["price"] = f"{rng.randint(100, 99999) / 100:.2f}"
                line = orjson.dumps(product) + b"\n"
                edited += 1
            result.write(line)
    return edited


def run(cmd: list[str], repeat: int, before=None) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of a child process: the best of ``repeat`` runs
    (``before()`` is called before each, untimed)."""
    best = None
    for _ in range(repeat):
        if before is not None:
            before()
        result = run_once(cmd)
        best = result if best is None or result[0] < best[0] else best
    return best


def run_once(cmd: list[str]) -> tuple[float, float]:
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "elapsed = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(elapsed, rss, p.returncode)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True).stdout
    elapsed, rss, code_ = out.split()
    if code_ not in ("0", "2"):
        raise SystemExit(f"{' '.join(cmd)} exited {code_}")
    return float(elapsed), float(rss)


def baseline_command(jsonl: Path) -> list[str]:
    return [sys.executable, "-c", f"import orjson\nfor line in open({str(jsonl)!r}, 'rb'): orjson.loads(line)"]


def row(case: str, seconds: float, baseline: float, rss: float) -> None:
    print(f"  {case:<44}{seconds:>9.2f}{seconds / baseline:>11.2f}x{rss:>12.0f}", flush=True)


def header(title: str) -> None:
    print(f"\n{title}\n  {'case':<44}{'seconds':>9}{'baseline':>12}{'RSS MiB':>12}", flush=True)


def plans(root: Path, count: int, provider: str, repeat: int, postgres: str | None = None) -> None:
    name = provider.replace("_", "-")
    manifests, edited_dir = root / "manifests", root / "edited"
    jsonl = write_catalog(manifests, count, {name: target_config(provider)})
    state = root / "state.db"
    records_ = applied_state(state, jsonl, name, provider)
    edited_dir.mkdir()
    changed = edit_lines(jsonl, edited_dir / "products.jsonl", 0.01)
    shutil.copy(manifests / "targets.json", edited_dir / "targets.json")
    os.sync()
    cache, warm = root / "plan-cache", root / "plan-cache.warm"
    env_plan = [sys.executable, "-m", "reconciler", "-C", str(root), "--state", str(state), "plan", "--format", "json"]
    os.environ["RECONCILER_PLAN_CACHE"] = str(cache)
    baseline, baseline_rss = run(baseline_command(jsonl), repeat)
    header(f"{provider}: {count:,} products, {records_:,} records; {changed:,} lines edited (1%)")
    row("orjson parse of the file (baseline)", baseline, baseline, baseline_rss)
    noop_cold = run([*env_plan[:5], "--manifests", str(manifests), *env_plan[5:], "--no-cache"], repeat)
    row("plan, no-op, --no-cache", *noop_cold[:1], baseline, noop_cold[1])
    edit_cold = run([*env_plan[:5], "--manifests", str(edited_dir), *env_plan[5:], "--no-cache"], repeat)
    row("plan, 1% edited, --no-cache", *edit_cold[:1], baseline, edit_cold[1])
    first = run([*env_plan[:5], "--manifests", str(manifests), *env_plan[5:]], 1, before=lambda: cache.unlink(missing_ok=True))
    row("plan, no-op, empty cache (fills it)", *first[:1], baseline, first[1])
    shutil.copy(cache, warm)
    noop = run([*env_plan[:5], "--manifests", str(manifests), *env_plan[5:]], repeat)
    row("plan, no-op, cache", *noop[:1], baseline, noop[1])
    edit = run([*env_plan[:5], "--manifests", str(edited_dir), *env_plan[5:]], repeat,
               before=lambda: shutil.copy(warm, cache))
    row("plan, 1% edited, cache of the unedited catalog", *edit[:1], baseline, edit[1])
    if postgres:
        on_postgres(root, state, postgres, manifests, edited_dir, baseline, repeat,
                    {"no-op, --no-cache": noop_cold[0], "1% edited, --no-cache": edit_cold[0], "no-op, cache": noop[0]})


def on_postgres(root: Path, state: Path, url: str, manifests: Path, edited: Path, baseline: float, repeat: int,
                sqlite: dict[str, float]) -> None:
    """The same plans with the state copied into PostgreSQL; their time over SQLite's."""
    location = StateLocation.parse(url, f"bench_{os.getpid()}")
    source = State(state)
    migrate(source, location)
    source.close()
    where = ["--state", location.url, "--state-schema", location.schema]
    plan = [sys.executable, "-m", "reconciler", "-C", str(root), *where, "plan", "--format", "json"]
    try:
        cases = {"no-op, --no-cache": [*plan, "--manifests", str(manifests), "--no-cache"],
                 "1% edited, --no-cache": [*plan, "--manifests", str(edited), "--no-cache"],
                 "no-op, cache": [*plan, "--manifests", str(manifests)]}
        run(cases["no-op, cache"], 1)  # in step with this state: the cache's snapshot was SQLite's
        for case, cmd in cases.items():
            seconds, rss = run(cmd, repeat)
            row(f"plan, {case} (PostgreSQL)", seconds, baseline, rss)
            print(f"    PostgreSQL / SQLite = {seconds / sqlite[case]:.2f}  (goal <= 1.5)")
    finally:
        import psycopg

        with psycopg.connect(location.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{location.schema}" CASCADE')


def first_load_workspace(root: Path, count: int) -> Path:
    """Manifests under ``root`` of ``count`` products to every target of ``TARGETS``
    (and no state: every record is a change); returns the products' JSONL file."""
    return write_catalog(root / "manifests", count, {name.replace("_", "-"): target_config(name) for name in TARGETS})


def first_load(root: Path, count: int, repeat: int) -> None:
    jsonl = first_load_workspace(root, count)
    os.sync()
    baseline, baseline_rss = run(baseline_command(jsonl), repeat)
    header(f"first load: {count:,} products to {len(TARGETS)} targets, empty state")
    row("orjson parse of the file (baseline)", baseline, baseline, baseline_rss)
    plan_cmd = [sys.executable, "-m", "reconciler", "-C", str(root), "plan", "--no-cache"]
    json_, json_rss = run([*plan_cmd, "--format", "json"], repeat)
    row("plan --format json", json_, baseline, json_rss)
    text, text_rss = run(plan_cmd, repeat)
    row("plan (text)", text, baseline, text_rss)
    out = root / "plan.out"
    saved, saved_rss = run([*plan_cmd, "--format", "json", "-o", str(out)], 1)
    row(f"plan -o FILE ({out.stat().st_size / 2**30:.2f} GiB)", saved, baseline, saved_rss)
    show, show_rss = run([sys.executable, "-m", "reconciler", "-C", str(root), "show", str(out), "--format", "json"], 1)
    row("show FILE --format json", show, baseline, show_rss)


def state_size(root: Path, count: int) -> None:
    jsonl = write_catalog(root / "manifests", count, {"vtex-ads": target_config("vtex_ads")})
    path = root / "state.db"
    records_ = applied_state(path, jsonl, "vtex-ads", "vtex_ads")
    size = path.stat().st_size
    print(f"\nstate after one apply: {count:,} products on vtex_ads, {records_:,} records")
    print(f"  file {size / 1e6:.1f} MB = {size / records_:.0f} B a record (goal <= 150)")
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:  # a SQLite built without dbstat
        rows = []
    for table, used in rows[:4]:
        print(f"  {'table or index ' + table:<36}{used / records_:>8.0f} B a record")
    columns = [name for _, name, *_ in conn.execute("PRAGMA table_info(items)")]
    sizes = conn.execute("SELECT " + ", ".join(f"avg({stored_bytes(c)})" for c in columns) + " FROM items").fetchone()
    print("  items, average bytes a column as stored (record header and cell overhead not counted): "
          + ", ".join(f"{c} {n or 0:.0f}" for c, n in zip(columns, sizes)))
    dictionaries = conn.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM dictionaries").fetchone()
    conn.close()
    state = State(path, create=False)
    sample = [canonical(item.payload) for _, item in zip(range(2000), state.items())]
    state.close()
    packed = sum(len(zlib.compress(p, 9)) for p in sample) / len(sample)
    print(f"  a payload's canonical JSON {sum(map(len, sample)) / len(sample):.0f} B, zlib-compressed alone "
          f"{packed:.0f} B; {dictionaries[0]} dictionaries, {dictionaries[1] / 1024:.0f} KiB in all")


def stored_bytes(column: str) -> str:
    """SQL for the bytes SQLite's record format spends on a value of ``column``."""
    return (f"CASE typeof({column}) WHEN 'null' THEN 0 WHEN 'real' THEN 8 "
            f"WHEN 'integer' THEN (CASE WHEN {column} IN (0, 1) THEN 0 WHEN abs({column}) < 128 THEN 1 "
            f"WHEN abs({column}) < 32768 THEN 2 WHEN abs({column}) < 8388608 THEN 3 "
            f"WHEN abs({column}) < 2147483648 THEN 4 WHEN abs({column}) < 140737488355328 THEN 6 ELSE 8 END) "
            f"ELSE length(CAST({column} AS BLOB)) END")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", choices=["plans", "first-load", "state"])
    parser.add_argument("--state", help="also time the plans with the state in this postgresql:// database")
    args = parser.parse_args()
    count = args.products
    for part in ("plans", "first-load", "state"):
        if args.only not in (None, part):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            if part == "plans":
                plans(Path(tmp) / "meta", count, "meta_catalog", args.repeat, args.state)
                plans(Path(tmp) / "vtex", count // 2, "vtex_ads", args.repeat, args.state)
            elif part == "first-load":
                first_load(Path(tmp), count, args.repeat)
            else:
                state_size(Path(tmp), count // 5)


if __name__ == "__main__":
    main()
