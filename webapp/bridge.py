"""The web app's link to Kafka: produce validated requests, consume predictions.

One background consumer per process reads the response topic and hands each prediction to a
callback (the Socket.IO emitter), which pushes it only to the room named by the request UUID.
The consumer uses a group id unique to the process and starts at the latest offset: a web
process is only interested in answers to requests it produced while running.

Kafka's client blocks in C (``poll``), which gevent cannot switch away from: under the gevent
server a blocked poll would stop every connection of the process. So the two polling loops run
in real OS threads (gevent's thread pool) and hand what they get to the server's loop
(``GeventThreads``); without gevent (unit tests, the development server) they are plain threads
calling back directly (``OsThreads``).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid as uuidlib
from typing import Callable

from flightdelay import kafka
from flightdelay.config import Settings

log = logging.getLogger(__name__)
CONSUME_BATCH = 500  # messages the response consumer takes in one call at most


class OsThreads:
    """Where the bridge's blocking loops run, and how their results reach request handlers:
    plain threads, calling back in place."""

    def start(self, target: Callable, name: str) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()

    def to_server(self, fn: Callable, *args) -> None:
        fn(*args)


class GeventThreads(OsThreads):
    """Real OS threads under the gevent server: gevent's thread pool runs the loops, and each
    result is handed to the server's event loop (thread-safe), which runs ``fn`` there: the
    Socket.IO emit and the wake-up of a waiting request must happen on the loop that owns them.
    Made in the serving thread (it takes that thread's hub)."""

    def __init__(self):
        import gevent

        self.hub = gevent.get_hub()
        self._spawn = gevent.spawn
        self.hub.threadpool.maxsize = max(self.hub.threadpool.maxsize, 12)  # 2 loops + DNS look-ups

    def start(self, target: Callable, name: str) -> None:
        self.hub.threadpool.spawn(target)

    def to_server(self, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` in a new greenlet of the server's loop. Not in the loop's callback
        itself: code there may not wait for anything, and a contended lock (the result store's,
        while a burst woke its waiters) raised BlockingSwitchOutError there, which lost that
        prediction's delivery (make test-cluster, a broker's failover: a user's answer came
        35.7 s later, from MongoDB)."""
        self.hub.loop.run_callback_threadsafe(self._spawn, fn, *args)


def threads_for_server() -> OsThreads:
    """GeventThreads when the process runs under gevent (sockets monkey-patched), else OsThreads."""
    try:
        from gevent.monkey import is_module_patched
    except ImportError:  # pragma: no cover
        return OsThreads()
    return GeventThreads() if is_module_patched("socket") else OsThreads()


class KafkaBridge:
    def __init__(self, settings: Settings, producer=None, threads: OsThreads | None = None):
        self.settings = settings
        self.threads = threads or threads_for_server()
        self._producer = producer
        self._producer_lock = threading.Lock()
        self._stop = threading.Event()
        self.consumer_ready = threading.Event()

    @property
    def producer(self):
        with self._producer_lock:
            if self._producer is None:
                self._producer = kafka.producer(self.settings, {
                    "linger.ms": 0,  # a person is waiting: send now, do not batch
                    "enable.idempotence": True,
                    "message.timeout.ms": int(self.settings.webapp_publish_timeout_s * 1000),
                })
                self.threads.start(self._serve_delivery_reports, "kafka-delivery-reports")
            return self._producer

    def _serve_delivery_reports(self) -> None:
        """One thread serves every delivery report, waking the request thread it belongs to.
        Each request thread calling ``flush()`` instead waited for *all* messages in flight,
        so under load every submission queued behind the others (bench.webapp: ack p50 140 ms
        with 50 browsers)."""
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def publish_request(self, request: dict) -> None:
        """Produce ``request`` keyed by its UUID and wait for the broker's acknowledgement of
        this message, so the caller only says "accepted" once the request is durably in Kafka."""
        delivered = threading.Event()
        errors = []

        def on_delivery(err, _msg):  # in the delivery-report thread
            if err is not None:
                errors.append(err)
            self.threads.to_server(delivered.set)

        self.producer.produce(self.settings.request_topic, key=request["UUID"].encode(),
                              value=json.dumps(request).encode(), on_delivery=on_delivery)
        if not delivered.wait(self.settings.webapp_publish_timeout_s + 1) or errors:
            raise RuntimeError(f"Kafka did not acknowledge request {request['UUID']}: "
                               f"{errors[0] if errors else 'timed out'}")

    def start_consumer(self, on_prediction: Callable[[dict], None],
                       on_rejection: Callable[[dict], None] | None = None,
                       wanted: Callable[[str], bool] | None = None) -> None:
        """Run ``consume_responses`` in its own OS thread; the callbacks run on the server's loop,
        a batch of records at a time. ``wanted(uuid)``, called in that thread, says which keys
        are worth decoding (see ``consume_responses``)."""
        def deliver(batch: list[tuple[str, dict]]) -> None:  # on the server's loop
            for kind, record in batch:
                try:
                    (on_rejection if kind == "rejection" else on_prediction)(record)
                except Exception:  # one record's failure must not lose the rest of its batch
                    log.exception("delivering a %s failed", kind)

        to_server = self.threads.to_server
        self.threads.start(lambda: self.consume_responses(lambda batch: to_server(deliver, batch),
                                                          rejections=on_rejection is not None, wanted=wanted),
                           "kafka-responses")

    def consume_responses(self, on_batch: Callable[[list[tuple[str, dict]]], None], rejections: bool = False,
                          wanted: Callable[[str], bool] | None = None) -> None:
        """Loop until stop(): read predictions (and, with ``rejections``, the dead-letter topic,
        where the job puts requests it refused) and pass what each poll got on, decoded, as
        ("prediction" | "rejection", record) pairs. With ``wanted``, a message whose key (the
        request UUID) it refuses is passed over undecoded: every web process reads every answer,
        and at 10,000/s decoding the ones nobody here waits for was most of this thread's work."""
        group = f"webapp-{socket.gethostname()}-{os.getpid()}-{uuidlib.uuid4().hex[:6]}"
        topics = [self.settings.response_topic] + ([self.settings.dlq_topic] if rejections else [])
        while not self._stop.is_set():
            try:
                consumer = kafka.consumer(self.settings, group, {
                    "auto.offset.reset": "latest", "enable.auto.commit": True, "fetch.wait.max.ms": 10})
                consumer.subscribe(topics, on_assign=self._on_assign)
                self._poll_loop(consumer, on_batch, wanted)
                consumer.close()
            except Exception:  # Kafka down or restarting: log, back off, reconnect
                log.exception("response consumer failed; reconnecting in 2 s")
                time.sleep(2)

    def _on_assign(self, _consumer, partitions):
        log.info("response consumer assigned %s", [f"{p.topic}[{p.partition}]" for p in partitions])
        self.threads.to_server(self.consumer_ready.set)

    def _poll_loop(self, consumer, on_batch, wanted: Callable[[str], bool] | None = None) -> None:
        """Each turn takes every message already fetched (kafka.arrived_messages: the first as it
        arrives, the rest without waiting), so a busy moment costs this thread one turn on the GIL
        and the server's loop one wake-up, not one per message (under the gevent server the loop
        holds the GIL most of the time and a thread waits up to the switch interval for each
        turn). ``consume(n, timeout)`` alone waits for n messages or the whole timeout: it held
        every answer up to 0.2 s at low rates (bench.webapp: predictions p50 ~200 ms)."""
        while not self._stop.is_set():
            batch = [decoded for decoded in (self._decode(msg, wanted)
                                             for msg in kafka.arrived_messages(consumer, CONSUME_BATCH, 0.2))
                     if decoded]
            if batch:
                on_batch(batch)

    def _decode(self, msg, wanted: Callable[[str], bool] | None = None) -> tuple[str, dict] | None:
        if msg.error():
            log.warning("response consumer: %s", msg.error())
            return None
        if wanted is not None and msg.key() and not wanted(msg.key().decode("utf-8", "replace")):
            return None  # keyed by a request UUID this process did not produce (the job keeps the key)
        try:
            record = json.loads(msg.value())
        except (TypeError, ValueError):
            log.error("undecodable message on %s offset %s", msg.topic(), msg.offset())
            return None
        if not isinstance(record, dict):
            log.error("message on %s offset %s is not a JSON object", msg.topic(), msg.offset())
            return None
        if msg.topic() == self.settings.dlq_topic:
            return "rejection", rejection_of(record, msg.key())
        return "prediction", record

    def stop(self) -> None:
        self._stop.set()


def rejection_of(dead_letter: dict, key: bytes | None) -> dict:
    """What a requester is told about its dead-lettered request: the job's reason and field
    messages. The web app keys requests by UUID, and the job keeps the key."""
    uuid = (key or b"").decode("utf-8", "replace").strip().lower() or None
    fields = dead_letter.get("fields") if isinstance(dead_letter.get("fields"), dict) else {}
    return {"uuid": uuid, "reason": str(dead_letter.get("reason") or "rejected by the streaming job")[:500],
            "fields": {str(k)[:40]: str(v)[:200] for k, v in fields.items()}}
