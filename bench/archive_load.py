"""The archive half of bench.queries: an archive of N predictions in the file sink's layout
(parquet files under ``FlightDate=...`` directories, listed batch by batch in
``_spark_metadata``), written straight to HDFS, then the archive page's summary timed.

Not an entry point: ``python -m bench.queries --only archive`` runs it.
"""
from __future__ import annotations

import io
import json
import time
import uuid as uuidlib
from collections import defaultdict

from flightdelay.config import Settings
from flightdelay.stores import parquet
from harness.progress import say
from harness.stats import percentiles_ms
from harness.traffic import synthetic_predictions

BATCHES = 5  # commit-log batches the N predictions arrive in (each: one file per flight date)


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != parquet.PARTITION_COLUMN} for r in rows])
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def write_batch(hdfs, s: Settings, batch_id: int, rows: list[dict]) -> int:
    """One sink batch: a file per flight date, then its commit-log file (which makes it count)."""
    by_day: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_day[row[parquet.PARTITION_COLUMN]].append(row)
    entries = []
    for day, day_rows in sorted(by_day.items()):
        name = f"part-{batch_id:05d}-{uuidlib.uuid4()}.c000.snappy.parquet"
        path = f"{s.prediction_archive_path}/{parquet.PARTITION_COLUMN}={day}/{name}"
        data = parquet_bytes(day_rows)
        hdfs.write(path, data=data, overwrite=True)
        entries.append({"path": f"{s.hdfs_url}{path}", "size": len(data), "isDir": False,
                        "modificationTime": int(time.time() * 1000), "blockReplication": 1,
                        "blockSize": 134217728, "action": "add"})
    log = "v1\n" + "\n".join(json.dumps(e) for e in entries)
    hdfs.write(f"{s.prediction_archive_path}/_spark_metadata/{batch_id}", data=log, encoding="utf-8", overwrite=True)
    return len(entries)


def load(hdfs, s: Settings, n: int, days: int) -> tuple[float, int]:
    hdfs.delete(s.prediction_archive_path, recursive=True)
    hdfs.makedirs(f"{s.prediction_archive_path}/_spark_metadata")
    began = time.monotonic()
    per_batch = -(-n // BATCHES)
    files = done = 0
    rows: list[dict] = []
    batch_id = 0
    for p in synthetic_predictions(n, days):
        rows.append(p)
        if len(rows) == per_batch:
            files += write_batch(hdfs, s, batch_id, rows)
            done += len(rows)
            batch_id, rows = batch_id + 1, []
            say(f"archive: {done:,}/{n:,} written ({files} files, {time.monotonic() - began:,.0f} s)")
    if rows:
        files += write_batch(hdfs, s, batch_id, rows)
    return time.monotonic() - began, files


def run(s: Settings, n: int, days: int, repeat: int, reuse: bool = False, keep: bool = False) -> dict:
    hdfs = parquet.hdfs_client(s, timeout=120)
    figures: dict = {"path": parquet.url(s)}
    if reuse and parquet.load_counts(hdfs, s).get("log") is not None:
        say("archive: reusing the bench archive")
    else:
        took, files = load(hdfs, s, n, days)
        figures.update(load_s=round(took, 1), files=files)
        say(f"archive: {n:,} predictions in {files} files written in {took:,.0f} s")
        began = time.monotonic()
        scan = parquet.scan_summary(hdfs, s)
        figures["scan_every_file_s"] = round(time.monotonic() - began, 2)  # what the page did before
        say(f"archive: the old page's scan of every file took {figures['scan_every_file_s']} s")
        began = time.monotonic()
        built = parquet.summary(hdfs, s, budget_s=None)
        figures["first_aggregate_build_s"] = round(time.monotonic() - began, 2)
        assert built["per_day"] == scan["per_day"], "the aggregate disagrees with a full scan"
        say(f"archive: building the aggregate once took {figures['first_aggregate_build_s']} s")

    def cold() -> dict:  # a new client, nothing in this process: what a restarted web app pays
        return parquet.summary(parquet.hdfs_client(s, timeout=30), s, budget_s=0.2, background_save=True)

    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = cold()
        times.append((time.perf_counter() - began) * 1000)
        if result["saving"] is not None:  # the web app's save runs on; here, not into the next view
            result["saving"].join()
    figures["cold_view"] = {**percentiles_ms(times, (50, 95)), "total": result["total"], "files": result["files"],
                            "days": len(result["per_day"])}
    say(f"archive: cold page summary p50 {figures['cold_view']['p50_ms']} ms p95 {figures['cold_view']['p95_ms']} ms "
        f"({result['total']:,} predictions, {result['files']} files)")
    # A new commit since the last view: the view counts the new files only.
    times = []
    next_batch = 1 + max(parquet.log_batch(name) for name in hdfs.list(f"{s.prediction_archive_path}/_spark_metadata")
                         if parquet._LOG_NAME.match(name))
    for i in range(min(repeat, 5)):
        write_batch(hdfs, s, next_batch + i, list(synthetic_predictions(200, 1, seed=100 + i)))
        began = time.perf_counter()
        result = cold()
        times.append((time.perf_counter() - began) * 1000)
        if result["saving"] is not None:
            result["saving"].join()
    figures["cold_view_after_a_new_batch"] = {**percentiles_ms(times, (50, 95)), "pending_files": result["pending_files"]}
    say(f"archive: cold page summary after a new batch p50 {figures['cold_view_after_a_new_batch']['p50_ms']} ms "
        f"p95 {figures['cold_view_after_a_new_batch']['p95_ms']} ms")
    if not keep:
        hdfs.delete(s.prediction_archive_path, recursive=True)
    return figures
