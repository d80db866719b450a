"""One writer per store for the archive queries. Each writer is idempotent (keyed by the
request UUID) and retries until its store answers, so an outage stalls that query, whose
Kafka offsets then stay uncommitted, and it catches up when the store is back."""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Callable, Iterable

from flightdelay.clients import cassandra_session, mongo_client
from flightdelay.config import Settings

log = logging.getLogger(__name__)


def retry_forever(what: str, action: Callable[[], int], *, first_wait: float = 1.0,
                  max_wait: float = 30.0, stop: Callable[[], bool] = lambda: False) -> int:
    """Run ``action`` until it succeeds; back off exponentially; log each failure on one line.
    Returns what ``action`` returned. ``stop()`` lets the job's shutdown interrupt the wait."""
    wait, attempt = first_wait, 1
    while True:
        try:
            return action()
        except Exception as exc:  # store unavailable / timed out: wait and try again
            if stop():
                raise
            log.warning("%s failed (attempt %d: %s: %s); retrying in %.0f s", what, attempt,
                        type(exc).__name__, str(exc)[:200], wait)
            time.sleep(wait)
            wait, attempt = min(max_wait, wait * 2), attempt + 1


def mongo_document(p: dict) -> dict:
    """The prediction as stored: its response fields (not the Kafka provenance columns, which
    start with "_"), keyed by the request UUID."""
    doc = {k: v for k, v in p.items() if not k.startswith("_")}
    doc["_id"] = p["UUID"]
    return doc


class MongoWriter:
    """Insert-if-absent keyed by the request UUID (``_id``): ``insert_many(ordered=False)``
    and duplicate-key errors (a replayed prediction) are ignored, so a UUID has exactly one
    document, the first prediction stored for it.

    Why not ReplaceOne upserts: FerretDB 1.24 on SQLite runs every upsert as a query plus an
    update (about 300 documents/s here, against 24,000/s for inserts), and a command that
    replaces about 100 existing documents exhausts its connection pool and hangs the server
    for every client (reproduced: 90 pass, 100 hang)."""

    CHUNK = 1000
    DUPLICATE_KEY = 11000

    def __init__(self, s: Settings):
        self.s = s
        self._client = None

    def collection(self):
        if self._client is None:
            self._client = mongo_client(self.s)
        return self._client[self.s.mongo_database][self.s.mongo_collection]

    def convert(self, p: dict) -> dict:
        return mongo_document(p)

    def write(self, docs: list[dict]) -> int:
        from pymongo.errors import BulkWriteError

        for start in range(0, len(docs), self.CHUNK):
            try:
                self.collection().insert_many(docs[start:start + self.CHUNK], ordered=False)
            except BulkWriteError as exc:
                others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != self.DUPLICATE_KEY]
                if others or exc.details.get("writeConcernErrors"):
                    raise
        return len(docs)

    def reset(self):
        if self._client is not None:
            self._client.close()
        self._client = None


CASSANDRA_COLUMNS = ("uuid", "carrier", "origin", "dest", "route", "flight_date", "flight_num",
                     "crs_dep_time", "crs_arr_time", "dep_delay", "prediction", "label", "probabilities",
                     "model_name", "model_version", "requested_at", "predicted_at")
CASSANDRA_TABLES = ("predictions_by_uuid", "predictions_by_route_day")


def cassandra_row(p: dict) -> tuple:
    flight_num = p.get("FlightNum")
    return (p["UUID"], p["Carrier"], p["Origin"], p["Dest"], p["Route"],
            dt.date.fromisoformat(p["FlightDate"]), None if flight_num is None else int(flight_num),
            int(p["CRSDepTime"]),
            int(p["CRSArrTime"]), float(p["DepDelay"]), int(p["prediction"]), p["label"],
            [float(x) for x in p["probabilities"]], p["model_name"], str(p["model_version"]),
            _timestamp(p["requested_at"]), _timestamp(p["predicted_at"]))


def _timestamp(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.timezone.utc)


class CassandraWriter:
    """INSERTs are upserts in Cassandra and both tables have the UUID in their primary key
    (the route table also clusters on requested_at, which comes from the request, not from
    processing time), so a replayed batch rewrites the same rows.

    Rows go in UNLOGGED batches of ``FD_CASSANDRA_BATCH_ROWS``: per-request overhead, in the
    driver and in Cassandra, is most of the cost of a single-row insert (measured here: about
    2,400 predictions/s row by row, about 10,000/s in batches of 20). Unlogged batches give no
    atomicity, which idempotent upserts do not need. The route table's rows are sorted by its
    partition key first so a batch touches few partitions (on a multi-node cluster, batches
    per partition key would be the next step)."""

    def __init__(self, s: Settings, concurrency: int = 16):
        self.s = s
        self.concurrency = concurrency
        self._cluster = self._session = None
        self._statements = {}

    def session(self):
        if self._session is None:
            self._cluster, self._session = cassandra_session(self.s, keyspace=self.s.cassandra_keyspace,
                                                             metadata=False)
            columns = ", ".join(CASSANDRA_COLUMNS)
            marks = ", ".join("?" for _ in CASSANDRA_COLUMNS)
            self._statements = {t: self._session.prepare(f"INSERT INTO {t} ({columns}) VALUES ({marks})")
                                for t in CASSANDRA_TABLES}
        return self._session

    def convert(self, p: dict) -> tuple:
        return cassandra_row(p)

    def batches(self, rows: list[tuple]):
        from cassandra.query import BatchStatement, BatchType

        size = max(1, self.s.cassandra_batch_rows)
        route, day = CASSANDRA_COLUMNS.index("route"), CASSANDRA_COLUMNS.index("flight_date")
        by_partition = sorted(rows, key=lambda r: (r[route], r[day]))
        for table, table_rows in zip(CASSANDRA_TABLES, (rows, by_partition)):
            for start in range(0, len(table_rows), size):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for row in table_rows[start:start + size]:
                    batch.add(self._statements[table], row)
                yield batch, ()

    def write(self, rows: list[tuple]) -> int:
        from cassandra.concurrent import execute_concurrent

        if not rows:
            return 0
        session = self.session()
        results = execute_concurrent(session, self.batches(rows), concurrency=self.concurrency,
                                     raise_on_first_error=True)
        failed = [r for r in results if not r.success]
        if failed:
            raise RuntimeError(f"{len(failed)} Cassandra batches failed: {failed[0].result_or_exc}")
        return len(rows)

    def reset(self):
        """Drop the connection after a failure so the next attempt reconnects."""
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None


def dead_letter(s: Settings, records: list[tuple[dict, str]]) -> None:
    """Send response records that cannot be archived to the dead-letter topic with the reason
    and where they came from (the record carries its _raw value, _topic, _partition, _offset)."""
    import json

    from confluent_kafka import Producer

    if not records:
        return
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap, "acks": "all"})
    for r, reason in records:
        producer.produce(s.dlq_topic, key=(r.get("UUID") or "").encode() or None, value=json.dumps({
            "reason": reason, "raw": r.get("_raw"), "topic": r.get("_topic"), "partition": r.get("_partition"),
            "offset": r.get("_offset"), "rejected_at": int(time.time() * 1000)}).encode())
    if producer.flush(30):
        raise RuntimeError("the dead-letter topic did not acknowledge every rejected record")


def missing_fields(record: dict, optional=("FlightNum",)) -> list[str]:
    return [k for k, v in record.items() if v is None and not k.startswith("_") and k not in optional]


def write_batch(writer, name: str, batch_id: int, predictions: Iterable[dict], stop=lambda: False,
                reject: Callable[[dict, str], None] | None = None) -> int:
    """Convert each prediction for the store (a record the store cannot take is passed to
    ``reject`` with the reason, never retried forever), then write them all, retrying while the
    store is unavailable."""
    rows = []
    for p in predictions:
        try:
            rows.append(writer.convert(p))
        except (KeyError, TypeError, ValueError) as exc:
            log.error("uuid=%s cannot be stored by %s: %s: %s", p.get("UUID"), name, type(exc).__name__, exc)
            if reject is not None:
                reject(p, f"{name} cannot store it: {type(exc).__name__}: {exc}")

    def attempt():
        try:
            return writer.write(rows)
        except Exception:
            if hasattr(writer, "reset"):
                writer.reset()
            raise

    began = time.monotonic()
    written = retry_forever(f"{name} batch {batch_id} ({len(rows)} predictions)", attempt, stop=stop)
    log.info("%s batch %d: %d predictions upserted in %.0f ms", name, batch_id, written,
             (time.monotonic() - began) * 1000)
    return written
