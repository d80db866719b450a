"""The join of predictions and outcomes (flightdelay.outcomes) against a store in dicts: both
orders of arrival, repeats, the horizon, cancellations, and idempotency when the job dies at
any write of any batch and replays it."""
import copy
import dataclasses
import random

import pytest

from flightdelay import schema
from flightdelay.metrics import metrics_from_confusion
from flightdelay.outcomes import (
    FLIGHT_DATE,
    TOTAL,
    WALL,
    Join,
    Metrics,
    Prediction,
    Report,
    StreamCounts,
    day_start_ms,
)

HOUR = 3_600_000
T0 = 1_800_000_000_000  # wall clock of the tests, epoch ms
MODEL = "flight_delay_rf"
STREAM = "flight-delay-ml-outcome"


class Crash(Exception):
    pass


class MemoryStore:
    """What CassandraJoinStore keeps, in dicts; ``crash_at`` makes the n-th write raise."""

    def __init__(self):
        self.predictions_by_part: dict = {}
        self.reports_by_part: dict = {}
        self.scored: dict = {}
        self.metrics: dict = {}
        self.stream: dict = {}
        self.writes = 0
        self.crash_at = None

    def write_predictions(self, predictions):
        for p in predictions:
            self.predictions_by_part.setdefault(p.partition, {})[p.uuid] = dataclasses.replace(p, kafka_at=None)

    def _write(self):
        self.writes += 1
        if self.crash_at is not None and self.writes >= self.crash_at:
            raise Crash(f"killed at write {self.writes}")

    def outcome_partitions(self):
        return {p for p, rows in self.reports_by_part.items() if rows}

    def reports(self, partitions):
        return {p: list(self.reports_by_part.get(p, {}).values()) for p in partitions}

    def predictions(self, partitions):
        return {p: list(self.predictions_by_part.get(p, {}).values()) for p in partitions}

    def scored_lineages(self, uuids):
        return {u: self.scored[u].lineage for u in uuids if u in self.scored}

    def metric_rows(self, keys):
        return {k: copy.deepcopy(self.metrics[k]) for k in keys if k in self.metrics}

    def stream_rows(self, keys):
        return {k: copy.deepcopy(self.stream[k]) for k in keys if k in self.stream}

    def write_scored(self, scored):
        self._write()
        self.scored.update({s.prediction.uuid: s for s in scored})

    def write_reports(self, reports):
        self._write()
        for r in reports:
            self.reports_by_part.setdefault(r.partition, {})[r.outcome_id] = r

    def write_metrics(self, rows):
        self._write()
        self.metrics.update(copy.deepcopy(rows))

    def write_stream(self, rows):
        self._write()
        self.stream.update(copy.deepcopy(rows))


def prediction(uuid, flight=1, cls=2, requested_at=T0, num=True, date="2013-11-01", version="1", prob=0.6):
    fields = {"Carrier": "UA", "FlightNum": 100 + flight if num else None, "Origin": "EWR", "Dest": "IAH",
              "FlightDate": date, "CRSDepTime": 600 + flight}
    return Prediction(uuid=uuid, flight_key=schema.flight_key(fields), carrier="UA", flight_num=fields["FlightNum"],
                      origin="EWR", dest="IAH", flight_date=date, crs_dep_time=600 + flight, model_name=MODEL,
                      model_version=version, prediction=cls, probability=prob, requested_at=requested_at,
                      kafka_at=requested_at + 5)


def report(oid, flight=1, arr=10.0, reported_at=T0 + HOUR, cancelled=False, diverted=False, date="2013-11-01"):
    outcome = {"Carrier": "UA", "FlightNum": 100 + flight, "Origin": "EWR", "Dest": "IAH", "FlightDate": date,
               "CRSDepTime": 600 + flight}
    return Report(outcome_id=oid, flight_key=schema.flight_key(outcome), carrier="UA", flight_num=100 + flight,
                  origin="EWR", dest="IAH", flight_date=date, crs_dep_time=600 + flight,
                  dep_delay=None if cancelled else 5.0, arr_delay=None if cancelled or diverted else arr,
                  cancelled=cancelled, diverted=diverted, reported_at=reported_at, kafka_at=reported_at + 3)


class Job:
    """A sequence of batches through one Join, as the job's query runs them."""

    def __init__(self, store=None, horizon_s=86400.0):
        self.store = store or MemoryStore()
        self.horizon_s = horizon_s
        self.join = self.new_join()
        self.batch = 0

    def new_join(self):
        return Join(self.store, STREAM, self.horizon_s, 60, clock=lambda: T0 / 1000 + 7200)

    def run(self, predictions=(), reports=(), invalid=()):
        self.store.write_predictions(predictions)
        result = self.join.process(list(predictions), list(reports), list(invalid), f"q:{self.batch}")
        self.batch += 1
        return result

    def total(self, version="1") -> Metrics:
        return self.store.metrics.get((MODEL, TOTAL, "", 0, version), Metrics())

    def stream_total(self) -> StreamCounts:
        return self.store.stream.get((STREAM, TOTAL, "", 0), StreamCounts())


def test_a_prediction_then_its_outcome_is_scored_once_with_the_label_bucket():
    job = Job()
    job.run([prediction("a", cls=2)])
    assert job.total().predicted == 1 and job.total().awaiting == 1
    result = job.run(reports=[report("o1", arr=10.0)])  # 10 min late: class 2
    [scored] = result.scored
    assert (scored.prediction.uuid, scored.report.actual, scored.correct) == ("a", 2, True)
    total = job.total()
    assert (total.matched, total.correct, total.awaiting) == (1, 1, 0)
    assert total.matrix()[2][2] == 1 and total.expected_accuracy == pytest.approx(0.6)
    by_date = job.store.metrics[(MODEL, FLIGHT_DATE, "2013-11", day_start_ms("2013-11-01"), "1")]
    assert by_date.matched == 1 and by_date.predicted == 0  # predictions are seen per wall window only
    stream = job.stream_total()
    assert (stream.outcomes, stream.matched, stream.without_prediction) == (1, 1, 0)
    assert job.store.scored["a"].record()["correct"] is True


def test_an_outcome_before_its_prediction_and_both_in_one_batch():
    job = Job()
    job.run(reports=[report("o1", arr=-20.0)])
    assert job.stream_total().without_prediction == 1
    [scored] = job.run([prediction("a", cls=0)]).scored  # 20 min early: class 0
    assert scored.correct is True
    assert (job.stream_total().matched, job.stream_total().without_prediction) == (1, 0)
    [both] = job.run([prediction("b", flight=2, cls=3)], [report("o2", flight=2, arr=45.0)]).scored
    assert both.prediction.uuid == "b" and both.correct is True
    assert job.total().matched == 2


def test_nothing_is_scored_twice_repeated_responses_redelivered_and_repeated_reports():
    job = Job()
    job.run([prediction("a"), prediction("a")])  # a repeated response in one batch counts once
    job.run(reports=[report("o1")])
    assert job.run([prediction("a")]).scored == []  # the same response again, later
    job.run(reports=[report("o1")])  # the same report again
    result = job.run([prediction("b")], [report("o2", arr=50.0)])  # another report of the flight
    assert [s.prediction.uuid for s in result.scored] == ["b"]
    assert result.scored[0].report.outcome_id == "o1"  # the earliest reported eligible report
    stream = job.stream_total()
    assert (stream.outcomes, stream.redelivered, stream.repeated, stream.matched) == (2, 1, 1, 1)
    assert job.total().matched == 2 and len(job.store.scored) == 2
    assert job.total().predicted == 3  # a response repeated in a later batch is seen again: an estimate


def test_the_horizon_in_both_directions_and_late_reports():
    job = Job(horizon_s=3600)
    job.run([prediction("old", requested_at=T0 - 3 * HOUR)])
    result = job.run(reports=[report("o1", reported_at=T0)])
    assert result.scored == [] and result.reports[0].late
    assert (job.stream_total().late, job.stream_total().without_prediction) == (1, 0)
    # A prediction made within the horizon of that report is scored, and the report is late no more.
    [scored] = job.run([prediction("new", requested_at=T0 + HOUR // 2)]).scored
    assert scored.prediction.uuid == "new"
    assert (job.stream_total().late, job.stream_total().matched) == (0, 1)
    assert job.run([prediction("much-later", requested_at=T0 + 2 * HOUR)]).scored == []


def test_cancelled_and_diverted_flights_resolve_without_a_class_and_unnumbered_predictions_never_match():
    job = Job()
    job.run([prediction("c", flight=1), prediction("d", flight=2), prediction("n", flight=3, num=False)])
    result = job.run(reports=[report("o1", flight=1, cancelled=True), report("o2", flight=2, diverted=True)])
    assert {s.prediction.uuid: s.report.status for s in result.scored} == {"c": "cancelled", "d": "diverted"}
    assert all(s.correct is None and s.report.actual is None for s in result.scored)
    total = job.total()
    assert (total.cancelled, total.diverted, total.matched, total.no_flight_number, total.awaiting) == (1, 1, 0, 1, 0)
    assert total.accuracy is None and sum(total.confusion) == 0


def test_the_metrics_are_those_of_the_holdout_definition():
    job = Job()
    rng = random.Random(5)
    preds = [prediction(f"p{i}", flight=i, cls=rng.randrange(4), prob=rng.random()) for i in range(200)]
    delays = [rng.choice((-30.0, -5.0, 10.0, 90.0)) for _ in preds]
    job.run(preds)
    job.run(reports=[report(f"o{i}", flight=i, arr=d) for i, d in enumerate(delays)])
    total = job.total()
    cm = [[0] * 4 for _ in range(4)]
    for p, d in zip(preds, delays):
        cm[schema.label_for_delay(d)][p.prediction] += 1
    assert total.matrix() == cm
    assert total.accuracy == pytest.approx(metrics_from_confusion(cm)["accuracy"])
    assert total.macro_f1 == pytest.approx(metrics_from_confusion(cm)["macro_f1"])
    assert total.expected_accuracy == pytest.approx(sum(p.probability for p in preds) / len(preds))
    walls = [k for k in job.store.metrics if k[1] == WALL]
    assert walls and sum(job.store.metrics[k].matched for k in walls) == 200


def workload(seed: int):
    """Batches of predictions and reports of 40 flights arriving in a shuffled order, with
    repeats of both halves, a cancellation and invalid outcomes."""
    rng = random.Random(seed)
    events = []
    for f in range(40):
        at = T0 + rng.randrange(0, HOUR)
        events.append(("p", prediction(f"p{f}", flight=f, cls=rng.randrange(4), requested_at=at)))
        if f % 7:
            events.append(("r", report(f"o{f}", flight=f, arr=rng.choice((-20.0, -1.0, 5.0, 60.0)),
                                       reported_at=at + rng.randrange(-HOUR, 3 * HOUR), cancelled=f % 13 == 0)))
    events += [("p", p) for kind, p in events[:6] if kind == "p"] + [("r", r) for kind, r in events[:6] if kind == "r"]
    rng.shuffle(events)
    batches = []
    for start in range(0, len(events), 9):
        chunk = events[start:start + 9]
        batches.append(([e for k, e in chunk if k == "p"], [e for k, e in chunk if k == "r"], [T0] * (start % 2)))
    return batches


def outcome_of(store: MemoryStore):
    """What a run leaves, without the times a replay measures anew (lags, counted_at)."""
    stream = {k: dataclasses.replace(v, lag_ms_sum=0, lag_ms_max=0, applied=None) for k, v in store.stream.items()}
    metrics = {k: dataclasses.replace(v, applied=None) for k, v in store.metrics.items()}
    scored = {u: (s.report.outcome_id, s.lineage) for u, s in store.scored.items()}
    reports = {r.outcome_id: dataclasses.replace(r, counted_at=None)
               for rows in store.reports_by_part.values() for r in rows.values()}
    return metrics, stream, scored, reports


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_at_any_write_of_any_batch_the_replay_leaves_what_an_undisturbed_run_leaves(seed):
    batches = workload(seed)
    undisturbed = Job()
    for batch in batches:
        undisturbed.run(*batch)
    expected = outcome_of(undisturbed.store)
    assert expected[0][(MODEL, TOTAL, "", 0, "1")].matched > 10

    writes_per_batch = 4
    for crash_batch in range(len(batches)):
        for crash_write in range(1, writes_per_batch + 1):
            job = Job()
            for i, batch in enumerate(batches):
                if i == crash_batch:
                    job.store.crash_at = job.store.writes + crash_write
                    with pytest.raises(Crash):
                        job.run(*batch)
                    job.store.crash_at = None  # the restarted query replays the same batch id
                    job.join = job.new_join()  # a new process: nothing in memory
                job.run(*batch)
            assert outcome_of(job.store) == expected, (crash_batch, crash_write)


def test_a_failed_batch_retried_in_the_same_process_drops_its_caches():
    job = Job()
    job.run([prediction("a")])
    job.store.crash_at = job.store.writes + 2
    with pytest.raises(Crash):
        job.run(reports=[report("o1")])
    job.store.crash_at = None  # the same batch id again, in the same process
    [scored] = job.run(reports=[report("o1")]).scored
    assert scored.prediction.uuid == "a" and job.total().matched == 1 and job.stream_total().outcomes == 1


def test_the_report_cache_is_bounded_and_reloads_what_it_dropped():
    job = Job()
    job.join.cache_partitions = 3
    for day in range(1, 8):
        job.run(reports=[report(f"o{day}", date=f"2013-11-0{day}")])
    assert len(job.join._reports) == 3
    [scored] = job.run([prediction("a", date="2013-11-01")]).scored  # evicted, read back from the store
    assert scored.report.outcome_id == "o1"
