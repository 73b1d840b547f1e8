"""Processes a test starts, which never outlive it.

A test starts its subprocesses through the ``processes`` fixture (conftest.py): each
runs in a process group of its own and gets SIGKILL should the test process die (the
kernel's parent-death signal, so even a killed pytest leaves no ``reconciler apply``
behind), and at the test's end, whatever its path (passed, failed, timed out), every
one still running is killed with its group and reaped, its pipes closed.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1
# Looked up here, not in the child: between fork and exec only the call itself runs
_prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Processes:
    """``start`` is ``subprocess.Popen``; ``stop_all`` kills and reaps what is left."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, args: list[str], **options: Any) -> subprocess.Popen:
        proc = subprocess.Popen(args, start_new_session=True, preexec_fn=_die_with_parent, **options)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and its process group (if still running), reap it, close its pipes."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.communicate(timeout=30)
    except (subprocess.TimeoutExpired, ValueError):  # ValueError: its pipes were already read and closed
        proc.wait(timeout=30)
