"""A real PostgreSQL server for the tests, started by the suite itself.

``initdb`` and ``pg_ctl`` of the system's PostgreSQL (on PATH, or Debian's
/usr/lib/postgresql/N/bin) make a throwaway cluster in a temporary directory, as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root),
with trust authentication, listening on 127.0.0.1 at a free port, without fsync. Each
test gets a schema of its own in it. Without an installed PostgreSQL the tests that
need it are skipped, saying why (`.ci/run` installs it, so CI always runs them).

A cluster never outlives its suite: it is stopped at the session's end, at the
process's exit (atexit) and on SIGTERM (conftest.py). Should the process be killed
outright, its cluster is found by the next run of the same suite: each cluster's
directory names its owner (the process id and start time, and the suite's folder),
and a starting suite stops and removes the clusters of ITS folder whose owner is
gone. A cluster of another folder or of a live process is never touched.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

PREFIX = "reconciler-pg-"
SUITE = str(Path(__file__).resolve().parent)


def binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def started_at(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), None if there is none:
    a pid with another start time is another process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner() -> dict:
    return {"pid": os.getpid(), "started": started_at(os.getpid()), "suite": SUITE}


def stale_clusters() -> list[Path]:
    """This suite's clusters whose owning process is gone."""
    stale = []
    for base in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            made_by = json.loads((base / "owner.json").read_text())
        except (OSError, ValueError):
            continue  # not one this code made: not ours to judge
        if made_by.get("suite") == SUITE and started_at(made_by["pid"]) != made_by["started"]:
            stale.append(base)
    return stale


class Server:
    """A running throwaway cluster; ``url`` connects to its ``postgres`` database."""

    def __init__(self) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL is not installed (no pg_ctl on PATH nor in /usr/lib/postgresql): "
                                    "the PostgreSQL state tests are skipped (apt-get install postgresql)")
        self.user = "postgres" if os.geteuid() == 0 else None
        self._stopping = threading.Lock()
        for base in stale_clusters():
            self._remove(base)
        self.base = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.base / "owner.json").write_text(json.dumps(owner()))  # before anything can be left running
        if self.user:
            shutil.chown(self.base, self.user)
        self.data = self.base / "data"
        self.port = free_port()
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "reconciler", "-E", "UTF8", "--no-sync")
            self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "-t", "60",
                      "start")
        except BaseException:
            self.stop()
            raise
        self.url = f"postgresql://reconciler@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([str(self.bin / program), *args], capture_output=True, text=True, user=self.user,
                                cwd="/", timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr or result.stdout}")

    def stop(self) -> None:
        """Stop the cluster and remove its files (once; later calls do nothing)."""
        if self._stopping.acquire(blocking=False):
            self._remove(self.base)

    def _remove(self, base: Path) -> None:
        try:
            if (base / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(base / "data"), "-m", "immediate", "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # not running after all: its files go all the same
        finally:
            shutil.rmtree(base, ignore_errors=True)
