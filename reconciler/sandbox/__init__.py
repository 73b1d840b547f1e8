"""The sandbox harness: local HTTP simulators of every provider API (``reconciler sandbox``).

Each provider's simulator lives in its folder (``Provider.simulator``); the harness
discovers them from the provider registry. Each simulator is a real HTTP server on 127.0.0.1 (a starlette app served by uvicorn)
that behaves like its API document: it accepts only the sandbox credentials, enforces
every documented limit, answers with the documented success and error shapes, and logs
every request so that tests can assert no limit was ever exceeded.

    with Sandbox(SandboxConfig(port=0, time_scale=0.001)) as sb:
        sb.urls[name]                  # "http://127.0.0.1:54321", per provider name
        ...                            # talk to it over HTTP
        sb.violations                  # [] when the client respected every limit
        sb.catalog(name, **scope)      # what that simulator stores

All servers run in ONE background thread with one asyncio loop. Ports are bound
before the thread starts, so ``port=0`` (ephemeral ports) works and ``urls`` is known
at once. Ports follow the registry's order: ``port``, ``port+1``, ... (see
:func:`port_range`).

Log entries are dicts ``{provider, method, path, status, items, bytes, started,
finished, fault, violation}`` (``started``/``finished`` are ``time.monotonic()``;
``status`` is None for a dropped connection). See :mod:`reconciler.sandbox.common` for
the shared machinery and each provider's ``simulator`` module for its endpoints.
"""
from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import uvicorn

from reconciler.providers import RegistryView, get_provider, load, names
from reconciler.sandbox.common import RequestLog, SandboxConfig, Simulator

__all__ = ["CREDENTIALS", "Sandbox", "SandboxConfig", "port_range", "serve_forever", "simulator_class"]

HOST = "127.0.0.1"


def simulator_class(provider: str) -> type[Simulator]:
    """The simulator of a registered provider."""
    where = get_provider(provider).simulator
    if where is None:
        raise ValueError(f"provider {provider!r} has no sandbox simulator")
    return load(where)


# What a target's ``auth:`` says to talk to each simulator (SPEC's sandbox table).
CREDENTIALS: Mapping[str, dict[str, str]] = RegistryView(lambda name: dict(simulator_class(name).credentials))


def port_range(first: int) -> str:
    """The ports the sandbox takes from ``first``, e.g. ``8700-8704``."""
    return f"{first}-{first + len(names()) - 1}"


class Sandbox:
    """The simulators of ``providers`` (default: every registered provider, in registry
    order), served in a background thread (a context manager)."""

    def __init__(self, config: SandboxConfig | None = None, providers: Sequence[str] | None = None):
        self.config = config or SandboxConfig()
        self.providers = tuple(names() if providers is None else providers)
        self._log = RequestLog()
        self.simulators: dict[str, Simulator] = {
            name: simulator_class(name)(self.config, self._log) for name in self.providers
        }
        self.urls: dict[str, str] = {}
        self._sockets: list[socket.socket] = []
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> "Sandbox":
        if self._thread is not None:
            return self
        try:
            for offset, name in enumerate(self.providers):
                # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted sockets
                # (with proto 0 it does not, and Nagle + delayed ACK add ~40 ms each)
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                port = self.config.port + offset if self.config.port else 0
                sock.bind((HOST, port))
                sock.listen(128)
                sock.setblocking(False)
                self._sockets.append(sock)
                self.urls[name] = f"http://{HOST}:{sock.getsockname()[1]}"
        except OSError:
            self._close_sockets()
            raise
        self._servers = [
            uvicorn.Server(
                uvicorn.Config(
                    self.simulators[name].build_app(),
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=1,
                )
            )
            for name in self.providers
        ]
        self._thread = threading.Thread(target=self._run, name="reconciler-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=15)
        if self._error is not None or not self._ready.is_set():
            self.stop()
            raise RuntimeError(f"sandbox failed to start: {self._error!r}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # pragma: no cover - surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, sock in zip(self._servers, self._sockets)
        ]
        while not all(s.started for s in self._servers):
            done = [t for t in tasks if t.done()]
            if done:
                self._error = done[0].exception() or RuntimeError("server exited")
                self._ready.set()
                for s in self._servers:
                    s.should_exit = True
                await asyncio.gather(*tasks, return_exceptions=True)
                return
            await asyncio.sleep(0.01)
        self._ready.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass
        self._sockets = []

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- introspection --------------------------------------------------------------

    @property
    def log(self) -> list[dict]:
        """Every logged request of every simulator, oldest first (copies)."""
        return self._log.entries()

    @property
    def violations(self) -> list[dict]:
        """The log entries where the client exceeded a documented limit."""
        return [e for e in self._log.entries() if e["violation"] is not None]

    def catalog(self, provider: str, **scope: Any) -> list[dict]:
        """The items ``provider`` has stored (see each provider module for scope keys),
        once the work it queued so far is done: VTEX Ads and Bloomreach store what they
        accepted ``async_delay`` seconds later, and this waits for that."""
        self.simulators[provider].finish_queued()
        return self.simulators[provider].items(**scope)

    def reset(self) -> None:
        """Empty every catalog, job, rate window and the log; restart fault draws."""
        for sim in self.simulators.values():
            sim.reset()
        self._log.clear()


def serve_forever(config: SandboxConfig, echo: Callable[[str], Any] = print) -> None:
    """Run the sandbox until Ctrl-C (or SIGTERM), printing each provider's base URL."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _terminate(signum, frame):
            raise KeyboardInterrupt
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with Sandbox(config) as sandbox:
            for name in sandbox.providers:
                echo(f"{name:<12} {sandbox.urls[name]}")
            try:
                sys.stdout.flush()
            except (OSError, ValueError):  # pragma: no cover
                pass
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
