"""What checking a saved plan costs `apply PLANFILE`, against making it (`plan -o`).

Generates N products to the four targets of ``plan_scale.TARGETS`` and an empty state
(a first load: every record is a change, the largest plan file for N), then times,
each in a fresh process:

* ``plan -o`` (the baseline): the manifests planned and the plan saved;
* ``apply PLANFILE``'s checks: the file read and checked (digest, shape, summary),
  the plan made again and compared, digest first;
* the same for a file whose last change was edited (digest made again, so that the
  checks get as far as the comparison), which also names the first difference.

    python benchmarks/plan_verify.py                 # 200,000 products
    python benchmarks/plan_verify.py --products 50000

Prints seconds (best of two runs), the ratio to the baseline and the peak RSS.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from plan_scale import TARGETS, first_load_workspace


def child(case: str, root: Path, planfile: Path) -> None:
    """One measured case, in this process; prints seconds and peak RSS (MiB)."""
    from reconciler.errors import ReconcilerError
    from reconciler.manifest.loader import load
    from reconciler.plan import build_plan
    from reconciler.plan import file as plan_file
    from reconciler.plan.verify import verify
    from reconciler.state import State

    started = time.perf_counter()
    manifests, state = load(root / "manifests"), State(root / "state.db", create=False)
    if case == "plan":
        plan_file.save(build_plan(manifests, state), planfile)
    else:
        try:
            verify(plan_file.read(planfile), manifests, state)
        except ReconcilerError as exc:
            if case != "edited":
                raise
            print(f"refused: {str(exc)[:160]}…", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(elapsed, peak_rss())


def peak_rss() -> float:
    """This process's peak RSS in MiB. Not ``ru_maxrss``: Linux carries it over an exec
    from the parent, which here has held a whole plan file."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(case: str, root: Path, planfile: Path, repeat: int = 2) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", case, str(root), str(planfile)],
                             capture_output=True, text=True, check=True)
        sys.stderr.write(out.stderr)
        seconds, rss = out.stdout.split()
        runs.append((float(seconds), float(rss)))
    return min(runs)


def edit_last_change(planfile: Path, edited: Path) -> None:
    """``planfile`` with its last change's payload edited and the digest made again."""
    lines = planfile.read_bytes().splitlines(keepends=True)
    last = orjson.loads(lines[-2])
    last["after"] = {**last["after"], "edited": True}
    lines[-2] = orjson.dumps(last) + b"\n"
    body = b"".join(lines[:-1])
    end = {"end_of_plan": {"changes": len(lines) - 2, "blake2b": hashlib.blake2b(body, digest_size=32).hexdigest()}}
    edited.write_bytes(body + orjson.dumps(end) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=200_000)
    parser.add_argument("--child", nargs=3, metavar=("CASE", "ROOT", "PLANFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        first_load_workspace(root, args.products)
        planfile, edited = root / "plan.out", root / "edited.out"
        os.sync()
        plan, plan_rss = measure("plan", root, planfile)
        edit_last_change(planfile, edited)
        size = planfile.stat().st_size / 2**20
        os.sync()
        check, check_rss = measure("verify", root, planfile)
        differs, differs_rss = measure("edited", root, edited)
    print(f"first load: {args.products:,} products to {len(TARGETS)} targets, a plan file of {size:.0f} MiB")
    print(f"{'case':<34}{'seconds':>9}{'x plan -o':>11}{'peak RSS MiB':>14}")
    print(f"{'plan -o (baseline)':<34}{plan:>9.2f}{1:>11.2f}{plan_rss:>14.0f}")
    print(f"{'apply PLANFILE: checks, equal':<34}{check:>9.2f}{check / plan:>11.2f}{check_rss:>14.0f}")
    print(f"{'apply PLANFILE: checks, one edit':<34}{differs:>9.2f}{differs / plan:>11.2f}{differs_rss:>14.0f}")


if __name__ == "__main__":
    main()
