"""The Kafka broker of the local stack: platform topics exist and carry messages both ways."""
import json
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from infra.services.kafka import ensure_topics


@pytest.fixture(scope="module")
def kafka(stack):
    return stack.require("kafka")


def consume_until(consumer, wanted_keys, timeout=30.0):
    import time

    found = {}
    deadline = time.monotonic() + timeout
    while set(found) != set(wanted_keys) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        key = msg.key().decode()
        if key in wanted_keys:
            found[key] = msg
    return found


def test_platform_topics_exist_with_two_partitions(kafka):
    topics = AdminClient({"bootstrap.servers": kafka.kafka_bootstrap}).list_topics(timeout=10).topics
    for name in kafka.platform_topics:
        assert name in topics, name
        assert len(topics[name].partitions) == kafka.topic_partitions


def test_ensure_topics_is_idempotent(kafka):
    name = f"test-idempotent-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [name])
    ensure_topics(kafka, [name])
    assert name in AdminClient({"bootstrap.servers": kafka.kafka_bootstrap}).list_topics(timeout=10).topics


@pytest.mark.parametrize("topic_attr", ["request_topic", "response_topic", "dlq_topic"])
def test_round_trip_on_each_platform_topic(kafka, topic_attr):
    topic = getattr(kafka, topic_attr)
    keys = [str(uuid.uuid4()) for _ in range(5)]
    consumer = Consumer({"bootstrap.servers": kafka.kafka_bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "auto.offset.reset": "latest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    # Wait for the assignment so that 'latest' is fixed before we produce.
    consume_until(consumer, ["__none__"], timeout=5)
    while not consumer.assignment():
        consumer.poll(0.2)
    producer = Producer({"bootstrap.servers": kafka.kafka_bootstrap})
    for key in keys:
        producer.produce(topic, key=key, value=json.dumps({"UUID": key}).encode())
    assert producer.flush(10) == 0
    found = consume_until(consumer, keys)
    consumer.close()
    assert sorted(found) == sorted(keys)
    assert all(json.loads(found[k].value())["UUID"] == k for k in keys)
    # Keyed messages land by key hash; with 5 keys both partitions are normally used, but the
    # guarantee we rely on is only that each key maps to a valid partition.
    assert {m.partition() for m in found.values()} <= set(range(kafka.topic_partitions))
