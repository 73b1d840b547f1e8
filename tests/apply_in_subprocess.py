"""Plan and apply in a process of its own, for tests that interrupt or kill it.

    python tests/apply_in_subprocess.py STATE URLS_JSON N [VERSION [LIMITS_JSON]]

STATE is a path or a postgresql:// URL (its schema in RECONCILER_STATE_SCHEMA).

Plans products ``0..N-1`` (at ``VERSION``) for the sandbox targets at ``URLS_JSON``
(``{provider: base URL}``) with the real planner, prints ``planned``, and applies.
Exit 0 when the apply was ok.
"""
from __future__ import annotations

import json
import os
import sys

from support import fast_tuning, make_products, plan_products, sandbox_targets

from reconciler.apply import NullReporter, apply_plan
from reconciler.state import State


def main(argv: list[str]) -> int:
    state_path, urls, n = argv[0], json.loads(argv[1]), int(argv[2])
    version = int(argv[3]) if len(argv) > 3 else 0
    limits = json.loads(argv[4]) if len(argv) > 4 else None
    state = State(state_path, schema=os.environ.get("RECONCILER_STATE_SCHEMA"))
    targets = sandbox_targets(urls, providers=tuple(urls), limits=limits)
    plan = plan_products(state, targets, make_products(n, version=version))
    print("planned", flush=True)
    result = apply_plan(plan, targets, state, reporter=NullReporter(), tuning=fast_tuning())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
