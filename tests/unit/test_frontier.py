"""Where the answers got to (spark_jobs.frontier) and the restarted predict query's skip
(spark_jobs.queries.already_answered): pure parts, a local Spark session for the predicate and
for the header the transform writes."""
import dataclasses
import datetime as dt
import json

from spark_jobs.frontier import REQUEST_HEADER, Answered, header_value, newest_answered, parse_header
from spark_jobs.queries import already_answered

KAFKA_ROWS = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"


def test_the_newest_answered_request_per_partition_and_foreign_headers_ignored():
    seen = [header_value(0, 10, 1000), header_value(1, 4, 900), header_value(0, 12, 1100), header_value(0, 11, 1050),
            b"not:ours", None, b"1:x:2"]
    assert newest_answered(seen) == {0: Answered(12, 1100), 1: Answered(4, 900)}
    assert parse_header(header_value(3, 7, 5)) == (3, Answered(7, 5))
    assert newest_answered([]) == {}


def at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def test_a_restart_skips_only_requests_at_or_before_the_newest_answered_of_their_partition(spark):
    rows = [(None, None, "t", 0, 9, at(1_000)), (None, None, "t", 0, 10, at(1_000)), (None, None, "t", 0, 11, at(1_001)),
            (None, None, "t", 1, 3, at(900)), (None, None, "t", 1, 5, at(950)),
            (None, None, "t", 2, 0, at(10)),             # a partition with no answer found: kept
            (None, None, "t", 0, 2, at(5_000))]          # a recreated topic: low offset, later time: kept
    frame = spark.createDataFrame(rows, KAFKA_ROWS)
    answered = {0: Answered(10, 1_000), 1: Answered(4, 950)}
    kept = {(r.partition, r.offset) for r in frame.where(~already_answered(answered)).collect()}
    assert kept == {(0, 11), (1, 5), (2, 0), (0, 2)}


def test_every_output_record_names_the_request_it_answers(spark):
    from flightdelay.config import load_settings
    from flightdelay.serving import ShadowModel, load_served_model
    from harness.traffic import sample_requests
    from spark_jobs.transform import score

    s = dataclasses.replace(load_settings(), model_name="test_frontier_no_such_model")   # the shipped model
    served = load_served_model(s)
    requests = sample_requests(served.reference, 3)
    rows = [(r["UUID"].encode(), json.dumps(r).encode(), "requests", 1, 40 + i, at(7_000 + i))
            for i, r in enumerate(requests)] + [(b"bad", b"{not json", "requests", 0, 5, at(6_000))]
    frame = spark.createDataFrame(rows, KAFKA_ROWS)
    for shadow in (None, ShadowModel("challenger", served)):
        out = score(frame, served, s, shadow).collect()
        headers = {(r.topic, r.key): [(h.key, bytes(h.value)) for h in r.headers] for r in out}
        assert headers[(s.dlq_topic, b"bad")] == [(REQUEST_HEADER, header_value(0, 5, 6_000))]
        for i, r in enumerate(requests):
            assert headers[(s.response_topic, r["UUID"].encode())] == [(REQUEST_HEADER, header_value(1, 40 + i, 7_000 + i))]
        assert len(out) == 4 if shadow is None else len(out) == 7
