"""flightdelay.kafka's pure helpers (no broker)."""
from flightdelay import kafka


class QueuedConsumer:
    """A consumer whose fetched messages are already queued: ``consume(n, timeout)`` of
    librdkafka waits the whole timeout for n messages, so the helper must never give it one."""

    def __init__(self, queued):
        self.queued = list(queued)
        self.waited = []

    def poll(self, timeout):
        self.waited.append(timeout)
        return self.queued.pop(0) if self.queued else None

    def consume(self, num_messages, timeout):
        self.waited.append(timeout)
        taken, self.queued = self.queued[:num_messages], self.queued[num_messages:]
        return taken


def test_arrived_messages_waits_only_for_the_first_message():
    consumer = QueuedConsumer(["a", "b", "c"])
    assert kafka.arrived_messages(consumer, max_messages=2, timeout=0.05) == ["a", "b"]
    assert consumer.waited == [0.05, 0]
    assert kafka.arrived_messages(consumer, max_messages=2, timeout=0.05) == ["c"]


def test_arrived_messages_is_empty_when_nothing_came_within_the_timeout():
    consumer = QueuedConsumer([])
    assert kafka.arrived_messages(consumer, timeout=0.01) == []
    assert consumer.waited == [0.01]
