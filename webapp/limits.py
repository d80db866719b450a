"""One rate limit per client address over every way of submitting a prediction: the REST API,
the classic routes and the page's Socket.IO ``predict`` event count against the same moving
window (FD_WEBAPP_RATE_LIMIT), so a client cannot add up the limits of several paths.

In-process memory: the web app runs as one process (Socket.IO rooms live in it too). The app
holds one ``SubmissionLimit`` (``webapp.parts.limit()``); the request paths ask it through
``webapp.predictions.check_submission`` and ``submission_limit``.
"""
from __future__ import annotations

import math
import time

from flask import request
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
