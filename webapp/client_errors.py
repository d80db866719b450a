"""Errors a client causes (malformed frames, refused submissions) in the log: one line per
client and kind of error, then a count instead of a line each, so a client sending garbage in
a loop cannot flood the log. The first of each kind is logged when it happens; the ones after it
within ``window_s`` are counted and summed up in one line by the first one after the window."""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class ClientErrors:
    def __init__(self, window_s: float = 60.0, clock=time.monotonic):
        self.window_s, self.clock = window_s, clock
        self._lock = threading.Lock()
        self._since: dict[tuple[str, str], tuple[float, int]] = {}  # (client, kind) -> (first logged at, unlogged)

    def note(self, client: str, kind: str, detail: str) -> bool:
        """Count one error of ``client``; log it if it is the first of its kind in the window
        (with the count of the previous window's others). Returns whether a line was written."""
        key, now = (client, kind), self.clock()
        with self._lock:
            since, unlogged = self._since.get(key, (None, 0))
            if since is not None and now - since < self.window_s:
                self._since[key] = (since, unlogged + 1)
                return False
            self._since[key] = (now, 0)
            if len(self._since) > 10_000:  # forget quiet clients
                self._since = {k: v for k, v in self._since.items() if now - v[0] < self.window_s}
        more = f" ({unlogged} more like it in the {self.window_s:g} s before, not logged one by one)" if unlogged else ""
        log.warning("client %s: %s: %s%s", client, kind, detail[:200], more)
        return True
