"""Waiting on a condition with a deadline (never a fixed sleep): tests and benches poll real
servers with it. The launcher has its own wait (infra.launcher.wait_ready): it also watches the
server's process and quotes its log, and the product never imports the harness."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 1.0) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and
    return that; raise TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
