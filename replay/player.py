"""Plays the replay's events through the platform's entry points on a scaled clock, follows what
the platform makes of them (answers, scores, dead letters) and sums it up.

Entry points: the Kafka request and outcome topics, as any producer would write them (``kafka``,
the default), or the web app's REST API, ``POST /api/v1/predictions`` and ``POST
/api/v1/outcomes`` (``api``; the API's per-client rate limit applies: a 429 is waited out and
sent again). Either way the streaming job validates, predicts, joins and scores as for anyone.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import statistics
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable
from zoneinfo import ZoneInfo

from flightdelay import kafka
from flightdelay.config import Settings
from flightdelay.metrics import metrics_from_confusion
from flightdelay.schema import LABELS, flight_key
from replay.flights import REQUEST, Event, Flight

log = logging.getLogger(__name__)

CLOCK_ZONE = ZoneInfo("America/New_York")  # the replay's flights leave New York: its clock is shown
RECENT = 200_000  # answers of unknown ids kept a while (an API answer may come before its id is known)


def now_ms() -> int:
    return int(time.time() * 1000)


def quantiles(values: list[float]) -> dict[str, float | None]:
    """p50 and p99 of ``values`` (ms), to 0.1."""
    if len(values) < 2:
        only = round(values[0], 1) if values else None
        return {"p50_ms": only, "p99_ms": only}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1)}


class Follower(threading.Thread):
    """Reads the response, scored and dead-letter topics from their ends at start (wait on
    ``ready`` before sending): the answers, scores and rejections of the replay's ids. Partitions
    are assigned by hand, with no consumer group: nothing to rebalance, nothing committed."""

    def __init__(self, s: Settings):
        super().__init__(daemon=True, name="replay-follower")
        self.s = s
        self.ready = threading.Event()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.wanted: set[str] = set()       # request UUIDs of this replay
        self.keys: set[str] = set()         # Kafka keys of its outcomes (flight keys), for dead letters
        self.answers: dict[str, dict] = {}  # uuid -> {model_version, prediction, latency_ms, at}
        self.scores: dict[str, dict] = {}   # uuid -> scored record (+ "at": when it arrived here)
        self.rejected: dict[str, str] = {}  # uuid or flight key -> reason
        self._recent: OrderedDict[str, tuple[str, dict]] = OrderedDict()

    def want(self, uuid: str) -> None:
        with self._lock:
            self.wanted.add(uuid)
            early = self._recent.pop(uuid, None)
            if early is not None:
                self._keep(uuid, *early)

    def expect_key(self, key: str) -> None:
        """An outcome's Kafka key (its flight): its dead letter, if any, is the replay's."""
        with self._lock:
            self.keys.add(key)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def _keep(self, uuid: str, kind: str, record: dict) -> None:
        if kind == "answer":
            self.answers.setdefault(uuid, record)
        else:
            self.scores.setdefault(uuid, record)

    def run(self) -> None:
        from confluent_kafka import TopicPartition

        consumer = kafka.consumer(self.s, f"replay-{time.time_ns()}", {"enable.auto.commit": False})
        try:
            start = []
            for topic in (self.s.response_topic, self.s.scored_topic, self.s.dlq_topic):
                for p in consumer.list_topics(topic, timeout=30).topics[topic].partitions:
                    high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                    start.append(TopicPartition(topic, p, high))
            consumer.assign(start)
            self.ready.set()
            while not self._halt.is_set():
                for msg in kafka.arrived_messages(consumer, timeout=0.2):
                    if not msg.error():
                        self.take(msg)
        finally:
            consumer.close()

    def take(self, msg) -> None:
        key = (msg.key() or b"").decode("utf-8", "replace")
        try:
            record = json.loads(msg.value())
        except (TypeError, ValueError):
            return
        if not isinstance(record, dict):
            return
        with self._lock:
            if msg.topic() == self.s.dlq_topic:
                if key in self.wanted or key in self.keys:
                    self.rejected.setdefault(key, str(record.get("reason"))[:300])
                return
            if msg.topic() == self.s.response_topic:
                kind = "answer"
                kept = {"model_version": record.get("model_version"), "prediction": record.get("prediction"),
                        "latency_ms": msg.timestamp()[1] - int(record.get("requested_at") or 0), "at": time.monotonic()}
            else:
                kind = "score"
                kept = {**record, "at": time.monotonic()}
            if key in self.wanted:
                self._keep(key, kind, kept)
            else:
                self._recent[key] = (kind, kept)
                while len(self._recent) > RECENT:
                    self._recent.popitem(last=False)

    def snapshot(self) -> tuple[dict, dict, dict]:
        with self._lock:
            return dict(self.answers), dict(self.scores), dict(self.rejected)


@dataclass
class Sent:
    requests: dict[str, Flight] = field(default_factory=dict)  # uuid -> flight
    outcomes: int = 0
    rate_limited: int = 0
    failed: int = 0
    last_event_at: dt.datetime | None = None


class KafkaEntry:
    """Requests and outcomes as a producer writes them to the platform's topics."""

    def __init__(self, s: Settings):
        self.s = s
        self.producer = kafka.producer(s, {"linger.ms": 5, "enable.idempotence": True,
                                           "message.timeout.ms": 120_000})
        self.errors: list[str] = []

    def _delivered(self, err, _msg) -> None:
        if err is not None:
            self.errors.append(str(err))

    def _produce(self, topic: str, key: str, value: dict) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key.encode(), value=json.dumps(value).encode(),
                                      on_delivery=self._delivered)
                break
            except BufferError:  # as fast as possible: wait for the broker to take some
                self.producer.poll(0.05)
        self.producer.poll(0)

    def request(self, event: Event) -> str:
        self._produce(self.s.request_topic, event.id,
                      {"UUID": event.id, **event.flight.request(), "requested_at": now_ms()})
        return event.id

    def outcomes(self, events: list[Event]) -> int:
        for e in events:
            outcome = e.flight.outcome()
            self._produce(self.s.outcome_topic, flight_key(outcome),
                          {"outcome_id": e.id, **outcome, "reported_at": now_ms()})
        return len(events)

    def flush(self) -> None:
        if self.producer.flush(120):
            raise RuntimeError("Kafka did not acknowledge every message of the replay")
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} messages not accepted by Kafka: {self.errors[0]}")


class ApiEntry:
    """Requests and outcomes through the web app's REST API (one client: its rate limit applies)."""

    OUTCOME_BATCH = 50  # outcomes per POST (well under FD_WEBAPP_MAX_REQUEST_BYTES)

    def __init__(self, url: str, sent: Sent):
        import requests

        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: no proxy
        self.sent = sent

    def _post(self, path: str, body) -> dict:
        import requests

        while True:
            try:
                answer = self.session.post(self.url + path, json=body, timeout=30)
            except requests.RequestException as exc:
                raise RuntimeError(f"POST {path} failed: {exc}") from exc
            if answer.status_code == 429:
                self.sent.rate_limited += 1
                time.sleep(float(answer.headers.get("Retry-After", "1")))
                continue
            if answer.status_code not in (200, 202):  # 200: answered within a ?wait
                raise RuntimeError(f"POST {path} answered {answer.status_code}: {answer.text[:300]}")
            return answer.json()

    def request(self, event: Event) -> str:
        return self._post("/api/v1/predictions", event.flight.request())["uuid"]

    def outcomes(self, events: list[Event]) -> int:
        for start in range(0, len(events), self.OUTCOME_BATCH):
            chunk = events[start:start + self.OUTCOME_BATCH]
            self._post("/api/v1/outcomes", [{"outcome_id": e.id, **e.flight.outcome()} for e in chunk])
        return len(events)

    def flush(self) -> None:
        pass


def tally(scores: dict[str, dict]) -> dict:
    """What the scores of the replay's predictions say: counts, live accuracy, macro F1, the
    model's expected accuracy, the confusion matrix (all versions together, and per version)."""
    def summary(records: list[dict]) -> dict:
        classed = [r for r in records if r.get("status") == "scored"]
        cm = [[0] * len(LABELS) for _ in LABELS]
        for r in classed:
            cm[r["actual"]][r["prediction"]] += 1
        m = metrics_from_confusion(cm)
        return {"resolved": len(records), "scored": len(classed),
                "cancelled": sum(r.get("status") == "cancelled" for r in records),
                "diverted": sum(r.get("status") == "diverted" for r in records),
                "correct": sum(bool(r.get("correct")) for r in classed),
                "accuracy": round(m["accuracy"], 4) if classed else None,
                "macro_f1": round(m["macro_f1"], 4) if classed else None,
                "expected_accuracy": round(sum(r["probability"] for r in classed) / len(classed), 4) if classed else None,
                "confusion": cm}

    records = list(scores.values())
    versions = sorted({str(r.get("model_version")) for r in records})
    return {**summary(records), "by_version": {v: summary([r for r in records if str(r.get("model_version")) == v])
                                               for v in versions}}


class Replay:
    """One run: ``play`` sends the events on the scaled clock (``speed`` simulated seconds per
    real second; None: as fast as possible), then waits (at most ``settle`` seconds) until every
    request is answered and every prediction resolved by its outcome."""

    def __init__(self, s: Settings, events: list[Event], *, speed: float | None, via: str = "kafka",
                 url: str | None = None, every: float = 5.0, settle: float = 600.0,
                 say: Callable[[str], None] = print):
        self.s = s
        self.events = events
        self.speed = speed
        self.via = via
        self.url = url or f"http://{s.host}:{s.webapp_port}"
        self.every = every
        self.settle = settle
        self.say = say
        self.sent = Sent()
        self.follower = Follower(s)
        self.entry = KafkaEntry(s) if via == "kafka" else ApiEntry(self.url, self.sent)
        self.began = 0.0
        self._last_line = 0.0

    def clock(self) -> dt.datetime | None:
        if not self.events:
            return None
        if self.speed is None:
            return self.sent.last_event_at
        return self.events[0].at + dt.timedelta(seconds=(time.monotonic() - self.began) * self.speed)

    def progress(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_line < self.every:
            return
        self._last_line = time.monotonic()
        answers, scores, rejected = self.follower.snapshot()
        t = tally(scores)
        clock = self.clock()
        shown = clock.astimezone(CLOCK_ZONE).strftime("%Y-%m-%d %H:%M %Z") if clock else "-"
        accuracy = "-" if t["accuracy"] is None else f"{t['accuracy']:.3f} (expected {t['expected_accuracy']:.3f})"
        self.say(f"simulated {shown} | requests {len(self.sent.requests):,} | outcomes {self.sent.outcomes:,} | "
                 f"answered {len(answers):,} | scored {t['scored']:,} (+{t['cancelled'] + t['diverted']} cancelled/"
                 f"diverted) | live accuracy {accuracy}" + (f" | rejected {len(rejected)}" if rejected else ""))

    def wait_until(self, wall: float) -> None:
        while (left := wall - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))
            self.progress()

    def play(self) -> dict:
        if not self.follower.is_alive():  # a bench may start following earlier (its probe requests)
            self.follower.start()
        if not self.follower.ready.wait(60):
            raise RuntimeError("the replay could not read the response topic")
        self.say(f"{sum(e.kind == REQUEST for e in self.events):,} flights, {len(self.events):,} events, "
                 f"speed {'as fast as possible' if self.speed is None else f'{self.speed:g}x'}, via {self.via}")
        self.began = time.monotonic()
        pending: list[Event] = []  # outcomes due, sent together (a batch POST over the API)
        for event in self.events:
            if self.speed is not None:
                due = self.began + (event.at - self.events[0].at).total_seconds() / self.speed
                if due > time.monotonic():
                    self.flush_outcomes(pending)
                    self.wait_until(due)
            if event.kind == REQUEST:
                self.flush_outcomes(pending)
                uuid = self.entry.request(event)
                self.follower.want(uuid)
                self.sent.requests[uuid] = event.flight
            else:
                self.follower.expect_key(flight_key(event.flight.outcome()))
                pending.append(event)
            self.sent.last_event_at = event.at
            self.progress()
        self.flush_outcomes(pending)
        self.entry.flush()
        sending_s = time.monotonic() - self.began
        self.say(f"all {len(self.events):,} events sent in {sending_s:.1f} s; waiting for the answers and scores")
        done = self.wait_settled()
        self.progress(force=True)
        self.follower.stop()
        return self.summary(sending_s, done)

    def flush_outcomes(self, pending: list[Event]) -> None:
        if pending:
            self.sent.outcomes += self.entry.outcomes(pending)
            pending.clear()

    def settled(self) -> bool:
        answers, scores, rejected = self.follower.snapshot()
        wanted = set(self.sent.requests)
        return wanted <= set(answers) | set(rejected) and wanted - set(rejected) <= set(scores)

    def wait_settled(self) -> bool:
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            if self.settled():
                return True
            time.sleep(0.2)
            self.progress()
        return self.settled()

    def summary(self, sending_s: float, settled: bool) -> dict:
        answers, scores, rejected = self.follower.snapshot()
        answers = {u: a for u, a in answers.items() if u in self.sent.requests}
        scores = {u: r for u, r in scores.items() if u in self.sent.requests}
        flights = list(self.sent.requests.values())
        last_answer = max((a["at"] for a in answers.values()), default=self.began)
        last_score = max((r["at"] for r in scores.values()), default=self.began)
        lags = [r["scored_at"] - max(r["outcome_kafka_at"], r.get("prediction_kafka_at") or 0)
                for r in scores.values() if r.get("scored_at") and r.get("outcome_kafka_at")]
        first = self.events[0].flight.flight_date if self.events else None
        last = max((e.flight.flight_date for e in self.events), default=None)
        return {
            "flights": len(flights), "first_flight_date": first, "last_flight_date": last,
            "speed": "max" if self.speed is None else self.speed, "via": self.via,
            "requests_sent": len(self.sent.requests), "outcomes_sent": self.sent.outcomes,
            "cancelled_flights": sum(f.cancelled for f in flights), "diverted_flights": sum(f.diverted for f in flights),
            "rate_limited": self.sent.rate_limited, "answered": len(answers), "rejected": len(rejected),
            "settled": settled, "unresolved": len(set(self.sent.requests) - set(scores) - set(rejected)),
            "sending_s": round(sending_s, 1), "wall_s": round(max(last_answer, last_score) - self.began, 1),
            "predicted_per_s": round(len(answers) / max(1e-3, last_answer - self.began), 1),
            "scored_per_s": round(len(scores) / max(1e-3, last_score - self.began), 1),
            "predict_latency": quantiles([a["latency_ms"] for a in answers.values()]),
            "score_lag": quantiles(lags),
            "versions": dict(Counter(str(a["model_version"]) for a in answers.values())),
            **tally(scores),
        }
