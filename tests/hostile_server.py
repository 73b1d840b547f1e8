"""A hostile HTTP server for the tests: on 127.0.0.1, a free port, plain asyncio
streams, so that every byte of an answer, and the time between two bytes, is the
test's to choose (an HTTP framework would answer properly).

Every request gets the answer of the server's ``mode`` (:data:`MODES`), except, with
``accept_writes``, a ``POST``, which gets Voucherify's documented ``202
{"async_action_id": "aa_1"}``: an apply leaves a job pending, and ``status`` polls it
into the hostile answer. With ``tls``, connections are upgraded to TLS with the
self-signed certificate of ``hostile_server.pem`` (which no client trusts).
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
from pathlib import Path

MODES = ("never_answer", "slowloris_headers", "slow_body", "reset_mid_body", "huge_retry_after", "huge_body",
         "html_200", "redirect")
HUGE = 2 * 1024**3  # bytes of the huge body: more than any test's client may read
CHUNK = 64 * 1024
CERTIFICATE = Path(__file__).with_name("hostile_server.pem")


class HostileServer:
    """``with HostileServer(mode) as server:`` serves ``server.url`` until the block
    ends. ``drip`` is the pause between two bytes of a slow answer; ``location`` the
    ``Location`` of a redirect. What it saw: ``connections``, ``requests`` (method and
    path) and ``body_bytes`` (of the bodies it sent)."""

    def __init__(self, mode: str, *, accept_writes: bool = False, tls: bool = False, drip: float = 0.05,
                 location: str = "http://127.0.0.1:9/elsewhere"):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self.accept_writes = accept_writes
        self.tls = tls
        self.drip = drip
        self.location = location
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.body_bytes = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"hostile-{mode}", daemon=True)
        self._handlers: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    def __enter__(self) -> "HostileServer":
        self._thread.start()
        start = asyncio.start_server(self._connection, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _stop(self) -> None:
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    # -- one connection ---------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        self.connections += 1
        try:
            if self.tls:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(CERTIFICATE)
                await writer.start_tls(context)
            while await self._request(reader, writer):
                pass
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client hung up (as it should), refused our certificate, or the server stops
        finally:
            self._handlers.discard(task)
            writer.transport.abort()

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; whether the connection may serve another."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        length = next((int(v) for k, v in headers.items() if k.strip().lower() == "content-length"), 0)
        await reader.readexactly(length)
        self.requests.append((method, path))
        if self.accept_writes and method == "POST":
            await self._answer(writer, "202 Accepted", b'{"async_action_id": "aa_1"}')
            return True
        return await getattr(self, f"_{self.mode}")(writer)

    async def _answer(self, writer, status: str, body: bytes, content_type: str = "application/json",
                      extra: str = "") -> None:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                     f"{extra}\r\n".encode() + body)
        self.body_bytes += len(body)
        await writer.drain()

    async def _trickle(self, writer, data: bytes, forever: bytes) -> None:
        writer.write(data)
        while True:
            await writer.drain()
            await asyncio.sleep(self.drip)
            writer.write(forever)

    # -- the modes -------------------------------------------------------------------------
    async def _never_answer(self, writer) -> bool:
        await asyncio.Event().wait()
        return False

    async def _slowloris_headers(self, writer) -> bool:
        await self._trickle(writer, b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a")
        return False

    async def _slow_body(self, writer) -> bool:
        await self._trickle(writer, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    b"Content-Length: 10000\r\n\r\n[", b" ")
        return False

    async def _reset_mid_body(self, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                     b'{"async_action_id": "aa_')
        await writer.drain()
        # SO_LINGER 0: closing sends a TCP reset, not an orderly end
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False

    async def _huge_retry_after(self, writer) -> bool:
        await self._answer(writer, "429 Too Many Requests", b'{"message": "slow down"}',
                           extra="Retry-After: 999999999\r\n")
        return True

    async def _huge_body(self, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
        while self.body_bytes < HUGE:  # until the client hangs up, which it must do long before
            writer.write(chunk)
            self.body_bytes += CHUNK
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _html_200(self, writer) -> bool:
        await self._answer(writer, "200 OK", b"<html><body><h1>Please sign in</h1></body></html>", "text/html")
        return True

    async def _redirect(self, writer) -> bool:
        await self._answer(writer, "302 Found", b"", "text/html", extra=f"Location: {self.location}\r\n")
        return True
