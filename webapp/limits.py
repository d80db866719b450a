"""One rate limit per client address over every way of submitting a prediction: the REST API,
the classic routes and the page's Socket.IO ``predict`` event count against the same moving
window (FD_WEBAPP_RATE_LIMIT), so a client cannot add up the limits of several paths.

In-process memory: the web app runs as one process (Socket.IO rooms live in it too). The app
holds one ``SubmissionLimit`` (``webapp.parts.limit()``); the request paths ask it through
``webapp.predictions.check_submission`` and ``submission_limit``.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque

from flask import request
from limits import parse

SWEEP_EVERY = 1000  # hits between two sweeps of clients whose window has emptied


class SubmissionLimit:
    """A moving window per client: at most ``amount`` submissions in any ``window_s`` seconds
    (FD_WEBAPP_RATE_LIMIT, in the ``limits`` package's notation, e.g. "600 per minute").

    Kept here rather than in ``limits``' MemoryStorage, whose moving window started a timer
    thread every 10 ms to expire entries: under the gevent server a greenlet each time, ~12 %
    of the web app's loop with 50 browsers submitting back to back (py-spy, docs/decisions.md).
    Here a client's hits are a deque of times, pruned when that client submits; clients whose
    window has emptied are forgotten every SWEEP_EVERY hits."""

    def __init__(self, rate: str):
        item = parse(rate)
        self.rate = rate
        self.amount, self.window_s = item.amount, float(item.get_expiry())
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()  # the threaded test server; a greenlet lock under gevent
        self._since_sweep = 0

    def retry_after(self, client: str) -> int | None:
        """Count one submission of ``client``; None if allowed, else seconds until it may retry."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.amount:
                return max(1, math.ceil(hits[0] + self.window_s - now))
            hits.append(now)
            self._since_sweep += 1
            if self._since_sweep >= SWEEP_EVERY:
                self._sweep(now)
            return None

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        for client in [c for c, hits in self._hits.items() if not hits or hits[-1] <= now - self.window_s]:
            del self._hits[client]


def client_address() -> str:
    return request.remote_addr or "unknown"
