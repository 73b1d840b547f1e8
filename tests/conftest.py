"""Shared test factories: workspaces written from Python data, and a CLI runner."""
from __future__ import annotations

import atexit
import os
import signal
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import orjson
import psycopg
import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.manifest.models import check_digit
from reconciler.sandbox import CREDENTIALS, Sandbox, SandboxConfig
from reconciler.state import Location, State
from postgres import Server
from processes import Processes
from support import eventually, expected_view, queued_work_done, remote_view  # noqa: F401 (re-exported)

SANDBOX_SETTINGS = {
    "meta_catalog": {"catalog_id": "1234567890", "api_version": "v21.0"},
    "bloomreach": {"project_id": "p1", "catalog_id": "c1"},
}


# A targets manifest whose one target takes any product (Bloomreach requires no field):
# beside it, a product file's own problems are the only ones.
ANY_PRODUCT_TARGET = """\
targets:
  shop:
    provider: bloomreach
    base_url: http://127.0.0.1:9
    auth: {key_id: "${BR_KEY_ID}", key_secret: "${BR_KEY_SECRET}"}
    settings: {project_id: p1, catalog_id: c1}
"""


def target(provider: str, base_url: str = "http://127.0.0.1:9", **extra: Any) -> dict[str, Any]:
    """A target config for ``provider`` with the sandbox credentials."""
    return {"provider": provider, "base_url": base_url, "auth": dict(CREDENTIALS[provider]),
            "settings": dict(SANDBOX_SETTINGS.get(provider, {})), **extra}


def with_check_digit(body: str) -> str:
    """A GTIN: ``body`` and its GS1 check digit."""
    return body + str(check_digit(body))


def product(sku: str, **extra: Any) -> dict[str, Any]:
    """A product that every provider accepts."""
    base = {
        "sku": sku, "name": f"Product {sku}", "description": f"About {sku}",
        "url": f"https://shop.example.com/p/{sku}", "image_url": f"https://cdn.example.com/{sku}.jpg",
        "brand": "Acme", "categories": ["Home", "Kitchen"], "price": "10.00", "currency": "USD",
        "stock": 5, "metadata": {"origin": "test"},
    }
    base.update(extra)
    return base


class Workspace:
    """A workspace directory under tmp_path, with helpers to write manifests and run
    the CLI in it."""

    def __init__(self, root: Path):
        self.root = root
        self.manifests = root / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.state_location = Location(path=root / "state" / "reconciler.db")
        self.global_args: list[str] = []

    def use_state(self, location: Location) -> "Workspace":
        """Run the CLI with ``--state`` (and ``--state-schema``) at ``location``."""
        self.state_location = location
        self.global_args = (["--state", str(location.path)] if location.path is not None
                            else ["--state", location.url, "--state-schema", location.schema])
        return self

    def write(self, name: str, content: Any) -> Path:
        path = self.manifests / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content))
        elif name.endswith(".json"):
            path.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2))
        elif name.endswith(".jsonl"):
            path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in content))
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["-C", str(self.root), *self.global_args, *args], input=input,
                                  catch_exceptions=False)


@pytest.fixture(autouse=True)
def plan_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path | None:
    """Every plan of a test (the CLI's and the library's) uses a plan cache of its own,
    unless RECONCILER_NO_CACHE is set: the suite runs both ways (`RECONCILER_NO_CACHE=1
    python -m pytest`), and must pass both ways."""
    if os.environ.get("RECONCILER_NO_CACHE"):
        return None
    path = tmp_path / "plan-cache"
    monkeypatch.setenv("RECONCILER_PLAN_CACHE", str(path))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def make_ws(tmp_path: Path) -> Callable[[str], Workspace]:
    return lambda name: Workspace(tmp_path / name)


@pytest.fixture
def processes():
    """Start a test's subprocesses with ``processes.start(args, **popen_options)``: every
    one still running at the test's end, whatever its path, is killed and reaped (and
    none outlives the test process; see tests/processes.py)."""
    started = Processes()
    yield started
    started.stop_all()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of the suite's own (see tests/postgres.py); the tests that
    need it are skipped, with the reason, only where PostgreSQL is not installed.
    Stopped at the session's end, at exit, and on SIGTERM (which then ends the run as
    an interrupt would: fixtures torn down, subprocesses killed)."""
    try:
        server = Server()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    atexit.register(server.stop)
    previous = signal.getsignal(signal.SIGTERM)

    def terminated(signum, frame):
        server.stop()
        raise KeyboardInterrupt("SIGTERM")
    if previous == signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)
    yield server
    if signal.getsignal(signal.SIGTERM) is terminated:
        signal.signal(signal.SIGTERM, previous)
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_location(request, tmp_path: Path):
    """Where a test's state lives, once per backend: a SQLite file in the test's
    directory, or a schema of its own in the suite's PostgreSQL server."""
    if request.param == "sqlite":
        yield Location(path=tmp_path / "reconciler.db")
        return
    server = request.getfixturevalue("postgres")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield Location(url=server.url, schema=schema)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def state(state_location: Location):
    """An empty state, on each backend."""
    st = State(state_location)
    yield st
    st.close()


def location_arg(location: Location) -> tuple[str, dict[str, str]]:
    """``location`` as a ``--state``-style argument and the environment it needs."""
    if location.path is not None:
        return str(location.path), {}
    return location.url, {"RECONCILER_STATE_SCHEMA": location.schema}


def sandbox_fixture(scope: str = "module", **config: Any):
    """A fixture running every registered simulator in-process on ephemeral ports with
    ``config`` (see ``SandboxConfig``)."""
    @pytest.fixture(scope=scope)
    def fixture():
        with Sandbox(SandboxConfig(port=0, **config)) as sandbox:
            yield sandbox
    return fixture


def emptied_before_each_test(sandbox: str = "sb"):
    """An autouse fixture emptying the module's ``sandbox`` fixture (catalogs, jobs,
    request log) before each test: ``fresh = emptied_before_each_test()``."""
    @pytest.fixture(autouse=True)
    def fixture(request):
        request.getfixturevalue(sandbox).reset()
    return fixture


class SimulatorClock:
    """A simulator's clock (its rate windows, queued work and jobs) that only the test
    moves: no test depends on how fast the machine is."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def moved_clock(sandbox: Sandbox, provider: str, monkeypatch) -> SimulatorClock:
    """Stop ``provider``'s simulator clock where it is; the test moves it."""
    simulator = sandbox.simulators[provider]
    clock = SimulatorClock(simulator.now())
    monkeypatch.setattr(simulator, "now", clock)
    return clock


def sandbox_writes(sandbox: Sandbox, provider: str, method: str | None = None) -> list[dict]:
    """The write requests ``provider``'s simulator logged (only ``method``'s, if given),
    in the order they arrived."""
    entries = [e for e in sandbox.log if e["provider"] == provider and e["method"] in ("POST", "PUT", "DELETE")]
    if method:
        entries = [e for e in entries if e["method"] == method]
    return sorted(entries, key=lambda e: e["started"])


def assert_state_true(sandbox: Sandbox, state: State, targets, in_flight=()) -> None:
    """The state records nothing the destination does not hold. With ``in_flight``
    (products a killed run may have sent), the destination may also hold their
    version of an item: an asynchronous API that accepted a batch applies it even when
    the process died before it could record the job, so the state is behind, not wrong,
    and the next apply sends that version again."""
    queued_work_done(sandbox)
    for name, target in targets.items():
        remote = remote_view(sandbox, target)
        sent = expected_view(target, in_flight) if in_flight else {}
        for item in state.items(name):
            held = remote.get((item.record, item.key))
            assert held == item.payload or (held is not None and held == sent.get((item.record, item.key))), \
                (name, item.key)
