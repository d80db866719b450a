"""Kafka clients (confluent-kafka) built from Settings in one place.

Every producer, consumer and admin client of the platform (the web app, the job's dead
letters, the launcher, the health checks, the bench, the tests) is made here, so each names the
broker the same way; a caller passes only what is particular to its use (for example the web
app's producer does not linger: a person is waiting). ``spark_options`` is the same for Spark's
Kafka source and sink.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from flightdelay.config import Settings

log = logging.getLogger(__name__)


def client_config(s: Settings, overrides: Mapping | None = None) -> dict:
    return {"bootstrap.servers": s.kafka_bootstrap, **(overrides or {})}


def producer(s: Settings, overrides: Mapping | None = None):
    """A producer that waits for every in-sync replica (``acks=all``) unless told otherwise."""
    from confluent_kafka import Producer

    return Producer(client_config(s, {"acks": "all", **(overrides or {})}))


def consumer(s: Settings, group_id: str, overrides: Mapping | None = None):
    from confluent_kafka import Consumer

    return Consumer(client_config(s, {"group.id": group_id, **(overrides or {})}))


def admin(s: Settings, overrides: Mapping | None = None):
    """An admin client whose librdkafka log lines go through ``logging``."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(s, {"logger": log, **(overrides or {})}))


def spark_options(s: Settings) -> dict[str, str]:
    """Options of Spark's Kafka source and sink (``kafka.``-prefixed client settings)."""
    return {f"kafka.{key}": str(value) for key, value in client_config(s).items()}


def arrived_messages(consumer, max_messages: int = 1000, timeout: float = 0.05) -> list:
    """Messages as they arrive: wait at most ``timeout`` for the first, then take only what
    is already fetched. ``consumer.consume(n, timeout)`` waits for ``n`` messages or the whole
    timeout, so a reader that stamps arrival times after it (the benches) added up to the
    timeout to each latency: 29 ms at the median at 100 messages/s, against 2 ms this way."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)]
