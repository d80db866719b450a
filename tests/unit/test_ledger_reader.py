"""The fault suite's response reader (harness.ledger.Topics) keeps reading through a broker's
restart: it notices a partition it stopped reading, and counts offsets it jumped over."""
import time

from flightdelay.config import load_settings
from harness.ledger import Topics


class FakeMessage:
    def __init__(self, topic, partition, offset, key=b"k"):
        self._t, self._p, self._o, self._k = topic, partition, offset, key

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def key(self):
        return self._k


def test_the_ledgers_reader_notices_a_partition_it_stopped_reading(monkeypatch):
    """librdkafka's assign() consumer may stop fetching after a broker restart; the reader finds
    partitions whose end moved on while it read nothing, and counts offsets it jumped over."""
    s = load_settings(environ={})
    topics = Topics(s)
    topics.positions = {(s.response_topic, 0): 10, (s.response_topic, 1): 5}
    topics._take(FakeMessage(s.response_topic, 0, 10, b"a"))
    topics._take(FakeMessage(s.response_topic, 1, 8, b"b"))  # 5, 6, 7 never came
    assert topics.positions == {(s.response_topic, 0): 11, (s.response_topic, 1): 9}
    assert topics.skipped == 3 and topics.responses == {"a": 1, "b": 1}

    class Consumer:
        def get_watermark_offsets(self, tp, timeout, cached):
            return 0, {0: 11, 1: 20}[tp.partition]

    long_ago = time.monotonic() - Topics.STALL_S - 1
    assert topics._stalled(Consumer(), {(s.response_topic, 0): long_ago, (s.response_topic, 1): long_ago}) \
        == [f"{s.response_topic}[1] at 9 of 20"]
    assert topics._stalled(Consumer(), {(s.response_topic, 0): long_ago, (s.response_topic, 1): time.monotonic()}) == []
