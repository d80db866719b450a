"""The monitor's status file: one writer (the monitor, every few seconds), one reader (the
launcher's readiness probe, ``make status``). JSON at ``<FD_STATE_DIR>/monitor/status.json``:
its pid, when written (epoch ms), the partitions it reads and its counters."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flightdelay.config import Settings

STALE_S = 30.0  # a status older than this is of a monitor that stopped or hangs


def path(s: Settings) -> Path:
    return s.state / "monitor" / "status.json"


def write(s: Settings, fields: dict) -> None:
    target = path(s)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid(), "updated_at": int(time.time() * 1000), **fields}))
    tmp.replace(target)  # atomic: a reader never sees half a file


def read(s: Settings) -> dict | None:
    try:
        return json.loads(path(s).read_text())
    except (OSError, ValueError):
        return None


def problem(s: Settings) -> str | None:
    """Why the monitor is not running and reading (None: it is)."""
    found = read(s)
    if found is None:
        return "no status written yet"
    try:
        os.kill(int(found["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return f"its process {found.get('pid')} is gone"
    age = time.time() - found.get("updated_at", 0) / 1000
    if age > STALE_S:
        return f"status not written for {age:.0f} s"
    if not found.get("assigned"):
        return "no partition of the response topic assigned yet"
    return None
