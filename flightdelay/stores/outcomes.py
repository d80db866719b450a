"""Cassandra: the outcome tables of ``cassandra.cql`` (keyspace FD_CASSANDRA_KEYSPACE):

* ``outcomes_by_route_day``: PRIMARY KEY ((stream, route, flight_date), flight_key, outcome_id),
  every outcome report of a flight, beside the route-day partition of its predictions;
* ``scored_by_uuid``: PRIMARY KEY (uuid), each prediction resolved by its flight's outcome;
* ``live_metrics``: PRIMARY KEY ((model_name, window_kind, bucket), window_start, model_version);
* ``outcome_stream``: PRIMARY KEY ((stream, window_kind, bucket), window_start).

Written by the join (``CassandraJoinStore``, the ``JoinStore`` of ``flightdelay.outcomes``) in the
job's archive-cassandra query; read by the web app's pages (``OutcomeReader``), the replay, the
bench and the tests.
"""
from __future__ import annotations

import calendar
import datetime as dt
import logging
from typing import Iterable

from flightdelay import schema
from flightdelay.config import Settings
from flightdelay.outcomes import (
    FLIGHT_DATE,
    TOTAL,
    WALL,
    MetricKey,
    Metrics,
    Partition,
    Prediction,
    Report,
    Scored,
    StreamCounts,
    StreamKey,
    utc_day,
)
from flightdelay.stores import cassandra

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
IN_CHUNK = 100  # keys per IN (...) query
CONCURRENCY = 32

REPORT_COLUMNS = ("stream", "route", "flight_date", "flight_key", "outcome_id", "carrier", "flight_num", "origin",
                  "dest", "crs_dep_time", "dep_delay", "arr_delay", "cancelled", "diverted", "actual_class",
                  "reported_at", "kafka_at", "counted_at", "lineage", "repeated", "late", "matched_lineage")
SCORED_COLUMNS = ("uuid", "flight_key", "route", "flight_date", "carrier", "flight_num", "origin", "dest",
                  "crs_dep_time", "model_name", "model_version", "prediction", "probability", "status",
                  "actual_class", "correct", "arr_delay", "dep_delay", "outcome_id", "requested_at", "reported_at",
                  "scored_at", "outcome_kafka_at", "prediction_kafka_at", "lineage")
METRIC_COLUMNS = ("model_name", "window_kind", "bucket", "window_start", "model_version", "predicted",
                  "no_flight_number", "matched", "correct", "cancelled", "diverted", "probability_sum", "confusion",
                  "accuracy", "expected_accuracy", "macro_f1", "first_flight_date", "last_flight_date", "applied",
                  "updated_at")
STREAM_COLUMNS = ("stream", "window_kind", "bucket", "window_start", "outcomes", "invalid", "redelivered",
                  "repeated", "matched", "late", "lag_ms_sum", "lag_ms_max", "lag_count", "applied", "updated_at")
PREDICTION_COLUMNS = ("uuid", "carrier", "flight_num", "origin", "dest", "flight_date", "crs_dep_time", "model_name",
                      "model_version", "prediction", "probabilities", "requested_at")


# -- values ------------------------------------------------------------------------------------
def timestamp(ms: int | None) -> dt.datetime | None:
    """Epoch ms as the driver writes it, exactly (``fromtimestamp(ms / 1000)`` can lose a ms)."""
    return None if ms is None else EPOCH + dt.timedelta(milliseconds=int(ms))


def millis(value: dt.datetime | None) -> int | None:
    """A timestamp as the driver reads it (naive UTC) in epoch ms."""
    if value is None:
        return None
    return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000


def day(value) -> str | None:
    """A CQL date (``cassandra.util.Date`` or ``datetime.date``) as YYYY-MM-DD."""
    return None if value is None else str(value)


def date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def insert_cql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def report_row(stream: str, r: Report) -> tuple:
    return (stream, r.route, date(r.flight_date), r.flight_key, r.outcome_id, r.carrier, r.flight_num, r.origin,
            r.dest, r.crs_dep_time, r.dep_delay, r.arr_delay, r.cancelled, r.diverted, r.actual,
            timestamp(r.reported_at), timestamp(r.kafka_at), timestamp(r.counted_at), r.lineage, r.repeated, r.late,
            r.matched_lineage)


def report_of_row(row) -> Report:
    return Report(outcome_id=row.outcome_id, flight_key=row.flight_key, carrier=row.carrier, flight_num=row.flight_num,
                  origin=row.origin, dest=row.dest, flight_date=day(row.flight_date), crs_dep_time=row.crs_dep_time,
                  dep_delay=row.dep_delay, arr_delay=row.arr_delay, cancelled=bool(row.cancelled),
                  diverted=bool(row.diverted), reported_at=millis(row.reported_at), kafka_at=millis(row.kafka_at),
                  lineage=row.lineage or "", repeated=bool(row.repeated), late=bool(row.late),
                  matched_lineage=row.matched_lineage, counted_at=millis(row.counted_at))


def scored_row(s: Scored) -> tuple:
    r = s.record()
    return (r["UUID"], r["flight_key"], r["Route"], date(r["FlightDate"]), r["Carrier"], r["FlightNum"], r["Origin"],
            r["Dest"], r["CRSDepTime"], r["model_name"], r["model_version"], r["prediction"], r["probability"],
            r["status"], r["actual"], r["correct"], r["ArrDelay"], r["DepDelay"], r["outcome_id"],
            timestamp(r["requested_at"]), timestamp(r["reported_at"]), timestamp(r["scored_at"]),
            timestamp(r["outcome_kafka_at"]), timestamp(r["prediction_kafka_at"]), s.lineage)


def prediction_of_row(row) -> Prediction:
    fields = {"Carrier": row.carrier, "FlightNum": row.flight_num, "Origin": row.origin, "Dest": row.dest,
              "FlightDate": day(row.flight_date), "CRSDepTime": row.crs_dep_time}
    cls = int(row.prediction)
    return Prediction(uuid=row.uuid, flight_key=schema.flight_key(fields), carrier=row.carrier,
                      flight_num=row.flight_num, origin=row.origin, dest=row.dest, flight_date=fields["FlightDate"],
                      crs_dep_time=row.crs_dep_time, model_name=row.model_name, model_version=row.model_version,
                      prediction=cls, probability=float(row.probabilities[cls]), requested_at=millis(row.requested_at))


def metric_row(key: MetricKey, m: Metrics, now: dt.datetime) -> tuple:
    name, kind, bucket, start, version = key
    return (name, kind, bucket, timestamp(start), version, m.predicted, m.no_flight_number, m.matched, m.correct,
            m.cancelled, m.diverted, m.probability_sum, list(m.confusion), m.accuracy, m.expected_accuracy,
            m.macro_f1, date(m.first_flight_date), date(m.last_flight_date), m.applied, now)


def metrics_of_row(row) -> Metrics:
    return Metrics(predicted=row.predicted or 0, no_flight_number=row.no_flight_number or 0, matched=row.matched or 0,
                   correct=row.correct or 0, cancelled=row.cancelled or 0, diverted=row.diverted or 0,
                   probability_sum=row.probability_sum or 0.0, confusion=list(row.confusion or Metrics().confusion),
                   first_flight_date=day(row.first_flight_date), last_flight_date=day(row.last_flight_date),
                   applied=row.applied)


def stream_row(key: StreamKey, c: StreamCounts, now: dt.datetime) -> tuple:
    stream, kind, bucket, start = key
    return (stream, kind, bucket, timestamp(start), c.outcomes, c.invalid, c.redelivered, c.repeated, c.matched,
            c.late, c.lag_ms_sum, c.lag_ms_max, c.lag_count, c.applied, now)


def stream_of_row(row) -> StreamCounts:
    return StreamCounts(outcomes=row.outcomes or 0, invalid=row.invalid or 0, redelivered=row.redelivered or 0,
                        repeated=row.repeated or 0, matched=row.matched or 0, late=row.late or 0,
                        lag_ms_sum=row.lag_ms_sum or 0, lag_ms_max=row.lag_ms_max or 0, lag_count=row.lag_count or 0,
                        applied=row.applied)


def chunks(items: list, size: int = IN_CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- the join's store --------------------------------------------------------------------------
class CassandraJoinStore:
    """The ``JoinStore`` of the job: reads and writes of the outcome tables, and the job's own
    predictions of a route-day (``model_name``: a job serves one registered model name, so a
    test's job and the platform's never score each other's predictions). Reads and writes go
    out concurrently; every write is an idempotent upsert."""

    def __init__(self, s: Settings, model_name: str, stream: str):
        self.s = s
        self.model_name = model_name
        self.stream = stream
        self._cluster = self._session = None
        self._statements: dict[str, object] = {}

    def session(self):
        if self._session is None:
            self._cluster, self._session = cassandra.session(self.s, keyspace=self.s.cassandra_keyspace, metadata=False)
            prepare = self._session.prepare
            self._statements = {
                "reports": prepare("SELECT * FROM outcomes_by_route_day WHERE stream = ? AND route = ? AND flight_date = ?"),
                "predictions": prepare(f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM predictions_by_route_day "
                                       "WHERE route = ? AND flight_date = ?"),
                "scored": prepare("SELECT uuid, lineage FROM scored_by_uuid WHERE uuid IN ?"),
                "metric": prepare("SELECT * FROM live_metrics WHERE model_name = ? AND window_kind = ? AND bucket = ? "
                                  "AND window_start = ? AND model_version = ?"),
                "stream": prepare("SELECT * FROM outcome_stream WHERE stream = ? AND window_kind = ? AND bucket = ? "
                                  "AND window_start = ?"),
                "write_report": prepare(insert_cql("outcomes_by_route_day", REPORT_COLUMNS)),
                "write_scored": prepare(insert_cql("scored_by_uuid", SCORED_COLUMNS)),
                "write_metric": prepare(insert_cql("live_metrics", METRIC_COLUMNS)),
                "write_stream": prepare(insert_cql("outcome_stream", STREAM_COLUMNS)),
            }
        return self._session

    def reset(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None

    def _write(self, name: str, rows: list[tuple], partition=lambda row: ()) -> None:
        """Upsert ``rows`` through statement ``name`` in unlogged batches of FD_CASSANDRA_BATCH_ROWS,
        sorted by ``partition`` so that a batch touches few partitions (as CassandraWriter: the
        per-request overhead is most of a single-row insert's cost); idempotent, so no atomicity
        is needed."""
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        if not rows:
            return
        sess = self.session()
        size = max(1, self.s.cassandra_batch_rows)
        ordered = sorted(rows, key=partition)
        batches = []
        for start in range(0, len(ordered), size):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for row in ordered[start:start + size]:
                batch.add(self._statements[name], row)
            batches.append((batch, ()))
        execute_concurrent(sess, batches, concurrency=CONCURRENCY, raise_on_first_error=True)

    def _run(self, name: str, parameters: list[tuple]) -> list:
        """Each parameter tuple through statement ``name``, concurrently; the rows of each."""
        from cassandra.concurrent import execute_concurrent_with_args

        if not parameters:
            return []
        sess = self.session()
        results = execute_concurrent_with_args(sess, self._statements[name], parameters, concurrency=CONCURRENCY,
                                               raise_on_first_error=True)
        return [list(rows) for _, rows in results]

    # reads
    def outcome_partitions(self) -> set[Partition]:
        rows = self.session().execute("SELECT DISTINCT stream, route, flight_date FROM outcomes_by_route_day")
        return {(r.route, day(r.flight_date)) for r in rows if r.stream == self.stream}

    def reports(self, partitions: Iterable[Partition]) -> dict[Partition, list[Report]]:
        parts = list(partitions)
        found = self._run("reports", [(self.stream, route, date(d)) for route, d in parts])
        return {p: [report_of_row(r) for r in rows] for p, rows in zip(parts, found)}

    def predictions(self, partitions: Iterable[Partition]) -> dict[Partition, list[Prediction]]:
        parts = list(partitions)
        found = self._run("predictions", [(route, date(d)) for route, d in parts])
        return {p: [prediction_of_row(r) for r in rows if r.model_name == self.model_name and r.flight_num is not None]
                for p, rows in zip(parts, found)}

    def scored_lineages(self, uuids: Iterable[str]) -> dict[str, str]:
        found = self._run("scored", [(chunk,) for chunk in chunks(list(uuids))])
        return {r.uuid: r.lineage for rows in found for r in rows}

    def metric_rows(self, keys: Iterable[MetricKey]) -> dict[MetricKey, Metrics]:
        keys = list(keys)
        found = self._run("metric", [(n, k, b, timestamp(w), v) for n, k, b, w, v in keys])
        return {key: metrics_of_row(rows[0]) for key, rows in zip(keys, found) if rows}

    def stream_rows(self, keys: Iterable[StreamKey]) -> dict[StreamKey, StreamCounts]:
        keys = list(keys)
        found = self._run("stream", [(st, k, b, timestamp(w)) for st, k, b, w in keys])
        return {key: stream_of_row(rows[0]) for key, rows in zip(keys, found) if rows}

    # writes
    def write_scored(self, scored: list[Scored]) -> None:
        self._write("write_scored", [scored_row(s) for s in scored], partition=lambda row: row[0])

    def write_reports(self, reports: list[Report]) -> None:
        self._write("write_report", [report_row(self.stream, r) for r in reports], partition=lambda row: row[:3])

    def write_metrics(self, rows: dict[MetricKey, Metrics]) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self._write("write_metric", [metric_row(k, m, now) for k, m in rows.items()], partition=lambda row: row[:3])

    def write_stream(self, rows: dict[StreamKey, StreamCounts]) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self._write("write_stream", [stream_row(k, c, now) for k, c in rows.items()], partition=lambda row: row[:3])


# -- reading, for the pages, the replay, the bench and the tests -------------------------------
def version_totals(sess, model_name: str) -> dict[str, Metrics]:
    """The all-time live metrics of every version of ``model_name`` that has served."""
    rows = sess.execute("SELECT * FROM live_metrics WHERE model_name = %s AND window_kind = %s AND bucket = %s",
                        [model_name, TOTAL, ""])
    return {r.model_version: metrics_of_row(r) for r in rows}


def months(first: str, last: str, limit: int = 24) -> list[str]:
    """The YYYY-MM buckets from ``first`` to ``last`` (days or months), at most the ``limit`` last."""
    year, month = int(first[:4]), int(first[5:7])
    out = []
    while f"{year:04d}-{month:02d}" <= last[:7]:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out[-limit:]


def metric_windows(sess, model_name: str, kind: str, buckets: Iterable[str]) -> list[tuple[int, str, Metrics]]:
    """(window start ms, version, metrics) of the windows of ``kind`` in ``buckets``, oldest first."""
    query = sess.prepare("SELECT * FROM live_metrics WHERE model_name = ? AND window_kind = ? AND bucket = ?")
    out = []
    for bucket in buckets:
        out += [(millis(r.window_start), r.model_version, metrics_of_row(r))
                for r in sess.execute(query, (model_name, kind, bucket))]
    return sorted(out, key=lambda w: (w[0], w[1]))


def flight_date_windows(sess, model_name: str, totals: dict[str, Metrics]):
    spans = [(m.first_flight_date, m.last_flight_date) for m in totals.values() if m.first_flight_date]
    if not spans:
        return []
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    return metric_windows(sess, model_name, FLIGHT_DATE, months(first, last))


def wall_windows(sess, model_name: str, since_ms: int, now_ms: int):
    """The wall-time windows of the last ``now_ms - since_ms`` ms."""
    days = sorted({utc_day(since_ms), utc_day(now_ms)})
    return [w for w in metric_windows(sess, model_name, WALL, days) if w[0] >= since_ms]


def stream_windows(sess, stream: str, since_ms: int, now_ms: int) -> list[tuple[int, StreamCounts]]:
    query = sess.prepare("SELECT * FROM outcome_stream WHERE stream = ? AND window_kind = ? AND bucket = ? "
                         "AND window_start >= ?")
    out = []
    for bucket in sorted({utc_day(since_ms), utc_day(now_ms)}):
        out += [(millis(r.window_start), stream_of_row(r))
                for r in sess.execute(query, (stream, WALL, bucket, timestamp(since_ms)))]
    return sorted(out, key=lambda w: w[0])


def stream_total(sess, stream: str) -> StreamCounts | None:
    row = sess.execute("SELECT * FROM outcome_stream WHERE stream = %s AND window_kind = %s AND bucket = %s "
                       "AND window_start = %s", [stream, TOTAL, "", timestamp(0)]).one()
    return None if row is None else stream_of_row(row)


def scored_by_uuid(sess, uuids: Iterable[str]) -> dict[str, dict]:
    """The scored rows of ``uuids`` (those resolved so far) as dicts of SCORED_COLUMNS."""
    query = sess.prepare(f"SELECT {', '.join(SCORED_COLUMNS)} FROM scored_by_uuid WHERE uuid IN ?")
    out = {}
    for chunk in chunks(list(dict.fromkeys(uuids))):
        for r in sess.execute(query, (chunk,)):
            out[r.uuid] = {c: getattr(r, c) for c in SCORED_COLUMNS}
    return out
