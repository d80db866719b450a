"""Flask + Flask-SocketIO web app: the flight form, live results, REST API, history and archive.

Usage:
    python -m webapp            serve on FD_HOST:FD_WEBAPP_PORT (default 127.0.0.1:5001) under gunicorn's
                                gevent worker (webapp/server.py says why and what it adds)
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from flightdelay import logs
from flightdelay.config import Settings, load_settings

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

__all__ = ["create_app", "main", "socketio"]


def __getattr__(name: str):
    """``webapp.socketio`` on first use: importing the package stays light, so that
    ``python -m webapp`` can monkey-patch for gevent (webapp/__main__.py) before Flask,
    Socket.IO and their network libraries are imported."""
    if name == "socketio":
        from webapp.sockets import socketio

        return socketio
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_app(test_config: dict | None = None, *, settings: Settings | None = None, bridge=None,
               stores=None, start_consumer: bool = True, async_mode: str = "threading") -> Flask:
    """Build the app. Tests pass a fake ``bridge`` (no Kafka) and ``start_consumer=False``;
    the server (``main``) passes ``async_mode="gevent"``."""
    from flask import Flask
    from flask_wtf.csrf import CSRFProtect

    from flightdelay.serving import ServedReference
    from webapp import api, classic, events, frames, outcomes, pages, parts, security
    from webapp.bridge import KafkaBridge
    from webapp.limits import SubmissionLimit
    from webapp.predictions import start_response_consumer
    from webapp.results import ResultStore
    from webapp.server import BodyDeadline
    from webapp.sockets import socketio
    from webapp.stores import Stores

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=(test_config or {}).get("SECRET_KEY") or security.secret_key(settings),
        RESULT_TIMEOUT_S=settings.webapp_result_timeout_s,
        PUBLISH_TIMEOUT_S=settings.webapp_publish_timeout_s,
        RATELIMIT_DEFAULT=settings.webapp_rate_limit,
        SYNC_WAIT_MAX_S=settings.webapp_sync_wait_max_s,
        MAX_CONTENT_LENGTH=settings.webapp_max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.webapp_max_request_bytes,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config:
        app.config.update(test_config)

    parts.install(app, parts.Parts(
        settings=settings,
        served_reference=ServedReference(settings),  # the model the job serves: the champion's, following the alias
        results=ResultStore(),
        bridge=bridge or KafkaBridge(settings),
        stores=stores or Stores(settings),
        limit=SubmissionLimit(app.config["RATELIMIT_DEFAULT"])))

    csrf = CSRFProtect(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(classic.bp)
    # Stateless APIs (no cookie, no session authority): see webapp/classic.py. The page's own
    # form goes over Socket.IO and keeps its token (webapp/events.py).
    csrf.exempt(api.bp)
    csrf.exempt(classic.bp)
    outcomes.install(app, csrf)  # POST /api/v1/outcomes and the live sections of the pages
    security.install(app)
    # async_handlers=False: a client's events run in its websocket's own reader, one after the
    # other, instead of in a new thread per event (bench.webapp, 50 browsers on 2 cores: p50
    # 138-159 -> 96-114 ms); a browser submits one form at a time, so nothing waits behind it.
    # Frames: webapp/frames.py decodes them (malformed ones become an error ack); the transport
    # takes messages up to frames.TRANSPORT_FACTOR x the app's limit, so one a little too large
    # is answered, not cut off; past that the websocket is closed with code 1009.
    socketio.init_app(app, async_mode=async_mode, async_handlers=False,
                      cors_allowed_origins=security.socket_origins(settings),
                      max_http_buffer_size=frames.transport_limit(settings.webapp_max_request_bytes),
                      serializer=frames.packet_class(settings.webapp_max_request_bytes), json=frames.strict_json,
                      logger=logging.getLogger("webapp.socketio"), engineio_logger=logging.getLogger("webapp.engineio"))
    events.register(socketio)
    for name in ("webapp.socketio", "webapp.engineio"):  # their per-packet INFO lines would flood the log
        logging.getLogger(name).setLevel(logging.WARNING)
    # Outermost: bodies are read whole, within their deadline, before Engine.IO or Flask see them.
    app.wsgi_app = BodyDeadline(app.wsgi_app, frames.transport_limit(settings.webapp_max_request_bytes),
                                settings.webapp_body_timeout_s)
    if start_consumer:
        start_response_consumer(app)
    return app


def main() -> int:
    """Serve under gunicorn's gevent worker, one process (Socket.IO rooms and the Kafka consumer
    live in it), with the connection caps and deadlines of webapp/server.py. The app is built in
    the worker, after the fork. ``python -m webapp`` has monkey-patched the standard library for
    gevent before anything else was imported (webapp/__main__.py)."""
    from gunicorn.app.base import BaseApplication

    from webapp import server

    logs.configure()
    # The log format (flightdelay.logs.FORMAT) names no thread or process: each record skips
    # looking them up (a thread is a greenlet here; ~5 % of the loop at 50 browsers, py-spy).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # A page asks MLflow once, briefly: its client's default, 7 retries with back-off, held the
    # model page for minutes when MLflow was down (the page then says MLflow is not answering).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    settings = load_settings()
    open_files = server.raise_open_file_limit(settings.webapp_max_connections + server.FILES_KEPT_FREE)
    capacity = server.connection_capacity(settings, open_files)

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{settings.host}:{settings.webapp_port}", "workers": 1,
                               "worker_class": server.worker_class(settings, capacity),
                               # gevent's pool: room above the cap, so the excess is accepted and refused
                               # with a reason instead of waiting unanswered in the listen queue
                               "worker_connections": capacity + 100, "backlog": 2048,
                               "timeout": 60, "graceful_timeout": 10, "keepalive": 5,
                               "loglevel": "warning", "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self):  # in the worker, after the fork
            app = create_app(settings=settings, async_mode="gevent")
            log.info("web app on http://%s:%s (gunicorn, gevent worker; at most %d connections, %d per client; "
                     "%d open files)", settings.host, settings.webapp_port, capacity,
                     settings.webapp_max_connections_per_client, open_files)
            return app

    Server().run()
    return 0
