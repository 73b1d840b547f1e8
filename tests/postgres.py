"""A real PostgreSQL server for the tests, started by the suite itself.

``initdb`` and ``pg_ctl`` of the system's PostgreSQL (on PATH, or Debian's
/usr/lib/postgresql/N/bin) make a throwaway cluster in a temporary directory, as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root),
with trust authentication, listening on 127.0.0.1 at a free port, without fsync. Each
test gets a schema of its own in it. Without an installed PostgreSQL the tests that
need it are skipped, saying why (`.ci/run` installs it, so CI always runs them).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


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


class Server:
    """A running throwaway cluster; ``url`` connects to its ``postgres`` database."""

    def __init__(self) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL is not installed (no pg_ctl on PATH nor in /usr/lib/postgresql): "
                                    "the PostgreSQL state tests are skipped (apt-get install postgresql)")
        self.user = "postgres" if os.geteuid() == 0 else None
        self.base = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        if self.user:
            shutil.chown(self.base, self.user)
        self.data = self.base / "data"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "reconciler", "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "-t", "60",
                  "start")
        self.url = f"postgresql://reconciler@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([str(self.bin / program), *args], capture_output=True, text=True, user=self.user,
                                cwd=self.base, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr or result.stdout}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
