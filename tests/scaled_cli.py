"""The reconciler command line with its rate windows scaled, for a time-scaled sandbox
(``--time-scale`` of the simulators): a process of its own, as a runner is.

    python tests/scaled_cli.py SCALE reconciler-arguments...
"""
from __future__ import annotations

import functools
import sys

from reconciler.apply import session
from reconciler.apply.tuning import Tuning
from reconciler.cli import main

if __name__ == "__main__":
    session.Tuning = functools.partial(Tuning, window_scale=float(sys.argv[1]))
    sys.argv = ["reconciler", *sys.argv[2:]]
    main()
