"""The parquet archive on HDFS: every prediction under FD_PREDICTION_ARCHIVE_PATH, one
directory per flight date (``FlightDate=YYYY-MM-DD``).

Created by the launcher (``ensure_archive_dir``), written by the job's archive-hdfs query
(``stream_writer``: Spark's parquet file sink), read by the web app's archive page
(``summary``, over WebHDFS) and the tests (``read_uuids``, through Spark).

The archive page never scans the archive: ``summary`` keeps a small aggregate next to the data,
``<path>/_fd_counts.json`` (hidden from Spark by its leading underscore): per committed file its
flight date and counts per class, and the last log file it has read. A page view lists the
commit log (one call), reads the aggregate (one call) and counts only files committed since,
within a time budget; what it could not count in time is reported as pending and counted by
the next view.

The file sink is exactly-once because of its commit log, ``<path>/_spark_metadata``: a batch's
files count only once the log lists them. A reader that merely lists the directory could see
files of a batch that failed half-way (and is then rewritten), so readers here ask the log.
Log layout (Spark's FileStreamSinkLog): one file per batch (``0``, ``1``, ...) and, every
``compactInterval`` batches, ``N.compact`` holding everything up to N; each file is a version
line (``v1``) then one JSON object per written file with ``path`` and ``action``.
"""
from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from flightdelay.config import Settings
from flightdelay.schema import LABELS

log = logging.getLogger(__name__)

PARTITION_COLUMN = "FlightDate"
COUNTS_FILE = "_fd_counts.json"
COUNTS_VERSION = 1
READERS = 4  # files counted at once by a page view
_LOG_NAME = re.compile(r"^(\d+)(\.compact)?$")


def url(s: Settings) -> str:
    return f"{s.hdfs_url}{s.prediction_archive_path}"


def scored_url(s: Settings) -> str:
    """The archive of scored predictions (flightdelay.outcomes), laid out like the predictions'."""
    return f"{s.hdfs_url}{s.scored_archive_path}"


def hdfs_client(s: Settings, timeout: float = 30.0):
    """HdfsCLI over WebHDFS. Its requests session ignores HTTP(S)_PROXY variables: every
    service is on loopback and a proxy must not reroute the DataNode redirects."""
    import requests
    from hdfs import InsecureClient

    session = requests.Session()
    session.trust_env = False
    return InsecureClient(s.webhdfs_url, user=s.hdfs_user, timeout=timeout, session=session)


def ensure_archive_dir(s: Settings) -> None:
    """Create the archive directory (MKDIRS is idempotent)."""
    hdfs_client(s).makedirs(s.prediction_archive_path)


def delete_archive(s: Settings) -> None:
    hdfs_client(s).delete(s.prediction_archive_path, recursive=True)


# -- writing (Spark) ---------------------------------------------------------------------------
def stream_writer(predictions, s: Settings, *, path: str | None = None, time_column: str = "requested_at"):
    """A DataStreamWriter of complete predictions (response fields only) to the archive (or of
    other records with a UUID and a FlightDate to ``path``); the job names the query, its
    checkpoint and trigger. Repeats of a UUID (a replayed response) are dropped within
    FD_ARCHIVE_DEDUP_WINDOW of ``time_column``; one file per flight date per trigger
    (``coalesce(1)``) keeps HDFS free of a small-file storm."""
    from pyspark.sql import functions as F

    event_time = f"{time_column}_ts"
    deduped = (predictions.withColumn(event_time, F.timestamp_millis(F.col(time_column)))
               .withWatermark(event_time, s.archive_dedup_window)
               .dropDuplicatesWithinWatermark(["UUID"]))
    return (deduped.coalesce(1).writeStream.format("parquet").partitionBy(PARTITION_COLUMN)
            .option("path", path or url(s)))


# -- reading -----------------------------------------------------------------------------------
def read_uuids(spark, s: Settings) -> list[str]:
    """Every archived UUID, through Spark (which honours the commit log); [] before the first commit."""
    try:
        return [r["UUID"] for r in spark.read.parquet(url(s)).select("UUID").collect()]
    except Exception:  # nothing committed yet: Spark cannot infer a schema
        return []


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


def committed_files(entries: list[dict], since_ms: int | None = None) -> list[str]:
    """Paths (without scheme and authority) of files added and not deleted, in log order;
    with ``since_ms``, only files written at or after that time (epoch ms)."""
    live: dict[str, None] = {}
    for entry in entries:
        path = urlsplit(entry["path"]).path
        if entry.get("action") == "delete":
            live.pop(path, None)
        elif since_ms is None or entry.get("modificationTime", since_ms) >= since_ms:
            live[path] = None
    return list(live)


def partition_value(path: str, column: str) -> str | None:
    for part in path.split("/"):
        if part.startswith(f"{column}="):
            return part.split("=", 1)[1]
    return None


def log_batch(name: str) -> int:
    return int(_LOG_NAME.match(name).group(1))


def committed_archive_files(hdfs, s: Settings, since_ms: int | None = None) -> list[str]:
    log_dir = f"{s.prediction_archive_path}/_spark_metadata"
    if hdfs.status(log_dir, strict=False) is None:
        return []
    return committed_files(read_log(hdfs, log_dir, latest_log_files(hdfs.list(log_dir))), since_ms)


def read_log(hdfs, log_dir: str, names: list[str]) -> list[dict]:
    entries = []
    for name in names:
        with hdfs.read(f"{log_dir}/{name}", encoding="utf-8") as reader:
            entries.extend(parse_log(reader.read()))
    return entries


def file_counts(hdfs, path: str) -> list[int]:
    """Predictions per class (index = class) of one parquet file: its prediction column only."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with hdfs.read(path) as reader:
        column = pq.read_table(io.BytesIO(reader.read()), columns=["prediction"]).column("prediction")
    counts = [0] * len(LABELS)
    for entry in pc.value_counts(column).to_pylist():
        if entry["values"] is not None and 0 <= int(entry["values"]) < len(counts):
            counts[int(entry["values"])] += entry["counts"]
    return counts


def empty_counts() -> dict:
    return {"version": COUNTS_VERSION, "log": None, "files": {}}


def load_counts(hdfs, s: Settings) -> dict:
    path = f"{s.prediction_archive_path}/{COUNTS_FILE}"
    if hdfs.status(path, strict=False) is None:
        return empty_counts()
    with hdfs.read(path, encoding="utf-8") as reader:
        counts = json.loads(reader.read())
    return counts if counts.get("version") == COUNTS_VERSION else empty_counts()


def save_counts(hdfs, s: Settings, counts: dict) -> None:
    hdfs.write(f"{s.prediction_archive_path}/{COUNTS_FILE}", data=json.dumps(counts, separators=(",", ":")),
               encoding="utf-8", overwrite=True)


def save_counts_in_background(hdfs, s: Settings, counts: dict) -> threading.Thread:
    """Save ``counts`` without making the page wait: an HDFS file create costs a NameNode call
    and a DataNode pipeline (0.3-1 s on a loaded machine). A failed save (e.g. two views saving
    at once) only means the next view counts those files again."""
    snapshot = json.loads(json.dumps(counts))

    def save():
        try:
            save_counts(hdfs, s, snapshot)
        except Exception as exc:  # any failure: the next view recounts
            log.warning("could not save the archive counts %s: %s", COUNTS_FILE, exc)

    thread = threading.Thread(target=save, name="archive-counts-save", daemon=True)
    thread.start()
    return thread


def update_counts(hdfs, s: Settings, counts: dict, budget_s: float | None = None) -> tuple[dict, int, bool]:
    """Bring ``counts`` up to the commit log: read the log files after ``counts["log"]``,
    count the files they add (oldest first) until ``budget_s`` is spent. Returns the counts,
    how many committed files are still not counted, and whether anything changed."""
    log_dir = f"{s.prediction_archive_path}/_spark_metadata"
    if hdfs.status(log_dir, strict=False) is None:
        return counts, 0, False
    names = latest_log_files(hdfs.list(log_dir))
    if not names:
        return counts, 0, False
    seen = counts["log"]
    unread = [n for n in names if seen is None or log_batch(n) > log_batch(seen)]
    files = counts["files"]
    pending = [p for p in committed_files(read_log(hdfs, log_dir, unread)) if p not in files] if unread else []
    pending += [p for p in counts.get("pending", []) if p not in files and p not in pending]
    deadline = None if budget_s is None else time.monotonic() + budget_s
    done = 0
    with ThreadPoolExecutor(max_workers=READERS) as pool:  # WebHDFS reads wait on the network
        while done < len(pending) and (deadline is None or time.monotonic() < deadline):
            chunk = pending[done:done + READERS]
            for path, by_class in zip(chunk, pool.map(lambda p: file_counts(hdfs, p), chunk)):
                files[path] = [partition_value(path, PARTITION_COLUMN) or "unknown", *by_class]
            done += len(chunk)
    left = pending[done:]
    changed = bool(unread) or done > 0
    counts.update(log=names[-1], pending=left)
    return counts, len(left), changed


def summary(hdfs, s: Settings, budget_s: float | None = 0.2, background_save: bool = False) -> dict:
    """Counts per flight date and per class over the committed archive, from the aggregate
    (see the module docstring); files committed since the last view are counted within
    ``budget_s`` (None: all of them), the rest reported as ``pending``. The aggregate is saved
    when it changed, in a background thread with ``background_save`` (returned as "saving")."""
    counts, pending, changed = update_counts(hdfs, s, load_counts(hdfs, s), budget_s)
    saving = None
    if changed and background_save:
        saving = save_counts_in_background(hdfs, s, counts)
    elif changed:
        save_counts(hdfs, s, counts)
    per_day: dict[str, dict[int, int]] = {}
    for day, *by_class in counts["files"].values():
        totals = per_day.setdefault(day, {c: 0 for c in LABELS})
        for cls, n in zip(LABELS, by_class):
            totals[cls] += n
    per_class = {c: sum(day[c] for day in per_day.values()) for c in LABELS}
    return {"per_day": dict(sorted(per_day.items())), "per_class": per_class,
            "total": sum(per_class.values()), "files": len(counts["files"]), "pending_files": pending,
            "path": url(s), "saving": saving}


def scan_summary(hdfs, s: Settings) -> dict:
    """The same figures by reading every committed file (what the page did before the
    aggregate; kept for the benchmark and the tests that check the aggregate against it)."""
    per_day: dict[str, dict[int, int]] = {}
    files = committed_archive_files(hdfs, s)
    for path in files:
        day = partition_value(path, PARTITION_COLUMN) or "unknown"
        counts = per_day.setdefault(day, {c: 0 for c in LABELS})
        for cls, n in zip(LABELS, file_counts(hdfs, path)):
            counts[cls] += n
    per_class = {c: sum(day[c] for day in per_day.values()) for c in LABELS}
    return {"per_day": dict(sorted(per_day.items())), "per_class": per_class,
            "total": sum(per_class.values()), "files": len(files), "pending_files": 0, "path": url(s)}
