"""One rate limit per client address over every way of submitting a prediction: the REST API,
the classic routes and the page's Socket.IO ``predict`` event count against the same moving
window (FD_WEBAPP_RATE_LIMIT), so a client cannot add up the limits of several paths.

In-process memory: the web app runs as one process (Socket.IO rooms live in it too).
"""
from __future__ import annotations

import functools
import math
import time

from flask import current_app, jsonify, request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

SCOPE = "submissions"


class SubmissionLimit:
    def __init__(self, rate: str):
        self.item = parse(rate)
        self.rate = rate
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Count one submission of ``client``; None if allowed, else seconds until it may retry."""
        if self._limiter.hit(self.item, SCOPE, client):
            return None
        reset = self._limiter.get_window_stats(self.item, SCOPE, client).reset_time
        return max(1, math.ceil(reset - time.time()))


def client_address() -> str:
    return request.remote_addr or "unknown"


def check_submission() -> int | None:
    """None if the current client may submit now, else the seconds to wait."""
    return current_app.extensions["fd.limit"].retry_after(client_address())


def submission_limit(view):
    """Answer 429 with Retry-After once the client is over the shared limit."""
    @functools.wraps(view)
    def limited(*args, **kwargs):
        wait = check_submission()
        if wait is not None:
            response = jsonify(error=f"rate limit exceeded ({current_app.extensions['fd.limit'].rate} per client); "
                                     f"retry in {wait} s")
            response.status_code = 429
            response.headers["Retry-After"] = str(wait)
            return response
        return view(*args, **kwargs)
    return limited
