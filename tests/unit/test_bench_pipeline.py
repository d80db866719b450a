"""bench.pipeline's pure parts: latency both ways (the client's, and Kafka CreateTime to
CreateTime as Apache Spark's real-time-mode benchmark measures it), its options, the abrupt
step mode's order, refusing --platform when the platform is down, and the report's block."""
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

import bench.pipeline as pipeline
from bench.pipeline import Collector, create_time_ms, kafka_latencies_ms, parse_args
from flightdelay.config import load_settings
from harness import report
from harness.stats import percentiles_ms


def test_kafka_latency_is_the_response_create_time_minus_the_requests_per_uuid():
    sent_at = {"a": 1000.0004, "b": 1000.010, "c": 1000.020, "d": 1000.030}
    # a's request CreateTime is 1,000,000 ms (truncated like requested_at), its response 1,000,012
    response_created = {"a": 1_000_012, "b": 1_000_050, "c": 1_000_021, "x": 5}
    assert kafka_latencies_ms(sent_at, response_created) == [1, 12, 40]  # d unanswered, x not ours
    assert kafka_latencies_ms(sent_at, response_created, ["b", "d"]) == [40]  # only the UUIDs asked for
    assert percentiles_ms(kafka_latencies_ms(sent_at, response_created), prefix="kafka_") == {
        "kafka_p50_ms": 12, "kafka_p95_ms": 40, "kafka_p99_ms": 40}


def test_the_request_create_time_is_the_requested_at_the_bench_sends():
    assert create_time_ms(1765000000.9999) == 1765000000999


def test_collector_keeps_the_first_responses_create_time_and_counts_other_timestamps():
    collector = Collector(load_settings())
    collector.take("a", 0, 7, (TIMESTAMP_CREATE_TIME, 1_000), now=2.0)
    collector.take("a", 1, 3, (TIMESTAMP_CREATE_TIME, 9_000), now=3.0)  # a duplicate: the first one counts
    collector.take("b", 1, 4, (TIMESTAMP_LOG_APPEND_TIME, 1_500), now=2.5)
    assert collector.arrived == {"a": 2.0, "b": 2.5}
    assert collector.created == {"a": 1_000}
    assert (collector.duplicates, collector.not_create_time) == (1, 1)
    assert collector.read_to == {0: 8, 1: 5}


def test_a_collector_from_given_offsets_is_at_the_end_only_after_reading_past_them():
    collector = Collector(load_settings(), start_offsets={0: 100, 1: 40})
    assert collector.at_end_of({0: 100, 1: 40})  # nothing new on the platform's topic
    assert not collector.at_end_of({0: 101, 1: 40})


def test_default_options_run_a_job_of_its_own_with_the_gentle_ramp():
    args = parse_args([])
    assert (args.mode, args.ramp_mode, args.microbatch_seconds, args.step_from) == ("own job", "gentle", 60.0, None)


def test_step_from_names_the_abrupt_mode():
    args = parse_args(["--step-from", "100", "--ramp", "2000"])
    assert (args.step_from, args.ramp_mode) == (100.0, "step from 100/s")
    with pytest.raises(SystemExit):
        parse_args(["--step-from", "0"])


def test_platform_mode_has_no_microbatch_step_and_no_shadow():
    args = parse_args(["--platform"])
    assert (args.mode, args.microbatch_seconds) == ("platform", 0.0)
    assert parse_args(["--platform", "--microbatch-seconds", "0"]).microbatch_seconds == 0.0
    for refused in (["--platform", "--shadow"], ["--platform", "--microbatch-seconds", "30"]):
        with pytest.raises(SystemExit):
            parse_args(refused)


def test_platform_mode_refuses_when_the_platform_is_not_up_and_starts_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FD_STATE_DIR", str(tmp_path))  # no pid file: nothing of the launcher's runs
    monkeypatch.setattr(pipeline.launcher, "up", lambda *a: pytest.fail("started servers"))
    monkeypatch.setattr(pipeline.machine, "before_bench", lambda *a: pytest.fail("began measuring"))
    assert pipeline.main(["--platform"]) == 2
    out = capsys.readouterr().out
    assert "--platform needs the platform up" in out and "streaming" in out and "kafka" in out


class FakeBench:
    s, collector, cpu = None, None, None


def calls_before_a_ramp_step(monkeypatch, argv: list[str], index: int) -> list:
    calls = []
    monkeypatch.setattr(pipeline, "wait_for_archive", lambda s, wait_s: calls.append("stores catch up"))
    monkeypatch.setattr(pipeline, "step_requests",
                        lambda reference, rate, seconds, seed: calls.append(f"requests for {rate:g}/s") or [rate])
    monkeypatch.setattr(pipeline, "step", lambda s, c, ref, rate, seconds, **kw: calls.append(f"step {rate:g}/s")
                        or {"in_time": 1, "sent": 1, **dict.fromkeys(("p50_ms", "p95_ms", "p99_ms", "kafka_p50_ms",
                                                                      "kafka_p95_ms", "kafka_p99_ms"))})
    bases = []
    requests = pipeline.enter_ramp_step(FakeBench(), None, parse_args(argv), index, 2000.0, bases)
    assert requests == [2000.0]
    return calls + [[b["then_rate"] for b in bases]]


def test_the_gentle_ramp_lets_the_stores_catch_up_before_each_step(monkeypatch):
    assert calls_before_a_ramp_step(monkeypatch, ["--ramp", "1000,2000"], 1) == [
        "stores catch up", "requests for 2000/s", []]


def test_an_abrupt_step_follows_a_step_at_the_from_rate_with_its_requests_made_beforehand(monkeypatch):
    for index in (0, 1):  # the first ramp step too, after the steady step
        assert calls_before_a_ramp_step(monkeypatch, ["--step-from", "100", "--ramp", "1000,2000"], index) == [
            "stores catch up", "requests for 2000/s", "step 100/s", [2000.0]]


def step_record(rate: float, **extra) -> dict:
    return {"rate": rate, "sent": 10, "in_time": 10, "p50_ms": 5.0, "p95_ms": 8.0, "p99_ms": 9.0, "max_ms": 9.5,
            "batches_ended": 0, **extra}


def pipeline_record(**extra) -> dict:
    return {"engine": "compiled", "warmup": "5 s at 1000/s, not counted", "seconds": 10.0, "held_means": "p99",
            "sent": 30, "responses": 30, "lost": 0, "late": 0, "duplicate_responses": 0, "max_held_per_s": 2000.0,
            "mongo_found": 30, "duplicates_in_mongo": 0, "cassandra_found": 30, "duplicates_in_cassandra": 0,
            "stores_caught_up_after_s": 1.0, "steady": step_record(100.0), "ramp": [step_record(2000.0, held=True)],
            "args": {}, **extra}


def test_the_report_shows_both_latencies_and_the_steps_from_in_the_order_they_ran():
    kafka = {"kafka_p50_ms": 3, "kafka_p95_ms": 6, "kafka_p99_ms": 7}
    r = pipeline_record(mode="platform", args={"step_from": 100.0}, steady=step_record(100.0, **kafka),
                        ramp=[step_record(2000.0, held=True, **kafka)],
                        step_from=[step_record(100.0, then_rate=2000.0, **kafka)])
    lines = report.pipeline(r)
    assert "platform's own streaming job" in lines[0] and "straight from 100/s" in lines[0]
    assert lines[2].startswith("| step | sent | in time | p50 ms | p95 ms | p99 ms | max ms | Kafka p50 ms | "
                               "Kafka p95 ms | Kafka p99 ms | held |")
    assert [line.split(" | ")[0] for line in lines[4:7]] == ["| steady 100/s", "| from 100/s", "| ramp 2,000/s"]
    assert lines[6].startswith("| ramp 2,000/s | 10 | 10 | 5 | 8 | 9 | 9.5 | 3 | 6 | 7 | yes |")


def test_the_report_of_an_older_record_is_what_it_was():
    lines = report.pipeline(pipeline_record())
    assert lines[0].startswith("Its own streaming job on bench-only topics")
    assert "Kafka" not in lines[2] and "straight" not in lines[0]


def test_archive_lag_counts_the_outcome_topic_for_the_query_that_joins_it():
    s = load_settings()
    topics = pipeline.archive_topics(s)
    ends = {s.response_topic: 11_000, s.outcome_topic: 12_382}  # the platform's outcome topic holds records
    assert pipeline.archive_lag(ends, {"archive-mongo": 11_000, "archive-cassandra": 23_382}, topics) == {
        "archive-mongo": 0, "archive-cassandra": 0}
    assert pipeline.archive_lag(ends, {"archive-mongo": 10_000}, topics) == {
        "archive-mongo": 1_000, "archive-cassandra": 23_382}  # no status for it yet: everything to do
