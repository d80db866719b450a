"""Accounting of requests against the platform's outputs, shared by the fault-injection suite
(tests/faults) and the soak (bench/soak.py): a steady producer of valid requests, a reader of
the response and dead-letter topics, and counts per UUID in every store.

Every accepted request (Kafka acknowledged it) must end up as exactly one response on the
response topic and exactly one record in MongoDB, in both Cassandra tables, in the HDFS parquet
archive and in NiFi's text archive. ``tally`` says, per output, how many were found, lost and
duplicated. The stores hold everything the platform ever archived, so only the UUIDs of this
run are counted; immutable archive files (parquet, NiFi text) are read once and remembered.
"""
from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from flightdelay import kafka
from flightdelay.config import Settings
from flightdelay.stores import cassandra, mongo, parquet, text_archive
from harness.traffic import sample_requests

log = logging.getLogger(__name__)

STORES = ("mongo", "cassandra_by_uuid", "cassandra_by_route_day", "parquet", "nifi")
OUTPUTS = ("responses",) + STORES


class Load(threading.Thread):
    """Produces valid requests to the request topic at ``rate`` per second until ``stop()``.
    ``accepted`` holds the requests Kafka acknowledged, ``failed`` counts those it did not
    (e.g. a broker down for longer than the producer's delivery timeout): only accepted
    requests are owed an answer. ``mark(label)`` tags the requests sent from then on, so a
    fault case can tell "before", "during" and "after" apart."""

    def __init__(self, s: Settings, reference, rate: float, seed: int = 1, name: str = "load", dates: int = 3):
        super().__init__(daemon=True, name=name)
        self.s = s
        self.reference = reference
        self.rate = rate
        self.seed = seed
        # Real requests cluster on a few flight dates (today's flights); spread over a year, as
        # sample_requests does, every parquet trigger would write one small file per date.
        self.dates = [f"2013-{(seed * 7 + 3 * i) % 12 + 1:02d}-{(seed + 5 * i) % 28 + 1:02d}" for i in range(dates)]
        self.accepted: dict[str, dict] = {}
        self.sent = 0
        self.failed = 0
        self.phase = "before"
        self.phases: dict[str, str] = {}
        self.last_accepted_at = 0.0
        self.before_send = None  # called with each request just before it is produced
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def mark(self, phase: str) -> None:
        self.phase = phase

    def sent_before(self, phase: str) -> list[str]:
        """UUIDs of the requests sent in every phase but ``phase`` (mark it first): a fault's
        backlog. Read under the lock: the producer thread keeps adding."""
        with self._lock:
            return [u for u, p in self.phases.items() if p != phase]

    def run_for(self, seconds: float) -> None:
        """Let the load run ``seconds`` (a soak's length or a fault's outage: the time is the
        point, not a condition to wait for); raise at once if the producer thread died."""
        deadline = time.monotonic() + max(0.0, seconds)
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise RuntimeError(f"the load producer {self.name} stopped")
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def stop(self, timeout: float = 120.0) -> None:
        """Stop sending and wait until Kafka acknowledged (or failed) everything sent."""
        self._halt.set()
        self.join(timeout)

    def _delivered(self, request: dict):
        def on_delivery(err, _msg):
            with self._lock:
                if err is None:
                    self.accepted[request["UUID"]] = request
                    self.last_accepted_at = time.monotonic()
                else:
                    self.failed += 1
                    log.warning("uuid=%s not accepted by Kafka: %s", request["UUID"], err)
        return on_delivery

    def run(self) -> None:
        producer = kafka.producer(self.s, {"linger.ms": 5, "enable.idempotence": True,
                                           "message.timeout.ms": 120_000})
        began, batch_no, i = time.monotonic(), 0, 0
        while not self._halt.is_set():
            batch_no += 1
            for request in sample_requests(self.reference, max(1, int(self.rate * 10)),
                                           seed=self.seed * 100_000 + batch_no):
                if self._halt.is_set():
                    break
                while (delay := began + i / self.rate - time.monotonic()) > 0 and not self._halt.is_set():
                    # librdkafka's poll takes whole milliseconds: under 1 ms it returns at once, and
                    # at 1,000/s this loop spun on half a core; what falls due meanwhile goes out at once.
                    producer.poll(min(max(delay, 0.001), 0.2))  # serves delivery reports while it waits
                if self._halt.is_set():
                    break
                if self.before_send is not None:
                    self.before_send(request)
                request["requested_at"] = int(time.time() * 1000)
                request["FlightDate"] = self.dates[i % len(self.dates)]
                with self._lock:
                    self.phases[request["UUID"]] = self.phase
                producer.produce(self.s.request_topic, key=request["UUID"].encode(),
                                 value=json.dumps(request).encode(), on_delivery=self._delivered(request))
                self.sent += 1
                i += 1
        remaining = producer.flush(180)
        if remaining:
            log.error("%d requests still unacknowledged after 180 s", remaining)

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return dict(self.accepted)


class Topics(threading.Thread):
    """Reads the response and dead-letter topics from their ends at start (wait on ``ready``
    before producing): responses per UUID key, with the arrival time of the first, and dead
    letters by key.

    A reader that stops reading would count every later answer as lost, so it watches itself:
    librdkafka's consumer with a manual assignment occasionally stops fetching a partition for
    good after its leader's broker restarts (confluentinc/librdkafka#5153, open; the fault
    suite's reader went silent after its Kafka restart case while the platform kept answering).
    Every ``CHECK_S`` it compares each partition's end with where it has read to; a partition
    that has more to read and gave nothing for ``STALL_S`` gets a new consumer, assigned at
    exactly the offsets read so far (nothing skipped, nothing read twice). ``reassignments``
    counts those, ``skipped`` the offsets the consumer itself jumped over (an offset reset)."""

    CHECK_S = 5.0
    STALL_S = 15.0

    def __init__(self, s: Settings):
        super().__init__(daemon=True, name="topics")
        self.s = s
        self.responses: Counter = Counter()
        self.first_response_at: dict[str, float] = {}
        self.dead_letters: dict[str, list[dict]] = {}
        self.positions: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to read
        self.reassignments = 0
        self.skipped = 0
        self.ready = threading.Event()
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        """Partitions are assigned by hand from their end offsets at start, with no consumer
        group: a group rebalance (the broker fenced under load, a Kafka restart) would send an
        uncommitted consumer back to "latest" and skip what arrived meanwhile."""
        from confluent_kafka import TopicPartition

        consumer = self._consumer()
        for topic in (self.s.response_topic, self.s.dlq_topic):
            for p in consumer.list_topics(topic, timeout=30).topics[topic].partitions:
                high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                self.positions[(topic, p)] = high
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in self.positions.items()])
        self.ready.set()
        progress = dict.fromkeys(self.positions, time.monotonic())
        next_check = time.monotonic() + self.CHECK_S
        try:
            while not self._halt.is_set():
                for msg in kafka.arrived_messages(consumer, timeout=0.2):
                    if msg.error():
                        log.info("response reader: %s", msg.error())
                        continue
                    self._take(msg)
                    progress[(msg.topic(), msg.partition())] = time.monotonic()
                if time.monotonic() > next_check:
                    stalled = self._stalled(consumer, progress)
                    if stalled:
                        log.warning("response reader stalled on %s: a new consumer from the offsets read so far",
                                    ", ".join(stalled))
                        consumer.close()
                        consumer = self._consumer()
                        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in self.positions.items()])
                        self.reassignments += 1
                        progress = dict.fromkeys(self.positions, time.monotonic())
                    next_check = time.monotonic() + self.CHECK_S
        finally:
            consumer.close()

    def _consumer(self):
        return kafka.consumer(self.s, f"ledger-{time.time_ns()}", {"enable.auto.commit": False})

    def _take(self, msg) -> None:
        where = (msg.topic(), msg.partition())
        expected = self.positions.get(where, msg.offset())
        if msg.offset() > expected:
            # Offsets of a compacted or transactional topic may have gaps; these topics have
            # none, so a jump is the consumer resetting its position.
            self.skipped += msg.offset() - expected
            log.warning("response reader skipped offsets %d-%d of %s[%d]", expected, msg.offset() - 1, *where)
        self.positions[where] = msg.offset() + 1
        key = (msg.key() or b"").decode("utf-8", "replace")
        if msg.topic() == self.s.dlq_topic:
            try:
                self.dead_letters.setdefault(key, []).append(json.loads(msg.value()))
            except (TypeError, ValueError):
                self.dead_letters.setdefault(key, []).append({"undecodable": True})
            return
        self.responses[key] += 1
        self.first_response_at.setdefault(key, time.monotonic())

    def _stalled(self, consumer, progress: dict) -> list[str]:
        """Partitions with more to read than read, and nothing read for STALL_S."""
        from confluent_kafka import KafkaException, TopicPartition

        out = []
        for (topic, p), offset in self.positions.items():
            if time.monotonic() - progress[(topic, p)] < self.STALL_S:
                continue
            try:
                high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
            except KafkaException:  # its leader is being elected: ask at the next check
                continue
            if high > offset:
                out.append(f"{topic}[{p}] at {offset} of {high}")
        return out

    def answered(self, uuids) -> int:
        return sum(1 for u in uuids if self.responses.get(u))


# -- counting records per UUID in the stores ---------------------------------------------------
class Archives:
    """Counts per UUID in the two file archives (HDFS parquet, NiFi text). Both only ever add
    complete, immutable files, so each file is read once and only files written since
    ``since`` (epoch s; default: a minute before this object was made) are read at all."""

    def __init__(self, s: Settings, since: float | None = None):
        self.s = s
        self.since = time.time() - 60 if since is None else since
        self._parquet: dict[str, list[str]] = {}
        self._nifi: dict[str, list[str]] = {}
        self._hdfs = None

    def parquet_counts(self) -> Counter:
        import pyarrow.parquet as pq

        if self._hdfs is None:  # one HTTP session, its connections reused
            self._hdfs = parquet.hdfs_client(self.s)
        hdfs = self._hdfs
        new = [p for p in parquet.committed_archive_files(hdfs, self.s, since_ms=int(self.since * 1000))
               if p not in self._parquet]

        def read(path: str) -> list[str]:
            with hdfs.read(path) as reader:
                return pq.read_table(io.BytesIO(reader.read()), columns=["UUID"]).column("UUID").to_pylist()

        with ThreadPoolExecutor(8) as pool:
            for path, uuids in zip(new, pool.map(read, new)):
                self._parquet[path] = uuids
        return Counter(u for uuids in self._parquet.values() for u in uuids)

    def nifi_counts(self) -> Counter:
        for f in text_archive.archive_files(self.s.nifi_archive):
            if f.name not in self._nifi and f.cut_at.timestamp() >= self.since:
                self._nifi[f.name] = [r.get("UUID") for r in text_archive.read_predictions(f.path)]
        return Counter(u for uuids in self._nifi.values() for u in uuids)


def mongo_counts(s: Settings, uuids) -> Counter:
    """Documents per wanted UUID (``_id`` is unique, so 0 or 1; one scan of the collection:
    FerretDB would scan it for every ``$in`` anyway)."""
    wanted = set(uuids)
    with mongo.client(s, timeout_ms=30_000) as client:
        return Counter(u for u in mongo.stored_uuids(mongo.collection(client, s)) if u in wanted)


def cassandra_counts(s: Settings, uuids) -> tuple[Counter, Counter]:
    """Rows per wanted UUID in predictions_by_uuid and predictions_by_route_day (full scans:
    a run's requests span most routes and dates)."""
    wanted = set(uuids)
    cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace, timeout=60)
    try:
        by_uuid = Counter(r.uuid for r in sess.execute("SELECT uuid FROM predictions_by_uuid") if r.uuid in wanted)
        by_route = Counter(cassandra.route_day_rows_per_uuid(sess, wanted))
    finally:
        cluster.shutdown()
    return by_uuid, by_route


def present_in_mongo(s: Settings, uuids) -> bool:
    """Cheap check (lookups by _id) that every one of a few ``uuids`` is stored."""
    with mongo.client(s, timeout_ms=5000) as client:
        coll = mongo.collection(client, s)
        return all(coll.find_one({"_id": u}, {"_id": 1}) is not None for u in uuids)


def present_in_cassandra(s: Settings, uuids) -> bool:
    cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace, timeout=10, metadata=False)
    try:
        return cassandra.uuids_by_uuid(sess, list(uuids)) == set(uuids)
    finally:
        cluster.shutdown()


def tally(uuids, counts: dict[str, Counter]) -> dict:
    """For each output: found (UUIDs with at least one record), lost, duplicated (extra records)."""
    uuids = list(uuids)
    out = {"sent": len(uuids)}
    for name, per_uuid in counts.items():
        found = sum(1 for u in uuids if per_uuid.get(u, 0) > 0)
        out[name] = {"found": found, "lost": len(uuids) - found,
                     "duplicated": sum(per_uuid.get(u, 0) - 1 for u in uuids if per_uuid.get(u, 0) > 1)}
    return out


class Ledger:
    """Counts every output for a set of UUIDs, waiting (with a deadline) for the slow ones:
    the parquet archive writes once per FD_ARCHIVE_TRIGGER, NiFi every 10 s."""

    def __init__(self, s: Settings, topics: Topics):
        self.s = s
        self.topics = topics
        self.archives = Archives(s)

    def counts(self, uuids, outputs=OUTPUTS) -> dict[str, Counter]:
        counts: dict[str, Counter] = {}
        if "responses" in outputs:
            counts["responses"] = Counter({u: self.topics.responses.get(u, 0) for u in uuids})
        if "mongo" in outputs:
            counts["mongo"] = mongo_counts(self.s, uuids)
        if {"cassandra_by_uuid", "cassandra_by_route_day"} & set(outputs):
            counts["cassandra_by_uuid"], counts["cassandra_by_route_day"] = cassandra_counts(self.s, uuids)
        if "parquet" in outputs:
            counts["parquet"] = self.archives.parquet_counts()
        if "nifi" in outputs:
            counts["nifi"] = self.archives.nifi_counts()
        return counts

    def settle(self, uuids, timeout: float, outputs=OUTPUTS, progress=print) -> dict:
        """Wait until every output holds every UUID (or ``timeout``), then tally them.
        MongoDB and Cassandra are first checked cheaply on the newest UUIDs, and an output is
        counted in full only until it holds them all. Adds ``settled_after_s`` (None: not
        within the timeout)."""
        uuids = list(uuids)
        began = time.monotonic()
        newest = uuids[-20:]
        next_note = began + 30
        complete: dict[str, Counter] = {}
        last: dict[str, Counter] = {}
        while True:
            pending = [o for o in outputs if o not in complete]
            try:
                if "responses" in pending and self.topics.answered(uuids) < len(uuids):
                    pending.remove("responses")
                if "mongo" in pending and not present_in_mongo(self.s, newest):
                    pending.remove("mongo")
                if "cassandra_by_uuid" in pending and not present_in_cassandra(self.s, newest):
                    pending = [o for o in pending if not o.startswith("cassandra")]
                counts = self.counts(uuids, pending)
                last.update(counts)
                complete.update({o: c for o, c in counts.items() if all(c.get(u) for u in uuids)})
            except Exception as exc:  # a store still recovering: keep polling until the deadline
                log.info("stores not countable yet: %s: %s", type(exc).__name__, exc)
            now = time.monotonic()
            if len(complete) == len(outputs) or now - began > timeout:
                missing = [o for o in outputs if o not in complete]
                result = tally(uuids, {**complete, **self.counts(uuids, missing)})
                result["settled_after_s"] = None if missing else round(now - began, 1)
                return result
            if now > next_note:
                waiting = {o: (len(uuids) - sum(1 for u in uuids if last[o].get(u))) if o in last else "not countable yet"
                           for o in outputs if o not in complete}
                if "responses" in waiting:
                    waiting["responses"] = len(uuids) - self.topics.answered(uuids)
                progress(f"  waiting for the outputs ({now - began:.0f} s), records still missing: {waiting}")
                next_note = now + 30
            time.sleep(2)
