"""The Kafka broker of the local stack: platform topics exist and carry messages both ways, and
the job's dead-letter path (spark_jobs.sinks.DeadLetters) reaches its topic."""
import dataclasses
import json
import time
import uuid

import pytest
from confluent_kafka import TopicPartition

from flightdelay import kafka
from flightdelay.kafka import ensure_topics
from harness.traffic import collect
from harness.wait import wait_for
from spark_jobs.sinks import DeadLetters


@pytest.fixture(scope="module")
def kafka_settings(stack):
    return stack.require("kafka")


def topics(s):
    return kafka.admin(s).list_topics(timeout=10).topics


def consume_until(consumer, wanted_keys, copies, timeout=30.0):
    """Messages of the wanted keys, by key, until each arrived ``copies`` times, or ``timeout``.
    Every other message is passed over: the platform's topics carry the platform's traffic too
    (the running job dead-letters and answers while the test reads)."""
    found = {}
    deadline = time.monotonic() + timeout
    while any(len(found.get(k, [])) < copies for k in wanted_keys) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        key = (msg.key() or b"").decode("utf-8", "replace")
        if key in wanted_keys:
            found.setdefault(key, []).append(msg)
    return found


def test_platform_topics_exist_with_two_partitions(kafka_settings):
    existing = topics(kafka_settings)
    for name in kafka_settings.platform_topics:
        assert name in existing, name
        assert len(existing[name].partitions) == kafka_settings.topic_partitions


def test_ensure_topics_is_idempotent(kafka_settings):
    name = f"test-idempotent-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_settings, [name])
    ensure_topics(kafka_settings, [name])
    # The controller has it once create_topics returns; the broker's metadata follows shortly.
    wait_for(lambda: name in topics(kafka_settings), 30, f"topic {name} in the broker's metadata", interval=0.2)
    assert len(topics(kafka_settings)[name].partitions) == kafka_settings.topic_partitions


@pytest.mark.parametrize("topic_attr", ["request_topic", "response_topic", "dlq_topic"])
def test_round_trip_on_each_platform_topic(kafka_settings, topic_attr):
    s = kafka_settings
    topic = getattr(s, topic_attr)
    keys = [str(uuid.uuid4()) for _ in range(5)]
    consumer = kafka.consumer(s, f"test-{uuid.uuid4()}", {"enable.auto.commit": False})
    # Read from the current end of each partition: fixed before producing, no waiting for a rebalance.
    partitions = topics(s)[topic].partitions
    consumer.assign([TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
                     for p in partitions])
    producer = kafka.producer(s)
    for _ in range(2):  # each key twice: a key must always land on the same partition
        for key in keys:
            producer.produce(topic, key=key, value=json.dumps({"UUID": key}).encode())
    assert producer.flush(10) == 0
    found = consume_until(consumer, keys, copies=2)
    consumer.close()
    assert sorted(found) == sorted(keys)
    for key, messages in found.items():
        assert [json.loads(m.value())["UUID"] for m in messages] == [key, key]
        assert len({m.partition() for m in messages}) == 1, f"key {key} landed on two partitions"


def test_dead_letters_reach_their_topic_with_reason_and_origin(kafka_settings):
    s = dataclasses.replace(kafka_settings, dlq_topic=f"test-dlq-{uuid.uuid4().hex[:8]}")
    ensure_topics(s, [s.dlq_topic])
    dead_letters = DeadLetters(s)
    record = {"UUID": str(uuid.uuid4()), "label": None, "_raw": '{"UUID": "..."}', "_topic": "resp",
              "_partition": 1, "_offset": 42}
    dead_letters.send([(record, "incomplete prediction record on resp: missing label")])
    dead_letters.send([({"_raw": "x", "_topic": "resp", "_partition": 0, "_offset": 3}, "no UUID at all")])
    first_producer = dead_letters._producer
    dead_letters.send([])  # nothing to send: nothing produced, the producer is kept
    assert dead_letters._producer is first_producer

    got = collect(s, s.dlq_topic, until=lambda ms: len(ms) >= 2, timeout=60)
    assert len(got) == 2
    by_reason = {json.loads(m.value())["reason"]: m for m in got}
    letter = json.loads(by_reason["incomplete prediction record on resp: missing label"].value())
    assert by_reason["incomplete prediction record on resp: missing label"].key().decode() == record["UUID"]
    assert {k: letter[k] for k in ("raw", "topic", "partition", "offset")} == {
        "raw": record["_raw"], "topic": "resp", "partition": 1, "offset": 42}
    assert isinstance(letter["rejected_at"], int)
    assert by_reason["no UUID at all"].key() is None
