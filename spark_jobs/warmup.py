"""Warm the predict path before the job says it is up, so that the first users are not the ones
who pay for the JVM's cold start (issue 31: fast from the first second after `make up`).

A fresh JVM interprets Spark's generated code, the Kafka clients and the model's evaluation until
the JIT has seen them run thousands of times. Before the predict query starts, the same query
(same models, same frontier filter: the same plan, hence the same generated classes, which Spark
caches by their source) runs under another name on a private pair of topics and answers
FD_PREDICT_WARMUP_REQUESTS synthetic requests drawn from the served model's reference data. Then
it stops, its topics and checkpoint are removed, and the real query starts on compiled code.
The job writes its status (what `make up` waits for) only after this.

A warm-up that cannot finish (Kafka away, the timeout) is logged and the job starts anyway: it
would only be slower for its first requests, as before.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import replace

from flightdelay import kafka
from flightdelay.config import Settings
from flightdelay.reference import sample_requests
from flightdelay.serving import ServedModel, ShadowModel
from spark_jobs.queries import start_predict

log = logging.getLogger(__name__)

QUERY_NAME = "predict-warmup"
SUFFIX = "-warmup"


def warmup_settings(s: Settings) -> Settings:
    """``s`` with every topic the predict query touches replaced by a private one."""
    return replace(s, request_topic=s.request_topic + SUFFIX, response_topic=s.response_topic + SUFFIX,
                   dlq_topic=s.response_topic + SUFFIX, shadow_topic=s.shadow_topic + SUFFIX)


def warmup_topics(w: Settings) -> list[str]:
    return [w.request_topic, w.response_topic, w.shadow_topic]


def produce_requests(s: Settings, topic: str, requests: list[dict]) -> None:
    producer = kafka.producer(s, {"linger.ms": 5, "queue.buffering.max.messages": max(100_000, len(requests))})
    for request in requests:
        producer.produce(topic, key=request["UUID"].encode(), value=json.dumps(request).encode())
    if producer.flush(30):
        raise RuntimeError(f"Kafka did not take every warm-up request on {topic}")


def count_answers(s: Settings, topic: str, expected: int, deadline: float) -> int:
    """Records on ``topic`` (read from its start) until ``expected`` or ``deadline``."""
    consumer = kafka.consumer(s, f"{QUERY_NAME}-{time.time_ns()}",
                              {"auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = 0
    try:
        while seen < expected and time.monotonic() < deadline:
            seen += sum(1 for m in kafka.arrived_messages(consumer, timeout=0.5) if not m.error())
    finally:
        consumer.close()
    return seen


def warm_up(spark, s: Settings, served: ServedModel, shadow: ShadowModel | None, answered) -> dict | None:
    """Run the predict query on ``FD_PREDICT_WARMUP_REQUESTS`` synthetic requests on private
    topics; what it did (requests, answers, seconds), or None when it is switched off."""
    n = s.predict_warmup_requests
    if n <= 0:
        return None
    w = warmup_settings(s)
    topics = warmup_topics(w)
    checkpoint = tempfile.mkdtemp(prefix="predict-warmup-")
    began = time.monotonic()
    deadline = began + s.predict_warmup_timeout_s
    query = None
    answers = 0
    try:
        # The platform topics' partition count: the frontier filter names partitions, and the
        # warm-up must run the real query's plan.
        kafka.ensure_topics(s, topics)
        query = start_predict(spark, w, served, shadow, answered, name=QUERY_NAME, checkpoint=checkpoint)
        produce_requests(s, w.request_topic, sample_requests(served.reference, n, seed=31))
        answers = count_answers(s, w.response_topic, n, deadline)
    except Exception as exc:  # a cold first minute is no reason to stay down
        log.warning("warm-up of the predict path failed (%s: %s); starting without it", type(exc).__name__, exc)
    finally:
        if query is not None:
            query.stop()
        shutil.rmtree(checkpoint, ignore_errors=True)
        try:
            kafka.delete_topics(s, topics)
        except Exception as exc:  # clutter only: the next warm-up reuses them
            log.warning("warm-up topics not deleted: %s", exc)
    seconds = round(time.monotonic() - began, 1)
    log.info("warm-up of the predict path: %d of %d synthetic requests answered in %.1f s%s", answers, n, seconds,
             "" if answers >= n else " (timed out: FD_PREDICT_WARMUP_TIMEOUT_S)")
    return {"requests": n, "answered": answers, "seconds": seconds}
