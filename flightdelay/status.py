"""The streaming job's status file: one writer (the job's supervisor), one reader for everyone
else (the launcher's readiness probe, the status page, the bench and the tests).

The job rewrites it every FD_MODEL_POLL_S seconds, atomically, at ``Settings.streaming_status_file``::

    {"updated_at": <epoch ms>,
     "model": {"name": ..., "version": ..., "source": "mlflow" | "shipped"},
     "queries": {<query name>: {"active": bool, "id": str,
                                "batch": int, "rows_per_s": int,   # its last progress report
                                "offset": int,    # Kafka records its last batch has read up to
                                "backlog": int}}} # records already waiting beyond that batch

The progress keys are missing until a query has reported progress.
"""
from __future__ import annotations

import json
import time

from flightdelay.config import Settings


def write(s: Settings, model: dict, queries: dict) -> None:
    status = {"updated_at": int(time.time() * 1000), "model": model, "queries": queries}
    path = s.streaming_status_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=1))
    tmp.replace(path)  # readers never see half a file


def read(s: Settings) -> dict | None:
    """The last status the job wrote, or None (not written yet, or the job is gone)."""
    try:
        return json.loads(s.streaming_status_file.read_text())
    except (OSError, ValueError):
        return None


def clear(s: Settings) -> None:
    """Forget the status of an earlier run (before the job starts)."""
    s.streaming_status_file.unlink(missing_ok=True)


def inactive_queries(status: dict) -> list[str]:
    return [name for name, q in status["queries"].items() if not q["active"]]


def all_running(status: dict | None, queries: int) -> bool:
    """True when the status lists ``queries`` queries and every one is active."""
    return status is not None and len(status["queries"]) == queries and not inactive_queries(status)


def archived_up_to(status: dict | None, query: str) -> int:
    """Kafka records ``query`` has processed (its last batch's end offsets summed), 0 if unknown."""
    if status is None:
        return 0
    return status["queries"].get(query, {}).get("offset") or 0
