"""The streaming prediction job: one Spark application, several named queries.

Usage:
    python -m spark_jobs.predict_stream          run until SIGTERM / Ctrl-C (Spark UI on FD_SPARK_UI_PORT)

Queries (named in the Spark UI):
  predict            Kafka request topic -> validate -> features -> PipelineModel -> Kafka
                     response topic (key = UUID), or the dead-letter topic with the reasons.
                     Spark's real-time mode by default (FD_PREDICT_TRIGGER=realtime), which
                     keeps long-running tasks reading Kafka: milliseconds instead of a
                     micro-batch's hundreds. FD_PREDICT_TRIGGER=microbatch is the fallback.
  archive-mongo      response topic -> MongoDB upsert by UUID          (micro-batch, 1 s)
  archive-cassandra  response topic -> Cassandra, UUID in both keys    (micro-batch, 1 s)
  archive-hdfs       response topic -> parquet on HDFS by FlightDate   (micro-batch, FD_ARCHIVE_TRIGGER)

The archive queries read the response topic, not the request topic: a store outage stalls only
its own query, which resumes from its checkpointed offsets, and the user-facing path never
waits for a store. The Kafka sink is at-least-once (a replay after a crash can repeat a
response); every store write is keyed by UUID and the parquet query drops repeats by UUID.
When the registry alias moves, the predict query is restarted on the new model between
batches; the application (and the archive queries) keep running.
"""
from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from flightdelay import schema
from flightdelay.config import Settings, load_settings
from flightdelay.features import PREDICTION_COLUMN, PROBABILITY_COLUMN, add_features
from flightdelay.registry import ServedModel, champion_version, load_registered, load_served_model
from flightdelay.spark import get_spark
from spark_jobs import sinks
from spark_jobs.validate import ERRORS, error_summary, is_valid, validated

log = logging.getLogger("spark_jobs.predict_stream")


def checkpoint_dir(s: Settings, query: str) -> str:
    return str(s.state / "spark" / "checkpoints" / query)


# ---------------------------------------------------------------------------------------------
# The prediction transform (pure: batch or streaming frame in, Kafka rows out)
# ---------------------------------------------------------------------------------------------
def placeholder_request(served: ServedModel) -> dict:
    """A request the model can always score, substituted into invalid rows so that one
    projection serves both outcomes; the invalid rows' scores are never used."""
    first_route = sorted(served.reference.routes)[0]
    origin, dest = first_route.split(schema.ROUTE_SEPARATOR)
    return {"Carrier": sorted(served.reference.carriers)[0], "Origin": origin, "Dest": dest,
            "FlightDate": "2013-01-01", "CRSDepTime": 1200, "CRSArrTime": 1400, "DepDelay": 0.0}


def score(requests: DataFrame, served: ServedModel, s: Settings) -> DataFrame:
    """Kafka request rows (key, value, topic, partition, offset, timestamp) -> Kafka output rows
    (key, value, topic): a prediction for the response topic or a reason for the dead-letter topic."""
    frame = validated(requests.withColumnRenamed("topic", "source_topic"), served.reference)
    valid = is_valid()
    safe = {name: F.when(valid, F.col(name)).otherwise(F.lit(value))
            for name, value in placeholder_request(served).items()}
    frame = frame.withColumns(safe)
    scored = served.pipeline.transform(add_features(frame, served.reference))

    from pyspark.ml.functions import vector_to_array

    labels = F.array(*[F.lit(schema.LABELS[c]) for c in sorted(schema.LABELS)])
    prediction = F.col(PREDICTION_COLUMN).cast("int")
    now_ms = F.expr("CAST(reflect('java.lang.System', 'currentTimeMillis') AS BIGINT)")
    response_columns = {
        "Route": F.col("Route"), "Distance": F.col("Distance"), "prediction": prediction,
        "label": F.element_at(labels, prediction + 1),
        "probabilities": vector_to_array(F.col(PROBABILITY_COLUMN)),
        "model_name": F.lit(served.name), "model_version": F.lit(served.version),
        "predicted_at": now_ms,
    }
    response = F.to_json(F.struct(*[(response_columns[n] if n in response_columns else F.col(n)).alias(n)
                                    for n in schema.RESPONSE_FIELDS]))
    dead_letter = F.to_json(F.struct(
        error_summary().alias("reason"), F.col(ERRORS).alias("fields"),
        F.col("_text").alias("raw"), F.base64(F.col("value")).alias("raw_base64"),
        F.col("key").cast("string").alias("key"), F.col("source_topic").alias("topic"),
        F.col("partition"), F.col("offset"), F.unix_millis(F.col("timestamp")).alias("timestamp"),
        now_ms.alias("rejected_at")))
    return scored.select(
        F.when(valid, F.col("UUID").cast("binary")).otherwise(F.col("key")).alias("key"),
        F.when(valid, response).otherwise(dead_letter).alias("value"),
        F.when(valid, F.lit(s.response_topic)).otherwise(F.lit(s.dlq_topic)).alias("topic"),
    )


OPTIONAL_RESPONSE_FIELDS = ("FlightNum",)


def parse_predictions(kafka_rows: DataFrame) -> DataFrame:
    """Response-topic rows -> one column per response field, plus ``complete``: every
    non-optional field is there. Anything may be produced to a topic; an incomplete record is
    never archived, and the archive-mongo query forwards it to the dead-letter topic."""
    parsed = F.from_json(F.col("value").cast("string"), schema.RESPONSE_DDL)
    required = [F.col(n).isNotNull() for n in schema.RESPONSE_FIELDS if n not in OPTIONAL_RESPONSE_FIELDS]
    complete = required[0]
    for condition in required[1:]:
        complete = complete & condition
    return (kafka_rows.select(parsed.alias("p"), F.col("value").cast("string").alias("_raw"),
                              F.col("topic").alias("_topic"), F.col("partition").alias("_partition"),
                              F.col("offset").alias("_offset"))
            .select("p.*", "_raw", "_topic", "_partition", "_offset")
            .withColumn("complete", F.coalesce(complete, F.lit(False))))


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------
def kafka_stream(spark: SparkSession, s: Settings, topic: str, *, limit: bool = True) -> DataFrame:
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", s.kafka_bootstrap)
              .option("subscribe", topic)
              .option("startingOffsets", s.starting_offsets)
              # Retention or a recreated topic must not stop the job; the gap is logged by Spark.
              .option("failOnDataLoss", "false"))
    if limit:
        reader = reader.option("maxOffsetsPerTrigger", str(s.max_offsets_per_trigger))
    return reader.load()


def start_predict(spark: SparkSession, s: Settings, served: ServedModel):
    realtime = s.predict_trigger == "realtime"
    rows = score(kafka_stream(spark, s, s.request_topic, limit=not realtime), served, s)
    writer = (rows.writeStream.queryName("predict").format("kafka")
              .option("kafka.bootstrap.servers", s.kafka_bootstrap)
              .option("kafka.linger.ms", str(s.predict_linger_ms))
              .option("checkpointLocation", checkpoint_dir(s, "predict"))
              .outputMode("update"))
    writer = writer.trigger(realTime=s.realtime_interval) if realtime \
        else writer.trigger(processingTime="0 seconds")
    query = writer.start()
    log.info("query predict started (%s trigger) serving %s version %s (%s)",
             "real-time" if realtime else "micro-batch", served.name, served.version, served.source)
    return query


SOURCE_COLUMNS = ("_raw", "_topic", "_partition", "_offset")


def collect_records(batch: DataFrame) -> list[dict]:
    """The micro-batch as plain dicts on the driver, through Arrow: row-by-row ``collect()``
    plus ``Row.asDict`` cost about 60-100 us a record here, most of a store query's own CPU."""
    return batch.toArrow().to_pylist()


def start_store(spark: SparkSession, s: Settings, name: str, writer, stop,
                forward_incomplete: bool = False) -> object:
    def write(batch: DataFrame, batch_id: int) -> None:
        complete, incomplete = [], []  # records keep _raw etc. for dead letters
        for record in collect_records(batch):
            (complete if record.pop("complete") else incomplete).append(record)
        if incomplete:
            log.warning("%s batch %d: %d incomplete response records not stored%s", name, batch_id,
                        len(incomplete), " (sent to the dead-letter topic)" if forward_incomplete else "")
            if forward_incomplete:
                sinks.dead_letter(s, [(r, f"incomplete prediction record on {r['_topic']}: missing "
                                          f"{', '.join(sinks.missing_fields(r))}") for r in incomplete])
        rejected = []
        sinks.write_batch(writer, name, batch_id, complete, stop=stop,
                          reject=lambda record, reason: rejected.append((record, reason)))
        sinks.dead_letter(s, rejected)

    predictions = parse_predictions(kafka_stream(spark, s, s.response_topic))
    return (predictions.writeStream.queryName(name).foreachBatch(write)
            .option("checkpointLocation", checkpoint_dir(s, name))
            .trigger(processingTime=s.store_trigger).start())


def start_archive(spark: SparkSession, s: Settings):
    """Parquet under FD_PREDICTION_ARCHIVE_PATH, one directory per FlightDate. The file sink's
    commit log makes each batch exactly-once; repeats of a UUID (a replayed response) are
    dropped within FD_ARCHIVE_DEDUP_WINDOW of requested_at. One file per flight date per
    trigger (coalesce(1), FD_ARCHIVE_TRIGGER) keeps HDFS free of a small-file storm."""
    predictions = (parse_predictions(kafka_stream(spark, s, s.response_topic))
                   .where(F.col("complete")).drop("complete", *SOURCE_COLUMNS))
    deduped = (predictions.withColumn("requested_ts", F.timestamp_millis(F.col("requested_at")))
               .withWatermark("requested_ts", s.archive_dedup_window)
               .dropDuplicatesWithinWatermark(["UUID"]))
    return (deduped.coalesce(1).writeStream.queryName("archive-hdfs").format("parquet")
            .partitionBy("FlightDate")
            .option("path", f"{s.hdfs_url}{s.prediction_archive_path}")
            .option("checkpointLocation", checkpoint_dir(s, "archive-hdfs"))
            .trigger(processingTime=s.archive_trigger).start())


# ---------------------------------------------------------------------------------------------
# Supervision: model hot-swap, restarts, progress logging
# ---------------------------------------------------------------------------------------------
@dataclass
class PredictionJob:
    spark: SparkSession
    settings: Settings
    stores: bool = True
    stopping: threading.Event = field(default_factory=threading.Event)
    served: ServedModel | None = None
    queries: dict = field(default_factory=dict)
    factories: dict = field(default_factory=dict)

    def start(self) -> None:
        s = self.settings
        self.served = load_served_model(s)
        self.factories = {"predict": lambda: start_predict(self.spark, s, self.served)}
        if self.stores:
            self.factories.update({
                "archive-mongo": lambda: start_store(self.spark, s, "archive-mongo",
                                                     sinks.MongoWriter(s), self.stopping.is_set,
                                                     forward_incomplete=True),
                "archive-cassandra": lambda: start_store(self.spark, s, "archive-cassandra",
                                                         sinks.CassandraWriter(s), self.stopping.is_set),
                "archive-hdfs": lambda: start_archive(self.spark, s),
            })
        for name, factory in self.factories.items():
            self.queries[name] = factory()
        self.write_status()

    def check_model(self) -> bool:
        """Swap in the registry's champion if it moved; return True if a swap happened."""
        version = champion_version(self.settings)
        if version is None or self.served is None or version == self.served.version:
            return False
        log.info("alias %s moved to version %s (serving %s); loading it", self.settings.model_alias,
                 version, self.served.version)
        try:
            candidate = load_registered(self.settings, version)
        except Exception:  # keep serving the current model; try again at the next poll
            log.exception("could not load version %s; still serving %s", version, self.served.version)
            return False
        self.queries["predict"].stop()
        self.served = candidate
        self.queries["predict"] = self.factories["predict"]()
        return True

    def check_queries(self) -> None:
        for name, query in list(self.queries.items()):
            if query.isActive or self.stopping.is_set():
                continue
            log.error("query %s stopped: %s; restarting it from its checkpoint", name, query.exception())
            time.sleep(2)
            self.queries[name] = self.factories[name]()

    def run(self) -> None:
        while not self.stopping.wait(self.settings.model_poll_s):
            self.check_queries()
            self.check_model()
            self.write_status()

    def write_status(self) -> None:
        """A small JSON file the launcher's readiness probe, the status page and operators read."""
        status = {
            "updated_at": int(time.time() * 1000),
            "model": {"name": self.served.name, "version": self.served.version, "source": self.served.source},
            "queries": {name: {"active": q.isActive, "id": str(q.id), **query_progress(q)}
                        for name, q in self.queries.items()},
        }
        path = self.settings.streaming_status_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1))
        tmp.replace(path)

    def stop(self) -> None:
        self.stopping.set()
        for name, query in self.queries.items():
            try:
                query.stop()
                log.info("query %s stopped", name)
            except Exception:  # stopping is best effort; Spark exits with the process anyway
                log.exception("query %s did not stop cleanly", name)


def offset_total(offsets) -> int | None:
    """Sum of a Kafka source offset ({"topic": {"partition": offset}}, or its JSON text)."""
    if isinstance(offsets, str):
        offsets = json.loads(offsets)
    if not isinstance(offsets, dict):
        return None
    return sum(int(o) for partitions in offsets.values() for o in partitions.values())


def query_progress(query) -> dict:
    """From the query's last progress report: its batch, rows/s, and ``backlog``, the Kafka
    records that were already waiting beyond that batch (an archive query behind a burst)."""
    try:
        progress = query.lastProgress
        if not progress:
            return {}
        source = progress["sources"][0]
        end, latest = offset_total(source["endOffset"]), offset_total(source["latestOffset"])
        return {"batch": progress["batchId"], "rows_per_s": round(progress["processedRowsPerSecond"] or 0),
                "backlog": None if end is None or latest is None else max(0, latest - end)}
    except Exception:  # progress is informative only; never let it stop the supervisor
        log.debug("no progress for query %s", query.name, exc_info=True)
        return {}


def install_progress_logging(spark: SparkSession) -> None:
    from pyspark.sql.streaming import StreamingQueryListener

    class ProgressLog(StreamingQueryListener):
        def onQueryStarted(self, event):
            log.info("query %s started (id %s)", event.name, event.id)

        def onQueryProgress(self, event):
            p = event.progress
            if p.numInputRows:
                log.info("query %s batch %s: %d rows, %.0f rows/s, %s", p.name, p.batchId, p.numInputRows,
                         p.processedRowsPerSecond or 0, p.durationMs.get("triggerExecution"))
            for op in p.stateOperators or []:
                dropped = getattr(op, "numRowsDroppedByWatermark", 0)
                if dropped:
                    log.warning("query %s dropped %d rows older than the dedup window", p.name, dropped)

        def onQueryIdle(self, event):
            pass

        def onQueryTerminated(self, event):
            if event.exception:
                log.error("query %s terminated: %s", event.id, event.exception.splitlines()[0])

    spark.streams.addListener(ProgressLog())


def lower_store_writer_priority(nice: int) -> None:
    """Renice this Python process's threads (not the Spark JVM, started before): here run only
    the archive queries' store writers and the supervisor, while the predict query lives in the
    JVM. Threads started later inherit the niceness of the thread that starts them."""
    if nice <= 0:
        return
    for task in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(task), nice)
        except OSError:  # a thread that just ended
            pass
    log.info("store writers run at niceness %d (FD_STORE_NICE); the predict query keeps priority", nice)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack to the log
    s = load_settings()
    spark = get_spark(s, "flight-delay-predict-stream", ui=True, long_running=True, extra={
        "spark.sql.streaming.stateStore.providerClass":
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    })
    install_progress_logging(spark)
    lower_store_writer_priority(s.store_nice)
    job = PredictionJob(spark, s)

    def on_signal(signum, _frame):
        log.info("signal %s: stopping the queries", signum)
        job.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    job.start()
    log.info("streaming job running; Spark UI http://%s:%s", s.host, s.spark_ui_port)
    try:
        job.run()
    finally:
        job.stop()
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
