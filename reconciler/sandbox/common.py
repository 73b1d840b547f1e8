"""What every simulator shares: the request log, limits, faults and the write pipeline.

A simulator is a :class:`Simulator` subclass that declares its routes; every request
goes through one of two wrappers:

* :meth:`Simulator.write` (API writes): logs the request, enforces the in-flight limit
  (``max_in_flight``) before anything else, reads the raw body (its length is the
  ``bytes`` that byte limits are measured on; a client that leaves before sending it
  all is logged unanswered, not a server error), holds the request ``config.latency``
  seconds so that concurrency is observable, then runs the handler. The handler checks
  auth and limits itself and then calls :meth:`Simulator.fault_gate`, the one place
  faults are injected.
* :meth:`Simulator.read` (API reads: catalog listings, item reads, job status): logged,
  never held, faulted at ``config.read_fault_rate``.

Faults (``config.fault_rate`` share of the write requests that pass auth and limit
checks): HTTP 500, 503, 429 with ``Retry-After``, or a dropped TCP connection (no HTTP
response at all), half of the drops *before* the request is processed and half
*after* it was applied (the client never hears that it succeeded). Reads get the same
kinds at ``config.read_fault_rate``, before they are answered. The draws come from
``random.Random(config.seed)`` per simulator (``seed + 1`` for reads), under a lock, so
a seed reproduces the same faults for the same request sequence. Faults are never
violations.

A test may also ask for proxy pages (:meth:`Simulator.serve_proxy_pages`): the next so
many requests are answered ``200 text/html`` without being processed. And
``config.queue_drop_rate`` of the items an API queues (:class:`Backlog`: VTEX Ads,
Bloomreach) are never applied when their turn comes (seeded draws, ``seed + 3``). Both
are inventions for tests (see docs/sandbox.md): no document describes either.

A *violation* is a request by which the client exceeded a documented limit (items,
bytes, requests in flight, rate window). It is answered the way the API answers it and
its log entry carries a ``violation`` text.

Every simulator also serves ``GET /_sandbox/log``, ``GET /_sandbox/items`` (query
parameters are the scope, as for :meth:`Simulator.items`) and ``POST /_sandbox/reset``;
they are not part of any API, need no auth and are not logged.

Stored state is guarded by a ``threading.RLock`` because tests read it from another
thread than the server's event loop.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

FAULT_KINDS = ("500", "503", "429", "drop")
PROXY_PAGE = (b"<!DOCTYPE html><html><head><title>Sign in to continue</title></head>"
              b"<body><h1>Sign in to continue</h1><p>This network requires you to sign in.</p></body></html>")


@dataclass
class SandboxConfig:
    """How the simulators behave.

    ``port``: first port (one per provider, in registry order); 0 = an ephemeral port each.
    ``time_scale``: multiplies every rate window (0.001 makes an hour's window 3.6 s).
    ``fault_rate``: share of write requests that get an injected fault.
    ``read_fault_rate``: share of read requests (listings, job status) that get one.
    ``seed``: seed of the fault draws.
    ``async_delay``: seconds before an asynchronous job (a batch or action that an API
    confirms later) finishes and is applied, and before queued work is done.
    ``latency``: seconds each write request is held while in flight.
    ``queue_drop_rate``: share of queued items never applied.
    """

    port: int = 8700
    time_scale: float = 1.0
    fault_rate: float = 0.0
    read_fault_rate: float = 0.0
    seed: int = 0
    async_delay: float = 0.2
    latency: float = 0.005
    queue_drop_rate: float = 0.0


# --------------------------------------------------------------------------- helpers


class JSONResponse(Response):
    """A JSON response rendered with orjson (``Content-Type: application/json``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


class InvalidJSON(ValueError):
    pass


def parse_json(raw: bytes) -> Any:
    """Strict JSON (RFC 8259: no NaN/Infinity, valid UTF-8, one value)."""
    if not raw.strip():
        raise InvalidJSON("empty body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(str(exc)) from None


# What a body that is not strict JSON parses to (see parse_body).
NOT_JSON = object()


def parse_body(raw: bytes) -> Any:
    """A request body as strict JSON, or :data:`NOT_JSON` (each API answers that its way)."""
    try:
        return parse_json(raw)
    except InvalidJSON:
        return NOT_JSON


def basic_auth(request: Request) -> tuple[str, str] | None:
    """The (user, password) of an ``Authorization: Basic`` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def headers_match(request: Request, expected: dict[str, str]) -> bool:
    """True when every expected header is present with exactly that value."""
    return all(request.headers.get(k) == v for k, v in expected.items())


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def retry_after_seconds(seconds: float) -> str:
    """A ``Retry-After`` value (whole seconds, rounded up so waiting it is enough)."""
    return str(max(1, math.ceil(seconds - 1e-9)))


class SlidingWindow:
    """A strict sliding window: at most ``limit`` accepted events in any ``window`` s.

    A deque of the accepted events' timestamps (not a leaky bucket): an event at time
    ``t`` is accepted only when fewer than ``limit`` accepted events lie in
    ``(t - window, t]``. Rejected events are not recorded.
    """

    def __init__(self, limit: int, window: float):
        self.limit = limit
        self.window = window
        self.times: deque[float] = deque()

    def acquire(self, now: float | None = None) -> float:
        """Record an event; 0.0 when accepted, else the seconds until one would be."""
        now = time.monotonic() if now is None else now
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return max(self.times[0] + self.window - now, 1e-6)
        self.times.append(now)
        return 0.0


class RequestLog:
    """The shared, thread-safe request log of all simulators."""

    def __init__(self) -> None:
        self._entries: list[dict] = []
        self._lock = threading.Lock()

    def append(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, provider: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._entries if provider in (None, e["provider"])]

    def clear(self, provider: str | None = None) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if provider not in (None, e["provider"])]


class FaultInjector:
    """Seeded, reproducible faults at ``rate``: :meth:`draw` picks one for a request,
    :meth:`strikes` only says whether one happens (a queued item lost)."""

    def __init__(self, rate: float, seed: int):
        self.rate = rate
        self.seed = seed
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._rng = random.Random(self.seed)

    def strikes(self) -> bool:
        """Whether a fault happens this time."""
        with self._lock:
            return self._strikes()

    def draw(self) -> str | None:
        """None, or one of :data:`FAULT_KINDS` (``500``, ``503``, ``429``, and ``drop``
        as ``drop_before`` or ``drop_after``)."""
        with self._lock:
            if not self._strikes():
                return None
            kind = self._rng.choice(FAULT_KINDS)
            if kind == "drop":
                kind = "drop_before" if self._rng.random() < 0.5 else "drop_after"
            return kind

    def _strikes(self) -> bool:
        return self.rate > 0 and self._rng.random() < self.rate


class Backlog:
    """Work an API acknowledged and does later, in order: each entry is done
    ``delay`` seconds after it was queued, when the simulator is next looked at (a
    request, ``items()``), under the simulator's lock. :meth:`dropped` draws, per item,
    whether queued work is lost (``queue_drop_rate``). Times are ``clock()``'s."""

    def __init__(self, delay: float, drop_rate: float, seed: int, clock: Callable[[], float] = time.monotonic):
        self.delay = delay
        self.clock = clock
        self.drops = FaultInjector(drop_rate, seed)
        self.entries: deque[tuple[float, Callable[[], None]]] = deque()

    def put(self, work: Callable[[], None]) -> None:
        self.entries.append((self.clock() + self.delay, work))

    def run_due(self) -> None:
        now = self.clock()
        while self.entries and self.entries[0][0] <= now:
            self.entries.popleft()[1]()

    def dropped(self) -> bool:
        return self.drops.strikes()  # invented: sandbox.queue-drop (docs/sandbox.md)

    def reset(self) -> None:
        self.entries.clear()
        self.drops.reset()


class DropConnection(Response):
    """Not a response: aborts the TCP connection so the client gets no answer."""

    def __init__(self) -> None:
        super().__init__(status_code=0)

    async def __call__(self, scope, receive, send) -> None:
        transport = scope.get("sandbox.transport")
        if transport is not None:
            transport.abort()
            # let the server see connection_lost so it won't try to answer
            for _ in range(3):
                await asyncio.sleep(0)


class _CaptureTransport:
    """ASGI middleware keeping the server's transport in the scope (for drops)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            owner = getattr(send, "__self__", None)
            scope["sandbox.transport"] = getattr(owner, "transport", None)
        await self.app(scope, receive, send)


class Exchange:
    """One request being handled: its raw body and its log entry."""

    def __init__(self, provider: str, request: Request):
        self.request = request
        self.body = b""
        self.entry: dict[str, Any] = {
            "provider": provider,
            "method": request.method,
            "path": request.url.path,
            "status": None,
            "items": None,
            "bytes": 0,
            "started": time.monotonic(),
            "finished": None,
            "fault": None,
            "violation": None,
        }

    @property
    def items(self) -> int | None:
        return self.entry["items"]

    @items.setter
    def items(self, value: int | None) -> None:
        self.entry["items"] = value

    def violation(self, text: str) -> None:
        self.entry["violation"] = text

    def over_limit(self, body: Any, limit: int, noun: str = "items") -> bool:
        """Counts the items of a list ``body`` in the log; whether they are more than
        ``limit`` (a violation, recorded here: the simulator answers it as its API does)."""
        if not isinstance(body, list):
            return False
        self.items = len(body)
        if len(body) <= limit:
            return False
        self.violation(f"{len(body)} {noun} > {limit}")
        return True


Handler = Callable[[Request, Exchange], Awaitable[Response]]


class Simulator:
    """Base of every simulator: pipeline, faults, sandbox endpoints, state lock."""

    name = "?"
    max_in_flight: int | None = None
    credentials: dict[str, str] = {}  # the auth a target needs to talk to this simulator
    # The clock of its rate windows, queued work and jobs (a test may move its own)
    now: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, config: SandboxConfig, log: RequestLog):
        self.config = config
        self.log = log
        self.lock = threading.RLock()
        self.faults = FaultInjector(config.fault_rate, config.seed)
        self.read_faults = FaultInjector(config.read_fault_rate, config.seed + 1)
        self.backlog = Backlog(config.async_delay, config.queue_drop_rate, config.seed + 3, lambda: self.now())
        self.in_flight = 0
        self.max_seen_in_flight = 0
        self.proxy_pages = {"write": 0, "read": 0}
        self.held_after: int | None = None  # writes taken before holding the next ones
        self.holding = 0  # writes held now
        self.resumed = threading.Event()
        self._reset_state()

    # -- to implement ---------------------------------------------------------------

    def _reset_state(self) -> None:
        """(Re)initialise the stored catalog, jobs and rate windows."""

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def items(self, **scope: Any) -> list[dict]:
        """The stored items as plain dicts."""
        raise NotImplementedError

    def stored(self, settings: Mapping[str, Any]) -> dict[tuple[str, str], dict]:
        """What a target with these ``settings`` has here, as ``{(record, key): payload}``
        in the shape the provider's mapping produces (blanked fields left out): what
        tests compare with what the manifests want."""
        raise NotImplementedError

    def error_response(self, status: int, message: str, headers: dict | None = None) -> Response:
        """A generic error in this API's shape (used for faults and unknown URLs)."""
        return json_response({"message": message}, status, headers)

    def in_flight_response(self) -> Response:
        return self.error_response(429, "Too many requests in flight")

    # -- public ---------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self._reset_state()
            self.faults.reset()
            self.read_faults.reset()
            self.proxy_pages = {"write": 0, "read": 0}
            self.resume_writes()
            self.backlog.reset()
            self.log.clear(self.name)

    def serve_proxy_pages(self, writes: int = 0, reads: int = 0) -> None:
        """Answer the next ``writes`` write and ``reads`` read requests with ``200
        text/html`` (:data:`PROXY_PAGE`) without processing them, as a proxy or a
        captive portal in the way would; logged with the fault ``proxy_page``."""
        with self.lock:
            self.proxy_pages["write"] += writes
            self.proxy_pages["read"] += reads

    def hold_writes_after(self, count: int) -> None:
        """Take ``count`` more write requests, then hold the next ones unprocessed until
        :meth:`resume_writes` (one whose client went away meanwhile is dropped, never
        processed): a test interrupts a client at a known point, however loaded the
        machine."""
        with self.lock:
            self.held_after = count
            self.resumed.clear()

    def resume_writes(self) -> None:
        self.held_after = None
        self.resumed.set()

    async def _held(self, request: Request) -> bool:
        """Wait while writes are held; True when the client went away meanwhile."""
        with self.lock:
            if self.held_after is None:
                return False
            if self.held_after > 0:
                self.held_after -= 1
                return False
        self.holding += 1
        try:
            while not self.resumed.is_set():
                if await request.is_disconnected():
                    return True
                await asyncio.sleep(0.01)
            return await request.is_disconnected()
        finally:
            self.holding -= 1

    def _proxy_page(self, ex: Exchange, kind: str) -> Response | None:
        with self.lock:
            if not self.proxy_pages[kind]:
                return None
            self.proxy_pages[kind] -= 1
        ex.entry["fault"] = "proxy_page"
        return Response(PROXY_PAGE, 200, media_type="text/html")  # invented: sandbox.proxy-page (docs/sandbox.md)

    def build_app(self) -> Starlette:
        routes = list(self.routes()) + [
            Route("/_sandbox/log", self._sandbox_log, methods=["GET"]),
            Route("/_sandbox/items", self._sandbox_items, methods=["GET"]),
            Route("/_sandbox/reset", self._sandbox_reset, methods=["POST"]),
        ]
        app = Starlette(
            routes=routes,
            exception_handlers={
                404: self._not_found,
                405: self._method_not_allowed,
            },
        )
        return _CaptureTransport(app)

    # -- pipeline -------------------------------------------------------------------

    def catch_up(self) -> None:
        """Do the queued work that is due (:class:`Backlog`)."""
        with self.lock:
            self.backlog.run_due()

    def finish_queued(self) -> None:
        """Wait until the work queued so far is due, and do it."""
        with self.lock:
            due = self.backlog.entries[-1][0] if self.backlog.entries else 0.0
        time.sleep(max(0.0, due - self.now()))
        self.catch_up()

    def write(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            self.catch_up()
            ex = Exchange(self.name, request)
            if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
                ex.violation(
                    f"{self.in_flight + 1} requests in flight > {self.max_in_flight}"
                )
                return self._finish(ex, self.in_flight_response())
            self.in_flight += 1
            self.max_seen_in_flight = max(self.max_seen_in_flight, self.in_flight)
            try:
                try:
                    ex.body = await request.body()
                except ClientDisconnect:  # nobody to answer: an unanswered request, not a traceback
                    return self._finish(ex, DropConnection())
                ex.entry["bytes"] = len(ex.body)
                if await self._held(request):
                    return self._finish(ex, DropConnection())
                if self.config.latency > 0:
                    await asyncio.sleep(self.config.latency)
                response = self._proxy_page(ex, "write") or await handler(request, ex)
                if ex.entry["fault"] == "drop_after":
                    response = DropConnection()
            finally:
                self.in_flight -= 1
            return self._finish(ex, response)

        return endpoint

    def read(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            self.catch_up()
            ex = Exchange(self.name, request)
            kind = self.read_faults.draw()
            if kind is not None:
                kind = "drop_before" if kind.startswith("drop") else kind  # a read has nothing to apply
                ex.entry["fault"] = kind
                return self._finish(ex, self._fault_response(kind))
            response = self._proxy_page(ex, "read") or await handler(request, ex)
            return self._finish(ex, response)

        return endpoint

    def fault_gate(self, ex: Exchange) -> Response | None:
        """Draw a fault for this write; a response to return now for pre-processing
        faults, None to go on (``drop_after`` is done by :meth:`write` afterwards)."""
        kind = self.faults.draw()
        if kind is None:
            return None
        ex.entry["fault"] = kind
        return None if kind == "drop_after" else self._fault_response(kind)

    def _fault_response(self, kind: str) -> Response:
        # invented: sandbox.fault-bodies (docs/sandbox.md)
        if kind == "drop_before":
            return DropConnection()
        if kind == "429":
            retry = str(max(0, round(1 * self.config.time_scale)))
            return self.error_response(429, "Too Many Requests", {"Retry-After": retry})
        if kind == "503":
            return self.error_response(503, "Service Unavailable")
        return self.error_response(500, "Internal Server Error")

    def _finish(self, ex: Exchange, response: Response) -> Response:
        ex.entry["finished"] = time.monotonic()
        ex.entry["status"] = None if isinstance(response, DropConnection) else response.status_code
        self.log.append(ex.entry)
        return response

    # -- sandbox endpoints ----------------------------------------------------------

    async def _sandbox_log(self, request: Request) -> Response:
        return json_response(self.log.entries(self.name))

    async def _sandbox_items(self, request: Request) -> Response:
        return json_response(self.items(**dict(request.query_params)))

    async def _sandbox_reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": self.name})

    # invented: sandbox.unknown-url (docs/sandbox.md)
    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return self.error_response(404, "Not Found")

    async def _method_not_allowed(self, request: Request, exc: Exception) -> Response:
        return self.error_response(405, "Method Not Allowed")
