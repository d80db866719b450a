"""Outcomes in the streaming job: the join runs inside the ``archive-cassandra`` query, which
reads the outcome topic beside the response topic; ``archive-scored`` archives its results.

Each micro-batch of archive-cassandra, in order (one sequential writer, so a prediction and its
outcome arriving in different batches never race):

1. the batch's predictions are written to the prediction tables (as before outcomes existed);
2. its outcomes are validated on the driver with ``schema.validate_outcome`` (the web app's
   function; outcomes come at flight rates), bad ones go to the dead-letter topic with the
   reason and the field messages;
3. ``flightdelay.outcomes.Join`` scores what can be scored against the Cassandra tables and
   writes the scored predictions, the reports and the live metrics (idempotent per batch);
4. the scored predictions are produced to the scored topic, which ``archive-scored`` writes to
   the parquet archive by flight date (and which the replay reads to report progress).

Why a lookup in a store keyed for it and not a Spark stream-stream join: docs/streaming-job.md,
"Outcomes: the join".
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from flightdelay import kafka, schema
from flightdelay.config import Settings
from flightdelay.outcomes import Join, prediction_of, report_of
from flightdelay.stores import parquet
from flightdelay.stores.outcomes import CassandraJoinStore
from spark_jobs import sinks
from spark_jobs.queries import kafka_stream
from spark_jobs.validate import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

KAFKA_AT = "_kafka_at"  # arrival of a record on Kafka (epoch ms), kept beside its fields
KEY = "_key"


class Rejected(ValueError):
    """An outcome message the job refuses: ``reason`` and per-field messages."""

    def __init__(self, reason: str, fields: dict | None = None):
        super().__init__(reason)
        self.fields = fields or {}


def validate_message(raw: str | None, reference) -> dict:
    """The clean outcome of a message on the outcome topic, or ``Rejected``: the same contract
    as the web app's door (``schema.validate_outcome``), with the envelope required."""
    if raw is None:
        raise Rejected("empty message")
    if len(raw.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise Rejected(f"message larger than {MAX_MESSAGE_BYTES} bytes: {len(raw)}")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise Rejected("message is not a JSON object") from None
    if not isinstance(payload, dict):
        raise Rejected("message is not a JSON object")
    try:
        return schema.validate_outcome(payload, reference, envelope=True)
    except schema.ValidationError as exc:
        raise Rejected(f"invalid outcome: {exc}", exc.fields) from None


def query_id(checkpoint: str) -> str:
    """The id of the query whose checkpoint this is (Spark writes it once, when the checkpoint is
    made): with the batch id, it names a batch across restarts, and no other query's."""
    return json.loads((Path(checkpoint) / "metadata").read_text())["id"]


def in_topic_order(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (r["_partition"], r["_offset"]))


class Outcomes:
    """The outcome side of the archive-cassandra query (see the module docstring)."""

    def __init__(self, s: Settings, model_name: str, reference: Callable[[], object], checkpoint: str):
        self.s = s
        self.reference = reference
        self.checkpoint = checkpoint
        self.store = CassandraJoinStore(s, model_name, s.outcome_topic)
        self.join = Join(self.store, s.outcome_topic, s.outcome_horizon_s, s.outcome_window_s,
                         s.outcome_cache_partitions)
        self.dead_letters = sinks.DeadLetters(s)
        self._producer = None
        self._query_id = None

    topic_column = "_topic"

    @property
    def topics(self) -> list[str]:
        return [self.s.outcome_topic]

    def split(self, records: list[dict]) -> tuple[list[dict], list[dict]]:
        """(response records, outcome records) of a batch."""
        responses, outcomes = [], []
        for r in records:
            (outcomes if r[self.topic_column] == self.s.outcome_topic else responses).append(r)
        return responses, outcomes

    def lineage(self, batch_id: int) -> str:
        if self._query_id is None:
            self._query_id = query_id(self.checkpoint)
        return f"{self._query_id}:{batch_id}"

    def handle(self, name: str, batch_id: int, predictions: list[dict], outcome_records: list[dict],
               stop: Callable[[], bool]) -> None:
        """Steps 2-4 of the module docstring for one batch (its predictions are written)."""
        reports, rejected = [], []
        reference = self.reference()
        for record in in_topic_order(outcome_records):
            try:
                reports.append(report_of(validate_message(record["_raw"], reference), record[KAFKA_AT]))
            except Rejected as exc:
                rejected.append((record, exc))
        if rejected:
            log.warning("%s batch %d: %d invalid outcomes sent to the dead-letter topic (first: %s)", name, batch_id,
                        len(rejected), rejected[0][1])
            self.dead_letters.send([({**r, "_fields": exc.fields}, str(exc)) for r, exc in rejected])
        joined = []
        for p in in_topic_order(predictions):
            try:
                joined.append(prediction_of(p, p[KAFKA_AT]))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                log.error("uuid=%s not joined: %s: %s", p.get("UUID"), type(exc).__name__, exc)
        lineage = self.lineage(batch_id)

        def attempt():
            try:
                return self.join.process(joined, reports, [r[KAFKA_AT] for r, _ in rejected], lineage)
            except Exception:
                self.store.reset()
                raise

        began = time.monotonic()
        result = sinks.retry_forever(f"{name} batch {batch_id} join ({len(reports)} outcomes)", attempt, stop=stop)
        sinks.retry_forever(f"{name} batch {batch_id} scored records", lambda: self.publish(result.scored), stop=stop)
        if reports or result.scored:
            log.info("%s batch %d: %s in %.0f ms", name, batch_id, result.summary(), (time.monotonic() - began) * 1000)

    def publish(self, scored) -> int:
        if not scored:
            return 0
        if self._producer is None:
            self._producer = kafka.producer(self.s, {"linger.ms": 5})
        for s in scored:
            self._producer.produce(self.s.scored_topic, key=s.prediction.uuid.encode(),
                                   value=json.dumps(s.record()).encode())
        if self._producer.flush(30):
            raise RuntimeError("the scored topic did not acknowledge every scored prediction")
        return len(scored)


def start_scored_archive(spark: SparkSession, s: Settings, checkpoint: str):
    """``archive-scored``: the scored topic -> parquet under FD_SCORED_ARCHIVE_PATH, one
    directory per flight date; a scored record produced twice (a replayed batch) is dropped by
    UUID within FD_ARCHIVE_DEDUP_WINDOW of when it was scored."""
    records = scored_records(kafka_stream(spark, s, s.scored_topic, max_offsets=s.archive_max_offsets_per_trigger))
    return (parquet.stream_writer(records, s, path=parquet.scored_url(s), time_column="scored_at")
            .queryName("archive-scored").option("checkpointLocation", checkpoint)
            .trigger(processingTime=s.archive_trigger).start())


def scored_records(kafka_rows: DataFrame) -> DataFrame:
    parsed = F.from_json(F.col("value").cast("string"), schema.SCORED_DDL).alias("r")
    return (kafka_rows.select(parsed).select("r.*")
            .where(F.col("UUID").isNotNull() & F.col("FlightDate").isNotNull() & F.col("scored_at").isNotNull()))
