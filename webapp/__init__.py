"""Flask + Flask-SocketIO web app: the flight form, live results, REST API, history and archive.

Usage:
    python -m webapp            serve on FD_HOST:FD_WEBAPP_PORT (default 127.0.0.1:5001) under gunicorn
"""
from __future__ import annotations

import logging

from flask import Flask

from flightdelay import logs
from flightdelay.config import Settings, load_settings
from webapp.sockets import socketio

log = logging.getLogger(__name__)

__all__ = ["create_app", "main", "socketio"]


def create_app(test_config: dict | None = None, *, settings: Settings | None = None, bridge=None,
               stores=None, start_consumer: bool = True) -> Flask:
    """Build the app. Tests pass a fake ``bridge`` (no Kafka) and ``start_consumer=False``."""
    from flask_wtf.csrf import CSRFProtect

    from flightdelay.serving import ServedReference
    from webapp import api, classic, events, pages, parts, security
    from webapp.bridge import KafkaBridge
    from webapp.limits import SubmissionLimit
    from webapp.predictions import start_response_consumer
    from webapp.results import ResultStore
    from webapp.stores import Stores

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=(test_config or {}).get("SECRET_KEY") or security.secret_key(settings),
        RESULT_TIMEOUT_S=settings.webapp_result_timeout_s,
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
    security.install(app)
    # async_handlers=False: a client's events run in its websocket's own reader thread, one after
    # the other, instead of in a new thread per event (bench.webapp, 50 browsers on 2 cores: p50
    # 138-159 -> 96-114 ms); a browser submits one form at a time, so nothing waits behind it.
    socketio.init_app(app, async_mode="threading", async_handlers=False,
                      cors_allowed_origins=security.socket_origins(settings),
                      max_http_buffer_size=settings.webapp_max_request_bytes)
    events.register(socketio)
    if start_consumer:
        start_response_consumer(app)
    return app


def main() -> int:
    """Serve under gunicorn, as Flask-SocketIO's deployment docs describe for the threading
    mode: one process (Socket.IO rooms and the Kafka consumer live in it), many threads (each
    open websocket holds one). The app is built in the worker, after the fork."""
    from gunicorn.app.base import BaseApplication

    logs.configure()
    settings = load_settings()

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{settings.host}:{settings.webapp_port}", "workers": 1,
                               "worker_class": "gthread", "threads": settings.webapp_threads,
                               "timeout": 60, "graceful_timeout": 10, "keepalive": 5,
                               "loglevel": "warning", "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self):  # in the worker, after the fork
            logs.write_from_one_thread()
            app = create_app(settings=settings)
            log.info("web app on http://%s:%s (gunicorn, %d threads)", settings.host, settings.webapp_port,
                     settings.webapp_threads)
            return app

    Server().run()
    return 0
