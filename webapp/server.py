"""The web app's server: gunicorn, one process, its gevent worker (Flask-SocketIO's deployment
docs: gevent, or eventlet, or threading with a thread per open websocket).

Why gevent (docs/decisions.md has the measurements): an idle Socket.IO websocket costs a few
greenlets and one open file instead of a thread, so one process holds 10,000 of them while
other users' pages and predictions keep their latency; the threaded server stopped answering
everybody at 128 idle websockets (FD_WEBAPP_THREADS). Socket.IO rooms and the Kafka consumer
stay in the one process. Kafka's client blocks in C (poll, flush), which gevent cannot
interrupt, so the bridge runs in real OS threads (webapp/bridge.py).

What the worker adds to gunicorn's gevent worker, against clients that hold connections:
- a cap on the connections one client address holds at once (FD_WEBAPP_MAX_CONNECTIONS_PER_CLIENT)
  and on all of them (FD_WEBAPP_MAX_CONNECTIONS): the excess gets a 429 (503 when the server is
  full) with a JSON body saying why, and is closed;
- a deadline for a request's headers (FD_WEBAPP_HEADER_TIMEOUT_S), the first on a connection or
  the next on a kept-alive one: a client sending them a byte a second is closed;
- a deadline for a request's body (FD_WEBAPP_BODY_TIMEOUT_S, ``BodyDeadline`` below, installed by
  create_app): the body is read whole before the app sees it, or the client gets a 408.
"""
from __future__ import annotations

import io
import json
import logging
import resource
import socket
import time
from collections import Counter

from flightdelay.config import Settings

log = logging.getLogger(__name__)

FILES_KEPT_FREE = 1000  # open files the process keeps for itself beyond its connections (Kafka, stores, logs)


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft limit of open files towards ``wanted`` (at most its hard
    limit: only a privileged process may raise that); return the limit in force. Each
    connection is one open file; Debian's default soft limit, 1,024, would refuse the 1,025th."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def connection_capacity(s: Settings, open_files: int) -> int:
    """Connections the process may hold: the setting, within what its open files allow."""
    return max(1, min(s.webapp_max_connections, open_files - FILES_KEPT_FREE))


class Admission:
    """Open connections per client address, and in all (one greenlet loop: no lock needed)."""

    def __init__(self, per_client: int, total: int):
        self.per_client, self.total = per_client, total
        self.open: Counter = Counter()
        self.count = 0

    def enter(self, address: str) -> str | None:
        """Count a new connection of ``address``; None if admitted, else why not (nothing counted)."""
        if self.count >= self.total:
            return "full"
        if self.open[address] >= self.per_client:
            return "client"
        self.open[address] += 1
        self.count += 1
        return None

    def leave(self, address: str) -> None:
        self.count -= 1
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


def refusal(reason: str, admission: Admission, address: str) -> bytes:
    if reason == "client":
        status = "429 Too Many Requests"
        message = (f"too many open connections from {address}: at most {admission.per_client} at once "
                   "(FD_WEBAPP_MAX_CONNECTIONS_PER_CLIENT); close some and retry")
    else:
        status = "503 Service Unavailable"
        message = f"the server holds its maximum of {admission.total} connections; retry in a moment"
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: 5\r\nConnection: close\r\n\r\n").encode() + body


def refuse(client: socket.socket, answer: bytes, linger_s: float = 1.0) -> None:
    """Answer and close without a reset: send, shut our side, read what the client still sends
    (its request) for up to ``linger_s``, close. Closing with unread input would send a TCP
    reset, which can destroy the answer before the client has read it."""
    try:
        client.settimeout(linger_s)
        client.sendall(answer)
        client.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + linger_s
        while time.monotonic() < deadline and client.recv(65536):
            pass
    except OSError:
        pass
    finally:
        client.close()


def worker_class(s: Settings, capacity: int):
    """gunicorn's gevent worker with the admission and the header deadline of ``s``. Imported
    here, not at the top: gunicorn's gevent module imports gevent, which the unit tests of the
    app (threading mode) do not need."""
    import gevent
    from gunicorn.workers.ggevent import GeventWorker

    class Worker(GeventWorker):
        admission = Admission(s.webapp_max_connections_per_client, capacity)
        refused: Counter = Counter()
        last_summary = time.monotonic()

        def handle(self, listener, client, addr):
            if not self.alive:  # stopping: a page reconnecting now would only be dropped again
                client.close()
                return
            address = addr[0] if isinstance(addr, tuple) and addr else "unknown"
            why = self.admission.enter(address)
            if why is not None:
                self.note_refusal(address, why)
                refuse(client, refusal(why, self.admission, address))
                return
            try:
                super().handle(listener, client, addr)
            finally:
                self.admission.leave(address)

        def note_refusal(self, address: str, why: str) -> None:
            """One log line per client and minute, not one per refused connection."""
            key = (address, why)
            if not self.refused[key]:
                log.warning("refused a connection from %s: %s", address,
                            "per-client cap" if why == "client" else "server full")
            self.refused[key] += 1
            if time.monotonic() - self.last_summary >= 60:
                for (who, kind), n in self.refused.items():
                    if n > 1:
                        log.warning("refused %d connections from %s in the last minute (%s)", n, who,
                                    "per-client cap" if kind == "client" else "server full")
                self.refused.clear()
                Worker.last_summary = time.monotonic()

        def handle_exit(self, sig, frame):
            # On SIGTERM (a restart, `make down`) close every Socket.IO connection at once: its
            # page reconnects (to the next web app) and asks for its pending answer again, instead
            # of hanging on a socket gunicorn would hold open until its graceful timeout.
            gevent.spawn(close_socketio_connections)
            super().handle_exit(sig, frame)

        def timeout_ctx(self):
            # gunicorn wraps the read of each request's line and headers in this: a client that
            # has not sent them within the deadline is closed (the first request or the next one
            # on a kept-alive connection; also the idle time allowed between kept-alive requests).
            return gevent.Timeout(s.webapp_header_timeout_s, False)

    return Worker


def close_socketio_connections() -> None:
    """Close the transport of every Engine.IO connection of the process, without a word: every
    client then sees a lost connection and reconnects. A Socket.IO disconnect would keep a browser
    from reconnecting, and so would Engine.IO's CLOSE packet for python-socketio's client (it
    takes the packet as the server ending the session for good: the fault suite's clients stayed
    disconnected after a restart)."""
    from webapp.sockets import socketio

    if socketio.server is not None:
        sockets = list(socketio.server.eio.sockets.values())
        for sock in sockets:
            sock.close(wait=False, abort=True)  # the writer closes the websocket, no CLOSE packet
        log.info("closed %d Socket.IO connections before stopping", len(sockets))


class BodyTimeout(Exception):
    pass


class BodyDeadline:
    """WSGI middleware: read a request's body whole, within FD_WEBAPP_BODY_TIMEOUT_S and a size
    limit, before the app runs. A client that sends its body slowly gets a 408 and is closed; one
    announcing or sending more than ``limit`` bytes a 413. The app (and Engine.IO's long-polling
    POSTs) then reads from memory, and a handler that answers without reading the body (e.g. the
    rate limit's 429) leaves nothing unread on a kept-alive connection."""

    def __init__(self, app, limit: int, timeout_s: float):
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            declared = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if not chunked and declared <= 0:
            return self.app(environ, start_response)
        if declared > self.limit:
            return self.answer(start_response, "413 Content Too Large",
                               f"request body larger than {self.limit} bytes")
        try:
            body = self.read(environ["wsgi.input"], declared if not chunked else None)
        except BodyTimeout:
            log.warning("closed a client sending its request body too slowly (%s %s from %s)",
                        environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")[:80], environ.get("REMOTE_ADDR"))
            return self.answer(start_response, "408 Request Timeout",
                               f"the request body did not arrive within {self.timeout_s:g} s")
        if body is None:
            return self.answer(start_response, "413 Content Too Large",
                               f"request body larger than {self.limit} bytes")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = True
        return self.app(environ, start_response)

    def read(self, stream, length: int | None) -> bytes | None:
        """The body (``length`` bytes, or up to its end when chunked); None when over the limit."""
        wanted = (length if length is not None else self.limit + 1)
        chunks, size = [], 0
        with deadline(self.timeout_s):
            while size < wanted:
                chunk = stream.read(min(65536, wanted - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        return None if size > self.limit else b"".join(chunks)

    @staticmethod
    def answer(start_response, status: str, message: str):
        body = json.dumps({"error": message}).encode()
        # gunicorn ignores an app's Connection header: what is left of the body is read (and the
        # connection closed) under the header deadline of the next request.
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def deadline(seconds: float):
    """A deadline on everything inside the block: gevent's Timeout under the gevent server
    (it interrupts a read however slowly the bytes come); none in the threading mode of the
    unit tests and the development server, whose inputs are in memory."""
    try:
        from gevent import Timeout
        from gevent.monkey import is_module_patched
    except ImportError:  # pragma: no cover - gevent is a requirement; the test server works without
        return _NoDeadline()
    if not is_module_patched("socket"):
        return _NoDeadline()
    return Timeout(seconds, BodyTimeout)


class _NoDeadline:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
