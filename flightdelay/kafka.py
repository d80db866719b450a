"""Kafka clients (confluent-kafka) built from Settings in one place.

Every producer, consumer and admin client of the platform (the web app, the job's dead
letters, the launcher, the health checks, the bench, the tests) is made here, so each names the
brokers the same way (every one of FD_KAFKA_HOSTS: a client reaches the cluster while any broker
answers); a caller passes only what is particular to its use (for example the web app's
producer does not linger: a person is waiting). ``spark_options`` is the same for Spark's
Kafka source and sink, ``spark_sink_options`` adds what every producer gets.

Every producer writes with ``acks=all`` and idempotence: a write is acknowledged once every
in-sync replica has it (at least FD_KAFKA_MIN_INSYNC_REPLICAS of them, the topics' setting), so
an acknowledged request survives the loss of its partition leader, and a retry after a lost
acknowledgement is not written twice. librdkafka's default is neither (acks=all since 1.x, but
no idempotence); Java's producer, under Spark's Kafka sink, has both by default: both are named
anyway, so that no client's default decides it.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from flightdelay.config import Settings

log = logging.getLogger(__name__)


def client_config(s: Settings, overrides: Mapping | None = None) -> dict:
    return {"bootstrap.servers": s.kafka_bootstrap, **(overrides or {})}


# What every producer of the platform writes with; a caller may not weaken it.
DURABLE_PRODUCER = {"acks": "all", "enable.idempotence": True}


def producer_config(s: Settings, overrides: Mapping | None = None) -> dict:
    weakened = {k: v for k, v in (overrides or {}).items()
                if k in DURABLE_PRODUCER and str(v).lower() != str(DURABLE_PRODUCER[k]).lower()}
    if weakened:
        raise ValueError(f"every producer writes with {DURABLE_PRODUCER}; not {weakened}")
    return client_config(s, {**(overrides or {}), **DURABLE_PRODUCER})


def producer(s: Settings, overrides: Mapping | None = None):
    """A producer that waits for every in-sync replica (``acks=all``), with idempotence."""
    from confluent_kafka import Producer

    return Producer(producer_config(s, overrides))


def consumer(s: Settings, group_id: str, overrides: Mapping | None = None):
    from confluent_kafka import Consumer

    return Consumer(client_config(s, {"group.id": group_id, **(overrides or {})}))


def admin(s: Settings, overrides: Mapping | None = None):
    """An admin client whose librdkafka log lines go through ``logging``."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(s, {"logger": log, **(overrides or {})}))


def ensure_topics(s: Settings, topics, partitions: int | None = None) -> list[str]:
    """Create ``topics`` that do not exist yet (idempotent; a concurrent creator is fine), with
    ``partitions`` (default FD_KAFKA_PARTITIONS), FD_KAFKA_REPLICATION copies and
    min.insync.replicas FD_KAFKA_MIN_INSYNC_REPLICAS; return the ones created. An existing topic
    with fewer copies is left as it is, with a warning (more copies need a partition
    reassignment). Raises RuntimeError naming the topic a broker refused."""
    from confluent_kafka.admin import NewTopic

    client = admin(s)
    metadata = client.list_topics(timeout=10)
    for name in set(topics) & set(metadata.topics):
        copies = {len(p.replicas) for p in metadata.topics[name].partitions.values()}
        if copies and min(copies) < s.topic_replication:
            log.warning("topic %s has %d copies, the settings ask for %d: reassign its partitions "
                        "(kafka-reassign-partitions) to add copies", name, min(copies), s.topic_replication)
    wanted = [NewTopic(t, num_partitions=partitions or s.topic_partitions, replication_factor=s.topic_replication,
                       config={"min.insync.replicas": str(s.topic_min_insync)})
              for t in dict.fromkeys(topics) if t not in metadata.topics]
    created = []
    for topic, future in (client.create_topics(wanted, operation_timeout=30).items() if wanted else ()):
        try:
            future.result()
            created.append(topic)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"kafka: could not create topic {topic}: {exc}") from exc
    return created


def delete_topics(s: Settings, topics) -> list[str]:
    """Delete those of ``topics`` that exist (a bench's or a warm-up's own, once done: each one
    left behind costs the brokers partitions to watch and disk); return the deleted ones. Best
    effort: a topic that could not be deleted is only clutter, logged as a warning."""
    client = admin(s)
    existing = set(client.list_topics(timeout=10).topics)
    doomed = [t for t in dict.fromkeys(topics) if t in existing]
    deleted = []
    for topic, future in (client.delete_topics(doomed, operation_timeout=30).items() if doomed else ()):
        try:
            future.result()
            deleted.append(topic)
        except Exception as exc:
            log.warning("topic %s not deleted: %s", topic, exc)
    return deleted


def spark_options(s: Settings) -> dict[str, str]:
    """Options of Spark's Kafka source and sink (``kafka.``-prefixed client settings)."""
    return {f"kafka.{key}": str(value) for key, value in client_config(s).items()}


def spark_sink_options(s: Settings) -> dict[str, str]:
    """Options of Spark's Kafka sink: the client settings and every producer's durability."""
    return {**spark_options(s), **{f"kafka.{key}": str(value).lower() for key, value in DURABLE_PRODUCER.items()}}


def arrived_messages(consumer, max_messages: int = 1000, timeout: float = 0.05) -> list:
    """Messages as they arrive: wait at most ``timeout`` for the first, then take only what
    is already fetched. ``consumer.consume(n, timeout)`` waits for ``n`` messages or the whole
    timeout, so a reader that stamps arrival times after it (the benches) added up to the
    timeout to each latency: 29 ms at the median at 100 messages/s, against 2 ms this way."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)]
