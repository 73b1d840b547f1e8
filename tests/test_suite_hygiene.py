"""The suite leaves nothing running: a test's subprocesses die with it (and with the
test process), and a starting suite removes only its own clusters whose owner is gone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import postgres
from conftest import eventually
from processes import Processes

TESTS = Path(__file__).resolve().parent

# A parent that starts a child through Processes, prints the child's pid, then waits
PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from processes import Processes
child = Processes().start([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too: it runs nothing (its parent has not reaped it yet)
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_stop_all_kills_and_reaps_a_process_and_its_group():
    started = Processes()
    proc = started.start([sys.executable, "-c", "import subprocess, sys, time\n"
                          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                          "print(child.pid, flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    grandchild = int(proc.stdout.readline())
    started.stop_all()
    assert proc.returncode is not None  # reaped
    eventually(lambda: gone(grandchild), "the grandchild's end")


def test_a_test_process_killed_outright_takes_its_subprocesses_along(processes):
    parent = processes.start([sys.executable, "-c", PARENT, str(TESTS)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    eventually(lambda: gone(child), "the child's end after its parent was killed")


def test_only_this_suites_clusters_of_gone_owners_are_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(postgres.tempfile, "gettempdir", lambda: str(tmp_path))
    me = postgres.owner()

    def cluster(name, **made_by):
        base = tmp_path / (postgres.PREFIX + name)
        base.mkdir()
        if made_by:
            (base / "owner.json").write_text(json.dumps({**me, **made_by}))
        return base
    cluster("live", pid=me["pid"])                                   # this process: alive
    dead = cluster("dead", started="0")                              # same pid, another start: gone
    cluster("foreign", started="0", suite="/elsewhere/tests")        # another checkout's: never ours
    cluster("unmarked")                                              # made by older code: not ours to judge
    assert postgres.stale_clusters() == [dead]


HOLDING_A_SERVER = """
import time

def test_holding_the_server(postgres):
    print("BASE", postgres.base, flush=True)
    time.sleep(600)
"""


def test_a_suite_ended_by_sigterm_stops_its_postgres_server(tmp_path, processes, postgres):
    # (the fixture's own server: this test needs PostgreSQL installed, as the state tests do)
    (tmp_path / "test_holding.py").write_text(HOLDING_A_SERVER)
    suite = processes.start([sys.executable, "-m", "pytest", "-q", "-s", "-p", "conftest", "-p", "no:cacheprovider",
                             str(tmp_path / "test_holding.py")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(TESTS)})
    line = ""
    while not line.startswith("BASE"):
        line = suite.stdout.readline()
        assert line, "the inner suite ended before its server started"
    base = Path(line.split(maxsplit=1)[1].strip())
    assert (base / "data" / "postmaster.pid").exists()
    suite.terminate()
    suite.communicate(timeout=60)
    assert not base.exists()
