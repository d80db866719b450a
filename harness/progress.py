"""Progress lines of a bench or a test run: one flushed line per step, tagged with who says it."""
from __future__ import annotations

from collections.abc import Callable


def printer(tag: str) -> Callable[[str], None]:
    """A ``say(message)`` that prints ``[tag] message`` at once (a bench's output is read live)."""
    def say(message: str) -> None:
        print(f"[{tag}] {message}", flush=True)
    return say


say = printer("bench")
