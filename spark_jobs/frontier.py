"""Where the predict query's answers got to, so that a restarted query does not answer again.

A real-time batch commits its offsets only when it ends (FD_REALTIME_INTERVAL, 15 min), so a
query stopped mid-batch (a model swap, a shadow model appearing or going, `make up` after `make
down`) would start again from the batch's first offsets and answer every request since then a
second time: 34,947 requests re-answered, each re-scored in shadow, at a challenger's arrival in
the loop's end-to-end test. Every record the query writes carries a Kafka header naming the
request it answers (``REQUEST_HEADER``: partition, offset and Kafka timestamp of the request);
before the query starts, the newest records of the response and dead-letter topics give, per
request partition, the newest request answered, and the query skips requests at or before it.

The skip is conservative: a request is skipped only if its offset AND its Kafka timestamp are at
or before the newest answered one of its partition (a recreated request topic starts its offsets
again, with later timestamps: nothing of it is skipped). A partition whose answers are not among
the newest records read, or a topic that cannot be read, skips nothing: at-least-once as before.
"""
from __future__ import annotations

import logging
import time
import uuid as uuidlib
from dataclasses import dataclass

from flightdelay import kafka
from flightdelay.config import Settings

log = logging.getLogger(__name__)

REQUEST_HEADER = "fd-request"
TAIL = 5000          # newest records read per output partition
READ_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Answered:
    """The newest request of one partition that has an answer."""
    offset: int
    timestamp_ms: int


def header_value(partition: int, offset: int, timestamp_ms: int) -> bytes:
    return f"{partition}:{offset}:{timestamp_ms}".encode()


def parse_header(value: bytes | None) -> tuple[int, Answered] | None:
    try:
        partition, offset, timestamp_ms = (int(x) for x in value.decode().split(":"))
    except (AttributeError, UnicodeDecodeError, ValueError):
        return None   # not ours (another producer, an older job): it says nothing
    return partition, Answered(offset, timestamp_ms)


def newest_answered(headers_seen) -> dict[int, Answered]:
    """Per request partition, the answered request with the highest offset, from the
    ``REQUEST_HEADER`` values of output records."""
    frontier: dict[int, Answered] = {}
    for value in headers_seen:
        parsed = parse_header(value)
        if parsed is None:
            continue
        partition, answered = parsed
        if partition not in frontier or answered.offset > frontier[partition].offset:
            frontier[partition] = answered
    return frontier


def describe(frontier: dict[int, Answered]) -> str:
    if not frontier:
        return "no answer found: the query starts from its checkpoint"
    return ", ".join(f"partition {p} up to offset {a.offset}" for p, a in sorted(frontier.items()))


def read_frontier(s: Settings, tail: int = TAIL, timeout_s: float = READ_TIMEOUT_S) -> dict[int, Answered]:
    """The newest answered request per request partition, from the newest ``tail`` records of
    each partition of the response and dead-letter topics."""
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(s, f"fd-frontier-{uuidlib.uuid4()}", {"enable.auto.commit": False})
    try:
        ends, starts = {}, []
        for topic in (s.response_topic, s.dlq_topic):
            metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if metadata is None or metadata.error is not None:
                continue
            for p in metadata.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                if high > low:
                    ends[(topic, p)] = high
                    starts.append(TopicPartition(topic, p, max(low, high - tail)))
        if not starts:
            return {}
        consumer.assign(starts)
        values, done, deadline = [], set(), time.monotonic() + timeout_s
        while len(done) < len(ends) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error():
                    continue
                values.extend(v for k, v in (message.headers() or []) if k == REQUEST_HEADER)
                if message.offset() + 1 >= ends[(message.topic(), message.partition())]:
                    done.add((message.topic(), message.partition()))
        if len(done) < len(ends):
            log.warning("the newest answers were not all read within %.0f s; the predict query may answer some "
                        "requests again", timeout_s)
        return newest_answered(values)
    finally:
        consumer.close()


def frontier_or_nothing(s: Settings) -> dict[int, Answered]:
    """``read_frontier``, or nothing to skip when Kafka cannot say (at-least-once as before)."""
    try:
        return read_frontier(s)
    except Exception as exc:  # Kafka away: the query starts anyway, from its checkpoint
        log.warning("where the answers got to is unknown (%s: %s); the predict query starts from its checkpoint "
                    "and may answer some requests again", type(exc).__name__, exc)
        return {}
