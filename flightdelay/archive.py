"""Reading the prediction archive that Spark's file sink writes to HDFS.

The file sink is exactly-once because of its commit log, ``<path>/_spark_metadata``: a batch's
files count only once the log lists them. A reader that merely lists the directory could see
files of a batch that failed half-way (and is then rewritten), so readers here ask the log.
Log layout (Spark's FileStreamSinkLog): one file per batch (``0``, ``1``, ...) and, every
``compactInterval`` batches, ``N.compact`` holding everything up to N; each file is a version
line (``v1``) then one JSON object per written file with ``path`` and ``action``.
"""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

_LOG_NAME = re.compile(r"^(\d+)(\.compact)?$")


def latest_log_files(names: list[str]) -> list[str]:
    """The log files that together describe the sink's current state, oldest first."""
    batches = []
    for name in names:
        match = _LOG_NAME.match(name)
        if match:
            batches.append((int(match.group(1)), bool(match.group(2)), name))
    compacted = [b for b, is_compact, _ in batches if is_compact]
    start = max(compacted) if compacted else -1
    return [name for b, is_compact, name in sorted(batches)
            if b > start or (b == start and is_compact)]


def parse_log(text: str) -> list[dict]:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("v"):
        raise ValueError("not a Spark file sink log (no version line)")
    return [json.loads(line) for line in lines[1:] if line.strip()]


def committed_files(entries: list[dict]) -> list[str]:
    """Paths (without scheme and authority) of files added and not deleted, in log order."""
    live: dict[str, None] = {}
    for entry in entries:
        path = urlsplit(entry["path"]).path
        if entry.get("action") == "delete":
            live.pop(path, None)
        else:
            live[path] = None
    return list(live)


def partition_value(path: str, column: str) -> str | None:
    for part in path.split("/"):
        if part.startswith(f"{column}="):
            return part.split("=", 1)[1]
    return None
