"""The streaming prediction job: one Spark application, several named queries.

Usage:
    python -m spark_jobs.predict_stream          run until SIGTERM / Ctrl-C (Spark UI on FD_SPARK_UI_PORT)

Queries (named in the Spark UI):
  predict            Kafka request topic -> validate -> features -> PipelineModel -> Kafka
                     response topic (key = UUID), or the dead-letter topic with the reasons.
                     Spark's real-time mode by default (FD_PREDICT_TRIGGER=realtime), which
                     keeps long-running tasks reading Kafka: milliseconds instead of a
                     micro-batch's hundreds. FD_PREDICT_TRIGGER=microbatch is the fallback.
  archive-mongo      response topic -> MongoDB insert-if-absent by UUID (micro-batch, 1 s)
  archive-cassandra  response topic -> Cassandra, UUID in both keys    (micro-batch, 1 s);
                     and the outcome topic: each prediction scored against its flight's
                     outcome, live metrics per model version (spark_jobs.outcomes)
  archive-hdfs       response topic -> parquet on HDFS by FlightDate   (micro-batch, FD_ARCHIVE_TRIGGER)
  archive-scored     scored topic -> parquet on HDFS by FlightDate     (micro-batch, FD_ARCHIVE_TRIGGER)

The archive queries read the response topic, not the request topic: a store outage stalls only
its own query, which resumes from its checkpointed offsets, and the user-facing path never
waits for a store. The Kafka sink is at-least-once (a replay after a crash can repeat a
response); every store write is keyed by UUID and the parquet query drops repeats by UUID.
When the registry alias moves, the predict query is restarted on the new model between
batches; the application (and the archive queries) keep running.

Before ``predict`` starts, the same query warms the JIT on synthetic requests on private topics
(``warmup``), so the first users after `make up` do not pay for the JVM's cold start.

Modules by role: ``transform`` (validate, score, parse: pure frames), ``queries`` (the
prediction and archive queries), ``outcomes`` (the outcome join and archive-scored),
``frontier`` (what a restarted predict query already answered), ``warmup``,
``supervisor`` (model hot-swap, restarts, status, priorities), ``sinks`` (retries and dead
letters around the store writers of ``flightdelay.stores``).
"""
from __future__ import annotations

import faulthandler
import logging
import signal

from flightdelay.config import load_settings
from flightdelay.spark import get_spark
from spark_jobs import warmup
from spark_jobs.queries import PREDICT_QUERY
from spark_jobs.supervisor import PredictionJob, install_progress_logging, lower_store_writer_priority

log = logging.getLogger("spark_jobs.predict_stream")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack to the log
    s = load_settings()
    spark = get_spark(s, "flight-delay-predict-stream", ui=True, long_running=True,
                      answer_path=(PREDICT_QUERY, warmup.QUERY_NAME), extra={
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
    log.info("streaming job running on %s; Spark UI %s", s.spark_master_url, s.spark_ui_url)
    try:
        job.run()
    finally:
        job.stop()
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
