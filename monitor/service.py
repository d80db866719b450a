"""The monitor's loop: read the response topic, close windows, score, publish, store.

Off the user's path: it reads the predictions as every other reader of the response topic does,
in a consumer group of its own (FD_MONITOR_GROUP). A Kafka outage only pauses it (the clients
reconnect by themselves; errors are logged once per outage); a Cassandra outage keeps the
window rows in memory (up to PENDING_MAX) and retries with a backoff up to
FD_MONITOR_BACKOFF_MAX_S; a malformed message is counted and skipped.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time

from flightdelay import drift, kafka, logs
from flightdelay.config import Settings, load_settings
from flightdelay.stores import outcomes as outcome_store
from flightdelay.stores.monitor import WindowWriter
from monitor import status
from monitor.alerts import RetrainOnAlert
from monitor.decider import DeciderThread
from monitor.references import ReferenceBook
from monitor.windows import Malformed, Window, parse_prediction

log = logging.getLogger(__name__)

PENDING_MAX = 10_000      # window rows kept while Cassandra does not answer (then the oldest go)
HEARTBEAT_S = 5.0
POLL_S = 0.5


def now_ms() -> int:
    return int(time.time() * 1000)


class Backoff:
    """Waits doubling from 1 s up to ``max_s`` after each failure; none after a success."""

    def __init__(self, max_s: float):
        self.max_s = max_s
        self.delay = 0.0
        self.next_at = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def failed(self, now: float) -> float:
        self.delay = min(self.max_s, max(1.0, self.delay * 2))
        self.next_at = now + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay = self.next_at = 0.0


class Monitor:
    def __init__(self, s: Settings, *, references: ReferenceBook | None = None, writer: WindowWriter | None = None,
                 alerts: RetrainOnAlert | None = None, decider: DeciderThread | None = None):
        self.s = s
        self.alerts = alerts  # None: alerts are published and stored, nothing is retrained
        self.decider = decider  # a DeciderThread, or None: no promotion decisions
        self.thresholds = drift.Thresholds.from_settings(s)
        self.references = references or ReferenceBook(s)
        self.writer = writer or WindowWriter(s)
        self.cassandra = Backoff(s.monitor_backoff_max_s)
        self.window: Window | None = None
        self.pending: list[dict] = []
        self.counts = {"windows": 0, "malformed": 0, "predictions": 0, "published": 0, "publish_failed": 0,
                       "stored": 0, "dropped": 0}
        self.last_window: dict | None = None
        self.kafka_down = False
        self.consumer = self.producer = None
        self.assigned: list[str] = []

    # -- Kafka -----------------------------------------------------------------------------------
    def connect(self) -> None:
        self.consumer = kafka.consumer(self.s, self.s.monitor_group, {
            "auto.offset.reset": self.s.monitor_starting_offsets, "enable.auto.commit": True,
            "error_cb": self.kafka_error})
        self.consumer.subscribe([self.s.response_topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        self.producer = kafka.producer(self.s, {"linger.ms": 20, "error_cb": self.kafka_error})

    def on_assign(self, consumer, partitions) -> None:
        self.assigned = sorted({f"{p.topic}[{p.partition}]" for p in partitions} | set(self.assigned))
        log.info("reading %s", ", ".join(self.assigned))

    def on_revoke(self, consumer, partitions) -> None:
        gone = {f"{p.topic}[{p.partition}]" for p in partitions}
        self.assigned = [p for p in self.assigned if p not in gone]

    def kafka_error(self, err) -> None:
        """librdkafka's client-level errors (brokers down ...): one line when it starts failing."""
        if not self.kafka_down:
            log.warning("Kafka: %s (the clients keep reconnecting; windows resume when it answers)", err)
        self.kafka_down = True

    def delivered(self, err, msg) -> None:
        if err is not None:
            self.counts["publish_failed"] += 1
            log.warning("window scores not published on %s: %s", self.s.monitor_topic, err)
        else:
            self.counts["published"] += 1

    def publish(self, record: dict) -> None:
        key = f"{record['model_name']}:{record['model_version']}:{record['window_start']}".encode()
        try:
            self.producer.produce(self.s.monitor_topic, key=key, value=json.dumps(record).encode(),
                                  on_delivery=self.delivered)
        except BufferError:  # the producer's queue is full: Kafka has been away a while
            self.counts["publish_failed"] += 1
            log.warning("window scores not published: the producer's queue is full")

    # -- one turn of the loop --------------------------------------------------------------------
    def take(self, messages, now: int) -> None:
        for msg in messages:
            if msg.error():
                log.warning("Kafka: %s", msg.error())
                continue
            if self.kafka_down:
                log.info("Kafka answers again")
                self.kafka_down = False
            if self.window is None:
                self.window = Window(opened_ms=now, max_n=self.s.monitor_window_n,
                                     max_ms=int(self.s.monitor_window_s * 1000))
            try:
                self.window.add(parse_prediction(msg.value()))
                self.counts["predictions"] += 1
            except Malformed as exc:
                self.window.malformed += 1
                self.counts["malformed"] += 1
                log.debug("malformed message at %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), exc)

    def turn(self, messages, now: int | None = None) -> None:
        now = now_ms() if now is None else now
        self.take(messages, now)
        if self.window is not None and self.window.due(now):
            self.close_window(now)
        self.store_pending()
        if self.producer is not None:
            self.producer.poll(0)

    # -- a window --------------------------------------------------------------------------------
    def close_window(self, now: int) -> list[dict]:
        window, self.window = self.window, None
        records = []
        for (name, version), predictions in sorted(window.by_version.items()):
            found = self.references.get(name, version)
            if found is None:
                scores, holdout, source = drift.unscored(len(predictions)), None, ""
            else:
                reference, source = found
                scores, holdout = drift.score_window(reference, predictions, self.thresholds), reference.holdout_accuracy
            matched, correct = self.live_counts(name, version, now)
            accuracy = drift.judge_accuracy(matched, correct, holdout, self.thresholds)
            record = drift.window_record(model_name=name, model_version=version, window_start=window.opened_ms,
                                         window_end=now, drift=scores, accuracy=accuracy,
                                         malformed=window.malformed, reference=source)
            records.append(record)
            self.log_window(record)
            if self.producer is not None:
                self.publish(record)
            if record["alert"] and self.alerts is not None:
                self.alerts.offer(record)
        if not records:
            log.info("window of %.0f s: no predictions, %d malformed messages", (now - window.opened_ms) / 1000,
                     window.malformed)
        self.pending += records
        if len(self.pending) > PENDING_MAX:
            dropped = len(self.pending) - PENDING_MAX
            self.counts["dropped"] += dropped
            self.pending = self.pending[dropped:]
            log.warning("Cassandra away: %d window rows dropped (only the last %d are kept)", dropped, PENDING_MAX)
        self.counts["windows"] += 1
        self.last_window = records[-1] if records else self.last_window
        return records

    def live_counts(self, model_name: str, version: str, now: int) -> tuple[int, int]:
        """Matched and correct outcomes of the version in the live metrics' wall windows of the
        last FD_MONITOR_ACCURACY_LOOKBACK_S; (0, 0) while Cassandra does not answer."""
        if not self.cassandra.ready(time.monotonic()):
            return 0, 0
        since = now - int(self.s.monitor_accuracy_lookback_s * 1000)
        try:
            windows = outcome_store.wall_windows(self.writer.session(), model_name, since, now)
        except Exception as exc:  # Cassandra away: no accuracy verdict this window
            self.cassandra_failed(exc)
            return 0, 0
        mine = [m for _, v, m in windows if v == version]
        return sum(m.matched for m in mine), sum(m.correct for m in mine)

    def store_pending(self) -> None:
        if not self.pending or not self.cassandra.ready(time.monotonic()):
            return
        try:
            self.writer.write(self.pending)
        except Exception as exc:  # Cassandra away: keep the rows, retry after a backoff
            self.cassandra_failed(exc)
            return
        if self.cassandra.delay:
            log.info("Cassandra answers again: %d window rows stored", len(self.pending))
        self.counts["stored"] += len(self.pending)
        self.pending = []
        self.cassandra.succeeded()

    def cassandra_failed(self, exc: Exception) -> None:
        delay = self.cassandra.failed(time.monotonic())
        log.warning("Cassandra: %s: %s; %d window rows waiting, next try in %.0f s", type(exc).__name__,
                    str(exc)[:200], len(self.pending), delay)
        self.writer.reset()

    def log_window(self, w: dict) -> None:
        def pct(x):
            return "-" if x is None else f"{100 * x:.1f}%"

        log.info("window %s+%.0fs %s v%s: %d predictions, drift %s (max PSI %s on %s), accuracy %s "
                 "(live %s vs holdout %s, %d matched), %d malformed%s",
                 time.strftime("%H:%M:%S", time.gmtime(w["window_start"] / 1000)),
                 (w["window_end"] - w["window_start"]) / 1000, w["model_name"], w["model_version"], w["predictions"],
                 w["drift"], "-" if w["max_psi"] is None else f"{w['max_psi']:.3f}", w["worst_feature"] or "-",
                 w["accuracy"], pct(w["live_accuracy"]), pct(w["holdout_accuracy"]), w["matched"], w["malformed"],
                 ", ALERT" if w["alert"] else "")

    # -- the process -----------------------------------------------------------------------------
    def heartbeat(self) -> None:
        status.write(self.s, {"assigned": self.assigned, "kafka_down": self.kafka_down,
                              "pending_rows": len(self.pending), **self.counts, "last_window": self.last_window,
                              **({"retraining": {**self.alerts.counts, "last": self.alerts.last}} if self.alerts else {}),
                              **({"decider": self.decider.status()} if self.decider else {})})

    def run(self, stop: threading.Event) -> None:
        self.connect()
        next_beat = 0.0
        try:
            while not stop.is_set():
                self.turn(kafka.arrived_messages(self.consumer, max_messages=1000, timeout=POLL_S))
                if time.monotonic() >= next_beat:
                    self.heartbeat()
                    next_beat = time.monotonic() + HEARTBEAT_S
        finally:
            self.consumer.close()
            left = self.producer.flush(10)
            if self.pending:
                self.store_pending()
            self.writer.reset()
            log.info("stopped: %s%s", self.counts, f", {left} publications undelivered" if left else "")


def main() -> int:
    s = load_settings()
    logs.configure()
    # The driver logs each refused connection with a traceback; the monitor says once per retry what failed.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("monitor: %s -> %s and Cassandra %s.drift_windows; windows of %d predictions or %.0f s; PSI %.2f "
             "moderate, %.2f significant; min window %d", s.response_topic, s.monitor_topic, s.cassandra_keyspace,
             s.monitor_window_n, s.monitor_window_s, s.monitor_psi_moderate, s.monitor_psi_significant,
             s.monitor_min_window)
    log.info("alerts %s the retraining DAG %s (FD_MONITOR_RETRAIN_ON_ALERT=%d; cool-down %.0f s)",
             "start" if s.monitor_retrain_on_alert else "do not start", s.retrain_dag_id, s.monitor_retrain_on_alert,
             s.retrain_cooldown_s)
    log.info("decider: %s + %s -> promotion rule (McNemar exact, alpha %g, %d to %d paired outcomes; probation %d)",
             s.shadow_topic, s.scored_topic, s.promote_alpha, s.promote_min_outcomes, s.promote_max_outcomes,
             s.probation_outcomes)
    decider = DeciderThread(s, stop)
    try:
        decider.start()
        Monitor(s, alerts=RetrainOnAlert(s) if s.monitor_retrain_on_alert else None, decider=decider).run(stop)
        return 0
    except Exception:  # an entry point: report and exit non-zero
        log.exception("monitor failed")
        return 1
    finally:
        stop.set()
        decider.join(30)
