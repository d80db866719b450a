"""Rate limiting (per client address, in-process memory storage).

Every way of submitting a prediction counts against ONE limit per client
(FD_WEBAPP_RATE_LIMIT): the REST API and the classic routes share the scope "submissions",
so a client cannot double its rate by alternating routes.
"""
from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address)

SUBMISSIONS = "submissions"


def _submission_rate() -> str:
    return current_app.config["RATELIMIT_DEFAULT"]


submission_limit = limiter.shared_limit(_submission_rate, scope=SUBMISSIONS)
