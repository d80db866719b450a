"""The job's streaming queries (named in the Spark UI), each with its own checkpoint:

  predict            request topic -> validate -> features -> PipelineModel -> response topic
                     (or the dead-letter topic), real-time mode by default; while a shadow
                     model exists, each valid request scored by it too -> shadow topic
  archive-mongo      response topic -> MongoDB, insert-if-absent by UUID (micro-batch)
  archive-cassandra  response topic -> Cassandra, UUID in both keys      (micro-batch), and the
                     outcome topic joined with them (spark_jobs.outcomes)
  archive-hdfs       response topic -> parquet on HDFS by FlightDate      (micro-batch)
  (archive-scored, the scored predictions' parquet archive, is in spark_jobs.outcomes)

What each store holds and how it is written lives in ``flightdelay.stores``; here is only how
the queries read Kafka, batch and hand records over.
"""
from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from flightdelay import kafka
from flightdelay.config import Settings
from flightdelay.serving import ServedModel, ShadowModel
from flightdelay.stores import parquet
from spark_jobs import sinks
from spark_jobs.frontier import Answered, describe
from spark_jobs.transform import SOURCE_COLUMNS, parse_predictions, score

log = logging.getLogger(__name__)


PREDICT_QUERY = "predict"


def checkpoint_dir(s: Settings, query: str) -> str:
    return str(s.checkpoints / query)


def kafka_stream(spark: SparkSession, s: Settings, topic: str, *, limit: bool = True,
                 max_offsets: int | None = None) -> DataFrame:
    """The records of ``topic``; with ``limit``, at most ``max_offsets`` (default
    FD_MAX_OFFSETS_PER_TRIGGER) per micro-batch, so a backlog is taken in bounded batches."""
    reader = (spark.readStream.format("kafka").options(**kafka.spark_options(s))
              .option("subscribe", topic)
              .option("startingOffsets", s.starting_offsets)
              # Retention or a recreated topic must not stop the job; the gap is logged by Spark.
              .option("failOnDataLoss", "false"))
    if limit:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets or s.max_offsets_per_trigger))
    return reader.load()


def start_predict(spark: SparkSession, s: Settings, served: ServedModel, shadow: ShadowModel | None = None,
                  answered: dict[int, Answered] | None = None, *, name: str = PREDICT_QUERY, checkpoint: str | None = None):
    """The predict query: answers from ``served``; with ``shadow``, the same requests scored by
    the shadow model too, to the shadow topic (spark_jobs.transform.shadow_rows). Requests at or
    before ``answered`` (spark_jobs.frontier) were answered before a restart and are skipped.
    ``name`` and ``checkpoint``: another query of the same plan (spark_jobs.warmup)."""
    realtime = s.predict_trigger == "realtime"
    requests = kafka_stream(spark, s, s.request_topic, limit=not realtime)
    if answered:
        requests = requests.where(~already_answered(answered))
        log.info("query predict skips the requests answered before it started: %s", describe(answered))
    rows = score(requests, served, s, shadow)
    writer = (rows.writeStream.queryName(name).format("kafka").options(**kafka.spark_sink_options(s))
              .option("kafka.linger.ms", str(s.predict_linger_ms))
              .option("checkpointLocation", checkpoint or checkpoint_dir(s, "predict"))
              .outputMode("update"))
    writer = writer.trigger(realTime=s.realtime_interval) if realtime \
        else writer.trigger(processingTime="0 seconds")
    query = writer.start()
    log.info("query %s started (%s trigger) serving %s version %s (%s, %s engine); %s", name,
             "real-time" if realtime else "micro-batch", served.name, served.version, served.source, served.engine,
             "no shadow model" if shadow is None else
             f"version {shadow.model.version} ({shadow.role}, {shadow.model.engine} engine) in shadow to {s.shadow_topic}")
    return query


def already_answered(answered: dict[int, Answered]) -> Column:
    """True for a request row at or before the newest answered request of its partition, by
    offset and by Kafka timestamp both (a recreated topic's offsets start again, later)."""
    return reduce(lambda a, b: a | b, [
        (F.col("partition") == p) & (F.col("offset") <= a.offset) & (F.unix_millis(F.col("timestamp")) <= a.timestamp_ms)
        for p, a in sorted(answered.items())])


def collect_records(batch: DataFrame) -> list[dict]:
    """The micro-batch as plain dicts on the driver, through Arrow: row-by-row ``collect()``
    plus ``Row.asDict`` cost most of a store query's own CPU (docs/decisions.md)."""
    return batch.toArrow().to_pylist()


def start_store(spark: SparkSession, s: Settings, name: str, writer, stop,
                forward_incomplete: bool = False, outcomes=None) -> object:
    """A micro-batch query writing complete predictions through ``writer`` (a store writer of
    flightdelay.stores); what the store cannot take goes to the dead-letter topic. With
    ``outcomes`` (``spark_jobs.outcomes.Outcomes``) it reads the outcome topic too and, once a
    batch's predictions are written, joins the batch's outcomes and predictions."""
    dead_letters = sinks.DeadLetters(s)  # one producer for the query's life, not one per batch

    def write(batch: DataFrame, batch_id: int) -> None:
        records = collect_records(batch)
        records, outcome_records = outcomes.split(records) if outcomes else (records, [])
        complete, incomplete = [], []  # records keep _raw etc. for dead letters
        for record in records:
            (complete if record.pop("complete") else incomplete).append(record)
        if incomplete:
            log.warning("%s batch %d: %d incomplete response records not stored%s", name, batch_id,
                        len(incomplete), " (sent to the dead-letter topic)" if forward_incomplete else "")
            if forward_incomplete:
                dead_letters.send([(r, f"incomplete prediction record on {r['_topic']}: missing "
                                       f"{', '.join(sinks.missing_fields(r))}") for r in incomplete])
        rejected = []
        sinks.write_batch(writer, name, batch_id, complete, stop=stop,
                          reject=lambda record, reason: rejected.append((record, reason)))
        dead_letters.send(rejected)
        if outcomes:
            refused = {id(record) for record, _ in rejected}
            outcomes.handle(name, batch_id, [r for r in complete if id(r) not in refused], outcome_records, stop)

    topics = ",".join([s.response_topic, *(outcomes.topics if outcomes else [])])
    predictions = parse_predictions(kafka_stream(spark, s, topics), arrival=outcomes is not None)
    return (predictions.writeStream.queryName(name).foreachBatch(write)
            .option("checkpointLocation", checkpoint_dir(s, name))
            .trigger(processingTime=s.store_trigger).start())


def start_archive(spark: SparkSession, s: Settings):
    """The parquet archive (flightdelay.stores.parquet): the file sink's commit log makes each
    batch exactly-once; FD_ARCHIVE_TRIGGER sets how often files are written."""
    predictions = (parse_predictions(kafka_stream(spark, s, s.response_topic,
                                                  max_offsets=s.archive_max_offsets_per_trigger))
                   .where(F.col("complete")).drop("complete", *SOURCE_COLUMNS))
    return (parquet.stream_writer(predictions, s).queryName("archive-hdfs")
            .option("checkpointLocation", checkpoint_dir(s, "archive-hdfs"))
            .trigger(processingTime=s.archive_trigger).start())
