"""The parquet archive on HDFS: every prediction under FD_PREDICTION_ARCHIVE_PATH, one
directory per flight date (``FlightDate=YYYY-MM-DD``).

Created by the launcher (``ensure_archive_dir``), written by the job's archive-hdfs query
(``stream_writer``: Spark's parquet file sink), read by the web app's archive page
(``summary``, over WebHDFS) and the tests (``read_uuids``, through Spark).

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
import re
from urllib.parse import urlsplit

from flightdelay.config import Settings
from flightdelay.schema import LABELS

PARTITION_COLUMN = "FlightDate"
_LOG_NAME = re.compile(r"^(\d+)(\.compact)?$")


def url(s: Settings) -> str:
    return f"{s.hdfs_url}{s.prediction_archive_path}"


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
def stream_writer(predictions, s: Settings):
    """A DataStreamWriter of complete predictions (response fields only) to the archive; the
    job names the query, its checkpoint and trigger. Repeats of a UUID (a replayed response)
    are dropped within FD_ARCHIVE_DEDUP_WINDOW of requested_at; one file per flight date per
    trigger (``coalesce(1)``) keeps HDFS free of a small-file storm."""
    from pyspark.sql import functions as F

    deduped = (predictions.withColumn("requested_ts", F.timestamp_millis(F.col("requested_at")))
               .withWatermark("requested_ts", s.archive_dedup_window)
               .dropDuplicatesWithinWatermark(["UUID"]))
    return (deduped.coalesce(1).writeStream.format("parquet").partitionBy(PARTITION_COLUMN)
            .option("path", url(s)))


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


def committed_archive_files(hdfs, s: Settings, since_ms: int | None = None) -> list[str]:
    log_dir = f"{s.prediction_archive_path}/_spark_metadata"
    if hdfs.status(log_dir, strict=False) is None:
        return []
    entries = []
    for name in latest_log_files(hdfs.list(log_dir)):
        with hdfs.read(f"{log_dir}/{name}", encoding="utf-8") as reader:
            entries.extend(parse_log(reader.read()))
    return committed_files(entries, since_ms)


def summary(hdfs, s: Settings) -> dict:
    """Counts per flight date and per class over every committed parquet file of the archive."""
    import pyarrow.parquet as pq

    per_day: dict[str, dict[int, int]] = {}
    files = committed_archive_files(hdfs, s)
    for path in files:
        day = partition_value(path, PARTITION_COLUMN) or "unknown"
        with hdfs.read(path) as reader:
            table = pq.read_table(io.BytesIO(reader.read()), columns=["prediction"])
        counts = per_day.setdefault(day, {c: 0 for c in LABELS})
        for value in table.column("prediction").to_pylist():
            counts[int(value)] = counts.get(int(value), 0) + 1
    per_class = {c: sum(day[c] for day in per_day.values()) for c in LABELS}
    return {"per_day": dict(sorted(per_day.items())), "per_class": per_class,
            "total": sum(per_class.values()), "files": len(files), "path": url(s)}
