"""What the web app does for every response and connection to be safe to expose: security
headers, the session cookie, the Socket.IO origin check, request size limits, error bodies
that never echo large input, and a secret key that is never in the repository or the logs."""
from __future__ import annotations

import logging
import os
import secrets

from flask import Flask, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from flightdelay.config import Settings

log = logging.getLogger(__name__)

# Scripts and styles come from the app itself only; the page's data travels in a
# <script type="application/json"> block, which is not executed.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def secret_key(s: Settings) -> str:
    """FD_WEBAPP_SECRET_KEY if set; else a key generated at the first start into the state
    directory (mode 0600), so CSRF tokens survive a restart. Never logged."""
    if s.webapp_secret_key:
        return s.webapp_secret_key
    path = s.state / "webapp" / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key)
    log.info("generated the web app's secret key into %s", path)
    return key


def socket_origins(s: Settings) -> list[str] | None:
    """Origins allowed to open a Socket.IO connection: the app's own (None makes the server
    compare Origin with the Host it was reached at) plus FD_WEBAPP_ALLOWED_ORIGINS."""
    extra = [o.strip().rstrip("/") for o in s.webapp_allowed_origins.split(",") if o.strip()]
    if not extra:
        return None
    return [f"http://{s.host}:{s.webapp_port}", f"http://localhost:{s.webapp_port}", *extra]


def _set_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _json_error(exc: HTTPException):
    """JSON for API clients (and the classic routes), the plain page otherwise."""
    if request.path.startswith(("/api/", "/flights/")) or request.is_json:
        response = jsonify(error=exc.description if exc.code != 413 else
                           f"request body larger than {request.max_content_length} bytes")
        response.status_code = exc.code
        return response
    return exc


def _unexpected(exc: Exception):
    log.exception("unexpected error on %s %s", request.method, request.path)
    response = jsonify(error="internal error; it has been logged")
    response.status_code = 500
    return response


OPENED_SESSION = "fd.opened_session"


class ConnectionSessions(SecureCookieSessionInterface):
    """The signed-cookie session, opened once per WSGI environ. Flask opens the session when a
    request context is pushed, and Flask-SocketIO pushes one for every Socket.IO event on the
    environ its connection started with, then replaces that session with its own copy made at
    the first event: verifying the same cookie again for each event was ~12 % of the web app's
    loop with 50 browsers submitting back to back (py-spy, docs/decisions.md). An HTTP request
    has an environ of its own, so it still opens its cookie as before."""

    def open_session(self, app, request):
        opened = request.environ.get(OPENED_SESSION)
        if opened is None:
            opened = super().open_session(app, request)
            request.environ[OPENED_SESSION] = opened
        return opened


def install(app: Flask) -> None:
    app.session_interface = ConnectionSessions()
    app.after_request(_set_headers)
    app.register_error_handler(HTTPException, _json_error)
    app.register_error_handler(Exception, _unexpected)
