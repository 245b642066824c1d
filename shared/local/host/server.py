"""The HTTP/1.1 server: stdlib ThreadingHTTPServer, keep-alive, one thread per connection.

This module owns the wire: reading the request (Content-Length or chunked body), framing the
reply (always Content-Length, none on 204/304, no body for HEAD) and running the server in a
background thread. What each path means is `endpoints.Endpoints`' business.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from shared.local.host.endpoints import Endpoints
from shared.local.host.messages import Reply, Request, problem

logger = logging.getLogger("shared.local.host")

# The Functions host refuses request bodies over 100 MB.
MAX_BODY_BYTES = 100 * 1024 * 1024


class _RequestRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    server_version = "LocalFunctionsHost"
    timeout = 120  # seconds an idle keep-alive connection may hold its thread

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle on, a small body waits for the client's
        # delayed ACK (~40 ms per reply). Kestrel, behind `func start` and in Azure, disables it too.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        server = cast("LocalServer", self.server)
        try:
            body = self._read_body()
        except _RequestRefused as refused:
            self.close_connection = True  # the unread body would corrupt the next request
            self._write(problem(refused.status, str(refused)))
            return
        if server.stopping.is_set():
            self.close_connection = True
            self._write(problem(503, "The host is stopping."))
            return
        host = self.headers.get("Host") or "{}:{}".format(*server.server_address[:2])
        request = Request(self.command, self.path, tuple(self.headers.items()), body, f"http://{host}")
        try:
            reply = server.endpoints.handle(request)
        except Exception:
            # Function failures are handled in Endpoints; reaching here is a bug in the host itself.
            logger.exception("The local host failed to handle %s %s", self.command, request.path)
            reply = problem(500, "The local host failed to handle the request.")
        self._write(reply)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle  # noqa: N815 - stdlib names

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise _RequestRefused(400, "Content-Length is not a number.")
        if int(length) > MAX_BODY_BYTES:
            raise _RequestRefused(413, "The request body is larger than 100 MB.")
        return self.rfile.read(int(length))

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError as error:
                raise _RequestRefused(400, "Malformed chunked body.") from error
            if size == 0:
                while self.rfile.readline(8192).strip():  # trailers, up to the blank line
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise _RequestRefused(413, "The request body is larger than 100 MB.")
            body += self.rfile.read(size)
            self.rfile.readline(8)  # the CRLF after each chunk

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        bodyless = reply.status in {204, 304} or reply.status < 200
        if not bodyless:
            self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not bodyless and self.command != "HEAD":
            self.wfile.write(reply.body)

    def version_string(self) -> str:
        return self.server_version  # no need to advertise the Python version

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


class LocalServer(ThreadingHTTPServer):
    """Serves `endpoints` on (host, port); port 0 picks a free one (see `port`)."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections under a benchmark's load

    def __init__(self, host: str, port: int, endpoints: Endpoints) -> None:
        super().__init__((host, port), _Handler)
        self.endpoints = endpoints
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.name = f"local-host-{self.port}"
        self._thread.start()

    def stop(self) -> None:
        # Open keep-alive connections keep their threads; `stopping` makes them answer 503 and close.
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        # Clients dropping connections is routine; anything else is a host bug worth seeing.
        dropped = isinstance(sys.exc_info()[1], ConnectionError | TimeoutError)
        logger.log(
            logging.DEBUG if dropped else logging.ERROR, "Connection from %s failed", client_address, exc_info=True
        )
