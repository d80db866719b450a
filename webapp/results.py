"""What this web process knows about requests it produced: pending UUIDs and recent results.

Bounded in size (oldest entries fall out first) and thread-safe: the Kafka consumer thread
writes, request handlers read. Results are keyed by UUID, so a duplicate response from the
at-least-once Kafka sink simply overwrites an identical entry.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict


class ResultStore:
    def __init__(self, capacity: int = 10_000):
        self._capacity = capacity
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._results: OrderedDict[str, dict] = OrderedDict()
        self._rejected: OrderedDict[str, dict] = OrderedDict()

    def mark_pending(self, uuid: str) -> None:
        with self._lock:
            self._pending[uuid] = time.time()
            self._trim(self._pending)

    def record(self, uuid: str, result: dict) -> bool:
        """Store ``result``; return False if this UUID already had one (a duplicate delivery)."""
        with self._lock:
            self._pending.pop(uuid, None)
            duplicate = uuid in self._results
            self._results[uuid] = result
            self._results.move_to_end(uuid)
            self._trim(self._results)
            self._arrived.notify_all()
            return not duplicate

    def reject(self, uuid: str, rejection: dict) -> None:
        """The streaming job dead-lettered ``uuid``: keep why, it is no longer pending."""
        with self._lock:
            self._pending.pop(uuid, None)
            self._rejected[uuid] = rejection
            self._trim(self._rejected)
            self._arrived.notify_all()

    def wait_for(self, uuid: str, timeout: float) -> dict | None:
        """The result of ``uuid``, waiting up to ``timeout`` seconds for it to be recorded."""
        with self._arrived:
            self._arrived.wait_for(lambda: uuid in self._results or uuid in self._rejected, timeout)
            return self._results.get(uuid)

    def outcome(self, uuid: str) -> tuple[str, dict | None]:
        """('rejected', why) | ('done', result) | ('pending', None) | ('unknown', None), read
        under one lock: checked one table at a time, an answer recorded between the reads
        (it leaves pending as it becomes a result) made a request this process produced look
        unknown."""
        with self._lock:
            if uuid in self._rejected:
                return "rejected", self._rejected[uuid]
            if uuid in self._results:
                return "done", self._results[uuid]
            return ("pending", None) if uuid in self._pending else ("unknown", None)

    def knows(self, uuid: str) -> bool:
        """Whether this process produced ``uuid`` (pending, answered or rejected, while kept)."""
        with self._lock:
            return self.may_know(uuid)

    def may_know(self, uuid: str) -> bool:
        """``knows`` without the lock, for the Kafka consumer's thread to pass over answers nobody
        here waits for before decoding them, without contending with the server's loop for the
        lock. A dict's membership test is atomic; what it lets through is still checked by
        ``knows`` on the loop."""
        return uuid in self._pending or uuid in self._results or uuid in self._rejected

    def is_pending(self, uuid: str) -> bool:
        with self._lock:
            return uuid in self._pending

    def _trim(self, table: OrderedDict) -> None:
        while len(table) > self._capacity:
            table.popitem(last=False)
