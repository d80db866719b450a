"""Flask + Flask-SocketIO web app: the flight form, live results, REST API, history and archive.

Usage:
    python -m webapp            serve on FD_HOST:FD_WEBAPP_PORT (default 127.0.0.1:5001)
"""
from __future__ import annotations

import logging
import os

from flask import Flask
from flask_socketio import SocketIO

from flightdelay.config import Settings, load_settings

log = logging.getLogger(__name__)

socketio = SocketIO()


def create_app(test_config: dict | None = None, *, settings: Settings | None = None, bridge=None,
               stores=None, start_consumer: bool = True) -> Flask:
    """Build the app. Tests pass a fake ``bridge`` (no Kafka) and ``start_consumer=False``."""
    from flask_wtf.csrf import CSRFProtect

    from flightdelay.reference import load_reference
    from webapp import api, events, pages
    from webapp.bridge import KafkaBridge
    from webapp.limits import limiter
    from webapp.predictions import start_response_consumer
    from webapp.results import ResultStore
    from webapp.stores import Stores

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.webapp_secret_key or os.urandom(32).hex(),
        RESULT_TIMEOUT_S=settings.webapp_result_timeout_s,
        RATELIMIT_DEFAULT=settings.webapp_rate_limit,
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_HEADERS_ENABLED=True,
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config:
        app.config.update(test_config)

    app.extensions["fd.settings"] = settings
    app.extensions["fd.reference"] = load_reference()
    app.extensions["fd.results"] = ResultStore()
    app.extensions["fd.bridge"] = bridge or KafkaBridge(settings)
    app.extensions["fd.stores"] = stores or Stores(settings)

    csrf = CSRFProtect(app)
    limiter.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # the API checks the token itself, for form posts only (api._accept)
    socketio.init_app(app, async_mode="threading", cors_allowed_origins=[])
    events.register(socketio)
    if start_consumer:
        start_response_consumer(app)
    return app


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    app = create_app(settings=settings)
    log.info("web app on http://%s:%s", settings.host, settings.webapp_port)
    socketio.run(app, host=settings.host, port=settings.webapp_port, allow_unsafe_werkzeug=True,
                 use_reloader=False, log_output=False)
    return 0
