"""Predictions scored against what their flights really did: the join's rules and the live
metrics, as plain Python over a store interface (``JoinStore``; Cassandra's is
``flightdelay.stores.outcomes.CassandraJoinStore``). No Spark, no driver import: the streaming
job runs it on its driver, once per micro-batch of its ``archive-cassandra`` query, and the unit
tests run it against a dict.

The join (docs/streaming-job.md, "Outcomes: the join"):

* A prediction and an outcome report belong together when they name the same flight
  (``schema.flight_key``) and the report arrived within the horizon (FD_OUTCOME_HORIZON_S) of
  the prediction's request, in either order. A prediction made without a flight number cannot
  be matched (counted as ``no_flight_number``).
* Each prediction is scored at most once: against the first eligible report the join meets (of
  several stored ones, the earliest reported). A cancelled or diverted flight resolves its
  predictions without a class (``cancelled`` / ``diverted``); the others get the training
  label's class of the arrival delay (``schema.actual_class``), right or wrong.
* Both halves are looked up where they are stored by the flight's partition, (route, flight
  date): an outcome reads the predictions of its route-day, a prediction the outcome reports of
  its route-day. Nothing waits in memory: the join keeps only the set of route-days that have
  reports and an LRU cache of their reports (it is their only writer, so the cache stays true).
* Idempotent across restarts and replays. One sequential writer processes batch after batch;
  every row it writes carries the batch's ``lineage`` (query id and batch id). Replaying a batch
  (same id, same input) first looks at the store as it was before that batch (rows of the same
  lineage are ignored), so it makes the same decisions; a metric row records the last lineage
  applied to it and is not added to twice. A prediction already scored by another lineage (a
  repeated response on the at-least-once topic, a replay from an older checkpoint) is not
  scored again.

Counts of the outcome stream per window (``StreamCounts``): outcomes received, invalid ones
(dead-lettered), redelivered (the same ``outcome_id`` again), repeated (another report of a
flight already reported), matched (reports that scored at least one prediction), late (reports
that found only predictions requested more than the horizon before them) and the lag from each
report's arrival on Kafka to its counting.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Protocol

from flightdelay import schema
from flightdelay.metrics import metrics_from_confusion

log = logging.getLogger(__name__)

CLASSES = len(schema.LABELS)
WALL, FLIGHT_DATE, TOTAL = "wall", "flight_date", "total"  # window kinds
Partition = tuple[str, str]  # (route, flight date YYYY-MM-DD): where a flight's rows live


# -- what the join handles ---------------------------------------------------------------------
class OnRouteDay:
    """Where a flight's rows live: its route and flight date (the partition of both tables)."""
    origin: str
    dest: str
    flight_date: str

    @property
    def route(self) -> str:
        return schema.route_of(self.origin, self.dest)

    @property
    def partition(self) -> Partition:
        return self.route, self.flight_date


@dataclass(frozen=True)
class Prediction(OnRouteDay):
    uuid: str
    flight_key: str | None
    carrier: str
    flight_num: int | None
    origin: str
    dest: str
    flight_date: str
    crs_dep_time: int
    model_name: str
    model_version: str
    prediction: int
    probability: float            # of the class it predicted
    requested_at: int             # epoch ms, from the request
    kafka_at: int | None = None   # arrival of its response on Kafka (predictions of the current batch)


@dataclass(frozen=True)
class Report(OnRouteDay):
    """An outcome report as the join stores it: the clean outcome and the join's bookkeeping."""
    outcome_id: str
    flight_key: str
    carrier: str
    flight_num: int
    origin: str
    dest: str
    flight_date: str
    crs_dep_time: int
    dep_delay: float | None
    arr_delay: float | None
    cancelled: bool
    diverted: bool
    reported_at: int              # epoch ms, from the report
    kafka_at: int                 # its arrival on Kafka
    lineage: str = ""             # the batch that stored it
    repeated: bool = False        # its flight had another report already
    late: bool = False            # it found only predictions older than the horizon, and none since
    matched_lineage: str | None = None  # the batch in which it first scored a prediction
    counted_at: int | None = None  # when its batch counted it (lag = counted_at - kafka_at)

    @property
    def status(self) -> str:
        return "cancelled" if self.cancelled else "diverted" if self.diverted else "scored"

    @property
    def actual(self) -> int | None:
        return None if self.cancelled or self.diverted or self.arr_delay is None else \
            schema.label_for_delay(self.arr_delay)


def report_of(outcome: dict, kafka_at: int) -> Report:
    """A clean outcome (``schema.validate_outcome(..., envelope=True)``) as a report."""
    return Report(outcome_id=outcome["outcome_id"], flight_key=schema.flight_key(outcome),
                  carrier=outcome["Carrier"], flight_num=int(outcome["FlightNum"]), origin=outcome["Origin"],
                  dest=outcome["Dest"], flight_date=outcome["FlightDate"], crs_dep_time=int(outcome["CRSDepTime"]),
                  dep_delay=outcome["DepDelay"], arr_delay=outcome["ArrDelay"], cancelled=bool(outcome["Cancelled"]),
                  diverted=bool(outcome["Diverted"]), reported_at=int(outcome["reported_at"]), kafka_at=int(kafka_at))


def prediction_of(p: dict, kafka_at: int | None = None) -> Prediction:
    """A prediction record (response fields, as the job reads them from Kafka)."""
    cls = int(p["prediction"])
    number = p.get("FlightNum")
    return Prediction(uuid=p["UUID"], flight_key=schema.flight_key(p), carrier=p["Carrier"],
                      flight_num=None if number is None else int(number), origin=p["Origin"], dest=p["Dest"],
                      flight_date=p["FlightDate"], crs_dep_time=int(p["CRSDepTime"]), model_name=p["model_name"],
                      model_version=str(p["model_version"]), prediction=cls,
                      probability=float(p["probabilities"][cls]), requested_at=int(p["requested_at"]),
                      kafka_at=kafka_at)


@dataclass(frozen=True)
class Scored:
    prediction: Prediction
    report: Report
    lineage: str
    scored_at: int

    @property
    def correct(self) -> bool | None:
        actual = self.report.actual
        return None if actual is None else actual == self.prediction.prediction

    def record(self) -> dict:
        """The scored record (``schema.SCORED_FIELDS``): the scored topic and the parquet archive."""
        p, r = self.prediction, self.report
        return {"UUID": p.uuid, "Carrier": p.carrier, "FlightNum": p.flight_num, "Origin": p.origin, "Dest": p.dest,
                "Route": p.route, "FlightDate": p.flight_date, "CRSDepTime": p.crs_dep_time,
                "flight_key": p.flight_key, "model_name": p.model_name, "model_version": p.model_version,
                "prediction": p.prediction, "probability": p.probability, "status": r.status,
                "actual": r.actual, "correct": self.correct, "ArrDelay": r.arr_delay, "DepDelay": r.dep_delay,
                "outcome_id": r.outcome_id, "requested_at": p.requested_at, "reported_at": r.reported_at,
                "scored_at": self.scored_at, "outcome_kafka_at": r.kafka_at, "prediction_kafka_at": p.kafka_at}


def first_of_each(predictions: list[Prediction]) -> list[Prediction]:
    """The predictions in order, a repeated UUID (the at-least-once topic) only once."""
    seen: set[str] = set()
    out = []
    for p in predictions:
        if p.uuid not in seen:
            seen.add(p.uuid)
            out.append(p)
    return out


# -- counts per window -------------------------------------------------------------------------
@dataclass
class Metrics:
    """Live metrics of one model version in one window."""
    predicted: int = 0          # predictions the join saw with a flight number (wall and total windows)
    no_flight_number: int = 0   # predictions without one: never matched
    matched: int = 0            # scored with a class
    correct: int = 0
    cancelled: int = 0          # resolved by a cancellation (no class)
    diverted: int = 0
    probability_sum: float = 0.0  # of the predicted class, over the matched ones
    confusion: list[int] = field(default_factory=lambda: [0] * CLASSES * CLASSES)  # [actual * CLASSES + predicted]
    first_flight_date: str | None = None  # of the predictions resolved (the model page charts that span)
    last_flight_date: str | None = None
    applied: str | None = None  # the last batch lineage added in

    COUNTS = ("predicted", "no_flight_number", "matched", "correct", "cancelled", "diverted")

    def add(self, other: Metrics) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.probability_sum += other.probability_sum
        self.confusion = [a + b for a, b in zip(self.confusion, other.confusion)]
        self.first_flight_date = min(filter(None, (self.first_flight_date, other.first_flight_date)), default=None)
        self.last_flight_date = max(filter(None, (self.last_flight_date, other.last_flight_date)), default=None)

    def matrix(self) -> list[list[int]]:
        return [self.confusion[a * CLASSES:(a + 1) * CLASSES] for a in range(CLASSES)]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.matched if self.matched else None

    @property
    def expected_accuracy(self) -> float | None:
        """What the model expected of itself: the mean probability of the class it predicted."""
        return self.probability_sum / self.matched if self.matched else None

    @property
    def macro_f1(self) -> float | None:
        return metrics_from_confusion(self.matrix())["macro_f1"] if self.matched else None

    @property
    def awaiting(self) -> int:
        """Predictions with a flight number still without an outcome (wall and total windows)."""
        return max(0, self.predicted - self.matched - self.cancelled - self.diverted)


@dataclass
class StreamCounts:
    """The outcome stream in one window."""
    outcomes: int = 0
    invalid: int = 0
    redelivered: int = 0
    repeated: int = 0
    matched: int = 0
    late: int = 0
    lag_ms_sum: int = 0
    lag_ms_max: int = 0
    lag_count: int = 0
    applied: str | None = None

    COUNTS = ("outcomes", "invalid", "redelivered", "repeated", "matched", "late", "lag_ms_sum", "lag_count")

    def add(self, other: StreamCounts) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.lag_ms_max = max(self.lag_ms_max, other.lag_ms_max)

    def lag(self, ms: int) -> None:
        self.lag_ms_sum += ms
        self.lag_ms_max = max(self.lag_ms_max, ms)
        self.lag_count += 1

    @property
    def match_rate(self) -> float | None:
        return self.matched / self.outcomes if self.outcomes else None

    @property
    def without_prediction(self) -> int:
        """Reports that scored nothing and were not late: no prediction of their flight (yet), or
        every one already scored by an earlier report of the flight (a repeated report)."""
        return max(0, self.outcomes - self.matched - self.late)

    @property
    def mean_lag_ms(self) -> float | None:
        return self.lag_ms_sum / self.lag_count if self.lag_count else None


# (model name, window kind, bucket, window start ms, model version) and (stream, kind, bucket, start)
MetricKey = tuple[str, str, str, int, str]
StreamKey = tuple[str, str, str, int]


def day_start_ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def utc_day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d")


def windows(wall_ms: int, flight_date: str | None, window_s: int) -> list[tuple[str, str, int]]:
    """(kind, bucket, start ms) of the windows a wall time and a flight date fall in: the
    wall-time window (bucket: its UTC day), the flight date (bucket: its month), the total."""
    width = window_s * 1000
    start = wall_ms // width * width
    out = [(WALL, utc_day(start), start)]
    if flight_date is not None:
        out.append((FLIGHT_DATE, flight_date[:7], day_start_ms(flight_date)))
    out.append((TOTAL, "", 0))
    return out


# -- the store the join reads and writes -------------------------------------------------------
class JoinStore(Protocol):
    def outcome_partitions(self) -> set[Partition]: ...
    def reports(self, partitions: Iterable[Partition]) -> dict[Partition, list[Report]]: ...
    def predictions(self, partitions: Iterable[Partition]) -> dict[Partition, list[Prediction]]: ...
    def scored_lineages(self, uuids: Iterable[str]) -> dict[str, str]: ...
    def metric_rows(self, keys: Iterable[MetricKey]) -> dict[MetricKey, Metrics]: ...
    def stream_rows(self, keys: Iterable[StreamKey]) -> dict[StreamKey, StreamCounts]: ...
    def write_scored(self, scored: list[Scored]) -> None: ...
    def write_reports(self, reports: list[Report]) -> None: ...
    def write_metrics(self, rows: dict[MetricKey, Metrics]) -> None: ...
    def write_stream(self, rows: dict[StreamKey, StreamCounts]) -> None: ...


@dataclass
class BatchResult:
    scored: list[Scored]
    reports: list[Report]          # new this batch
    metrics: dict[MetricKey, Metrics]   # the deltas of this batch
    stream: dict[StreamKey, StreamCounts]

    def summary(self) -> str:
        matched = sum(1 for s in self.scored if s.report.status == "scored")
        return (f"{len(self.reports)} outcome reports, {len(self.scored)} predictions resolved "
                f"({matched} scored with a class)")


class Join:
    """The join's state between batches: the route-days that have reports and an LRU cache of
    their reports. ``process`` runs one batch; on any failure the caches are dropped, so a
    retried batch reads the store afresh."""

    def __init__(self, store: JoinStore, stream: str, horizon_s: float, window_s: int,
                 cache_partitions: int = 20000, clock: Callable[[], float] = time.time):
        self.store = store
        self.stream = stream            # the outcome topic's name: counts of the stream are kept per topic
        self.horizon_ms = int(horizon_s * 1000)
        self.window_s = window_s
        self.cache_partitions = cache_partitions
        self.clock = clock
        self._partitions: set[Partition] | None = None
        self._reports: OrderedDict[Partition, list[Report]] = OrderedDict()

    def reset(self) -> None:
        self._partitions = None
        self._reports.clear()

    # -- caches ----------------------------------------------------------------------------------
    def partitions(self) -> set[Partition]:
        if self._partitions is None:
            self._partitions = set(self.store.outcome_partitions())
        return self._partitions

    def reports_before(self, partitions: Iterable[Partition], lineage: str) -> dict[Partition, list[Report]]:
        """The reports of ``partitions`` as the store held them before the batch ``lineage``:
        rows a first attempt of this very batch wrote are left out, and a first match it
        recorded is undone, so a replayed batch decides as the first attempt did."""
        wanted = list(dict.fromkeys(partitions))
        known = self.partitions()
        missing = [p for p in wanted if p not in self._reports and p in known]
        if missing:
            self._reports.update(self.store.reports(missing))
        out = {}
        for p in wanted:
            rows = self._reports.get(p, [])
            out[p] = [r if r.matched_lineage != lineage else replace(r, matched_lineage=None)
                      for r in rows if r.lineage != lineage]
        return out

    def remember(self, reports: dict[Partition, list[Report]]) -> None:
        for p, rows in reports.items():
            self._reports[p] = rows
            self._reports.move_to_end(p)
            if rows:
                self.partitions().add(p)
        while len(self._reports) > self.cache_partitions:
            self._reports.popitem(last=False)

    def within(self, p: Prediction, r: Report) -> bool:
        return abs(r.reported_at - p.requested_at) <= self.horizon_ms

    # -- one batch ---------------------------------------------------------------------------------
    def process(self, predictions: list[Prediction], reports: list[Report], invalid_kafka_at: list[int],
                lineage: str) -> BatchResult:
        """Join one batch: ``predictions`` (this batch's responses, already written to the
        prediction tables), ``reports`` (this batch's valid outcomes, in topic order) and the
        arrival times of its invalid outcomes. Writes the scored predictions, the reports, the
        metrics and the stream counts; returns what it did."""
        try:
            return self._process(predictions, reports, invalid_kafka_at, lineage)
        except Exception:
            self.reset()
            raise

    def _process(self, predictions, reports, invalid_kafka_at, lineage) -> BatchResult:
        metrics: dict[MetricKey, Metrics] = defaultdict(Metrics)
        stream: dict[StreamKey, StreamCounts] = defaultdict(StreamCounts)
        predictions = first_of_each(predictions)
        self.count_seen(predictions, metrics)

        known = self.partitions()
        reported_parts = {r.partition for r in reports}
        prediction_parts = {p.partition for p in predictions if p.flight_key and p.partition in known}
        before = self.reports_before(prediction_parts | reported_parts, lineage)
        candidates: dict[str, dict[str, Prediction]] = defaultdict(dict)  # flight key -> uuid -> prediction
        for rows in self.store.predictions(sorted(reported_parts)).values():
            for p in rows:
                if p.flight_key:
                    candidates[p.flight_key][p.uuid] = p
        for p in predictions:
            if p.flight_key:
                candidates[p.flight_key][p.uuid] = p  # this batch's copy knows its Kafka arrival
        reported_flights = {r.flight_key for r in reports}
        wanted = {u for k in reported_flights for u in candidates.get(k, {})}
        wanted |= {p.uuid for p in predictions if p.partition in prediction_parts}
        already = {u for u, lin in self.store.scored_lineages(sorted(wanted)).items() if lin != lineage}

        matched: dict[str, Report] = {}    # uuid -> the report it is scored against
        first_matches: dict[str, Report] = {}  # outcome_id -> report, matched for the first time now
        changed: dict[str, Report] = {}

        def match(p: Prediction, r: Report) -> Report:
            matched[p.uuid] = r
            if r.matched_lineage is None:
                r = replace(r, matched_lineage=lineage)
                first_matches[r.outcome_id] = r
            return r

        # 1. this batch's predictions against the reports stored before it
        for p in predictions:
            if not p.flight_key or p.uuid in already or p.partition not in prediction_parts:
                continue
            rows = before[p.partition]
            eligible = [i for i, r in enumerate(rows) if r.flight_key == p.flight_key and self.within(p, r)]
            if eligible:
                i = min(eligible, key=lambda i: (rows[i].reported_at, rows[i].outcome_id))
                rows[i] = match(p, rows[i])
                changed[rows[i].outcome_id] = rows[i]

        # 2. this batch's reports, in topic order
        new: list[Report] = []
        for report in reports:
            rows = before.setdefault(report.partition, [])
            windows_of = self.stream_keys(report.kafka_at, report.flight_date)
            if any(r.outcome_id == report.outcome_id for r in rows):
                for key in windows_of:
                    stream[key].redelivered += 1
                continue
            r = replace(report, lineage=lineage, repeated=any(x.flight_key == report.flight_key for x in rows))
            for key in windows_of:
                stream[key].outcomes += 1
                stream[key].repeated += int(r.repeated)
            open_ = [p for p in candidates.get(r.flight_key, {}).values() if p.uuid not in already and p.uuid not in matched]
            fresh = [p for p in open_ if self.within(p, r)]
            for p in sorted(fresh, key=lambda p: p.uuid):
                r = match(p, r)
            if not fresh and any(p.requested_at < r.reported_at - self.horizon_ms for p in open_):
                r = replace(r, late=True)
                for key in windows_of:
                    stream[key].late += 1
            rows.append(r)
            new.append(r)

        # first matches of reports count once (a late report that matches after all is late no more)
        new_ids = {r.outcome_id for r in new}
        for r in first_matches.values():
            for key in self.stream_keys(r.kafka_at, r.flight_date):
                stream[key].matched += 1
                if r.late and r.outcome_id not in new_ids:
                    stream[key].late -= 1
        for kafka_at in invalid_kafka_at:
            for key in self.stream_keys(kafka_at, None):
                stream[key].invalid += 1

        now = int(self.clock() * 1000)
        final = {r.outcome_id: r for rows in before.values() for r in rows}
        scored = [Scored(p, final[matched[p.uuid].outcome_id], lineage, now)
                  for flight in candidates.values() for p in flight.values() if p.uuid in matched]
        scored.sort(key=lambda s: s.prediction.uuid)
        self.count_scored(scored, metrics)
        new = [replace(final[r.outcome_id], counted_at=now) for r in new]
        for r in new:
            for key in self.stream_keys(r.kafka_at, r.flight_date):
                stream[key].lag(max(0, now - r.kafka_at))
        written = new + [final[i] for i in changed if i not in new_ids]

        self.store.write_scored(scored)
        self.store.write_reports(written)
        self.store.write_metrics(self.applied(self.store.metric_rows(list(metrics)), metrics, lineage))
        self.store.write_stream(self.applied(self.store.stream_rows(list(stream)), stream, lineage))
        latest = {**final, **{r.outcome_id: r for r in new}}
        self.remember({p: [latest[r.outcome_id] for r in rows] for p, rows in before.items()})
        return BatchResult(scored, new, dict(metrics), dict(stream))

    # -- counting --------------------------------------------------------------------------------
    def stream_keys(self, kafka_at: int, flight_date: str | None) -> list[StreamKey]:
        return [(self.stream, kind, bucket, start) for kind, bucket, start in windows(kafka_at, flight_date, self.window_s)]

    def metric_keys(self, p: Prediction, kinds=(WALL, FLIGHT_DATE, TOTAL)) -> list[MetricKey]:
        return [(p.model_name, kind, bucket, start, p.model_version)
                for kind, bucket, start in windows(p.requested_at, p.flight_date, self.window_s) if kind in kinds]

    def count_seen(self, predictions: list[Prediction], metrics: dict[MetricKey, Metrics]) -> None:
        """Every prediction of the batch, in its wall-time window and the total (not per flight
        date: a load test spreads its predictions over a year of dates). Grouped first: at
        10,000 predictions/s the windows are worked out per group, not per prediction."""
        width = self.window_s * 1000
        groups = Counter((p.model_name, p.model_version, p.requested_at // width, p.flight_key is not None)
                         for p in predictions)
        for (name, version, slot, numbered), n in groups.items():
            for kind, bucket, start in windows(slot * width, None, self.window_s):
                m = metrics[(name, kind, bucket, start, version)]
                if numbered:
                    m.predicted += n
                else:
                    m.no_flight_number += n

    def count_scored(self, scored: list[Scored], metrics: dict[MetricKey, Metrics]) -> None:
        for s in scored:
            p, actual = s.prediction, s.report.actual
            for key in self.metric_keys(p):
                m = metrics[key]
                m.first_flight_date = min(filter(None, (m.first_flight_date, p.flight_date)))
                m.last_flight_date = max(filter(None, (m.last_flight_date, p.flight_date)))
                if s.report.cancelled:
                    m.cancelled += 1
                elif s.report.diverted:
                    m.diverted += 1
                else:
                    m.matched += 1
                    m.correct += int(actual == p.prediction)
                    m.probability_sum += p.probability
                    m.confusion[actual * CLASSES + p.prediction] += 1

    @staticmethod
    def applied(rows: dict, deltas: dict, lineage: str) -> dict:
        """The stored rows with this batch's deltas added, except rows that already hold them
        (their ``applied`` is this lineage: a first attempt of this batch wrote them)."""
        out = {}
        for key, delta in deltas.items():
            row = rows.get(key) or type(delta)()
            if row.applied == lineage:
                continue
            row.add(delta)
            row.applied = lineage
            out[key] = row
        return out
