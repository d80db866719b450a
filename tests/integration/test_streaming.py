"""The streaming job end to end against the real servers: Kafka in, Kafka + MongoDB +
Cassandra + HDFS parquet out, dead letters, a SIGKILL in the middle.

Each test module run gets its own topics, checkpoint directory, Mongo collection and archive
path, and runs the job as a real process (``python -m spark_jobs.predict_stream``)."""
import base64
import datetime as dt
import json
import uuid as uuidlib

import pytest

from flightdelay import kafka
from flightdelay import status as job_status
from flightdelay.reference import load_reference
from flightdelay.stores import cassandra, mongo, parquet
from harness.job import JobProcess
from harness.models import register_shipped_model
from harness.traffic import collect, produce, produce_requests, sample_requests
from harness.wait import wait_for
from spark_jobs.warmup import warmup_settings, warmup_topics


@pytest.fixture(scope="module")
def servers(stack):
    return stack.require("kafka", "mongo", "cassandra", "hdfs", "mlflow")


@pytest.fixture
def job(servers, tmp_path):
    process = JobProcess(tmp_path)
    yield process
    process.discard()


def responses_by_uuid(messages):
    out = {}
    for m in messages:
        out.setdefault(m.key().decode(), []).append(json.loads(m.value()))
    return out


def mongo_docs(s, uuids):
    with mongo.client(s) as client:
        return mongo.find_by_uuids(mongo.collection(client, s), uuids)


def cassandra_counts(s, requests):
    """{uuid: (rows in predictions_by_uuid, rows in predictions_by_route_day)}."""
    uuids = [r["UUID"] for r in requests]
    cluster, session = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        by_uuid = cassandra.uuids_by_uuid(session, uuids)
        by_route = cassandra.route_day_rows_per_uuid(
            session, uuids, partitions=[(f"{r['Origin']}-{r['Dest']}", dt.date.fromisoformat(r["FlightDate"]))
                                        for r in requests])
    finally:
        cluster.shutdown()
    return {u: (int(u in by_uuid), by_route.get(u, 0)) for u in uuids}


def expected_predictions(spark, requests):
    """What batch transform of the same shipped PipelineModel says for these requests."""
    from pyspark.ml import PipelineModel

    from flightdelay.features import add_features
    from flightdelay.model_dir import SHIPPED
    from flightdelay.schema import REQUEST_DDL

    frame = spark.createDataFrame([tuple(r[c.split()[0]] for c in REQUEST_DDL.split(", ")) for r in requests],
                                  REQUEST_DDL)
    scored = PipelineModel.load(str(SHIPPED.pipeline)).transform(add_features(frame, load_reference()))
    return {r["UUID"]: int(r["prediction"]) for r in scored.select("UUID", "prediction").collect()}


BAD_MESSAGES = [
    (b"bad-json", b"{not json"),
    (b"bad-type", json.dumps({"UUID": str(uuidlib.uuid4()), "Carrier": "UA", "Origin": "EWR", "Dest": "IAH",
                              "FlightDate": "2013-01-03", "CRSDepTime": "early", "CRSArrTime": 830,
                              "DepDelay": 1.0, "requested_at": 1}).encode()),
    (b"missing", json.dumps({"UUID": str(uuidlib.uuid4()), "Carrier": "UA"}).encode()),
    (b"unknown-airport", json.dumps({"UUID": str(uuidlib.uuid4()), "Carrier": "UA", "Origin": "EWR", "Dest": "XXX",
                                     "FlightDate": "2013-01-03", "CRSDepTime": 900, "CRSArrTime": 1100,
                                     "DepDelay": 1.0, "requested_at": 1}).encode()),
    (b"impossible-date", json.dumps({"UUID": str(uuidlib.uuid4()), "Carrier": "UA", "Origin": "EWR", "Dest": "IAH",
                                     "FlightDate": "2013-02-30", "CRSDepTime": 960, "CRSArrTime": 1100,
                                     "DepDelay": 1.0, "requested_at": 1}).encode()),
    (b"oversized", b'{"UUID": "' + b"x" * 20000 + b'"}'),
    (b"garbage-bytes", bytes(range(0, 256, 7)) + b"\xff\xfe\xc3"),  # raw bytes, not UTF-8
]


def test_requests_become_predictions_in_every_store_and_bad_ones_dead_letters(job, spark):
    s = job.settings
    job.start()
    requests = sample_requests(load_reference(), 24, seed=11)
    produce_requests(s, s.request_topic, requests[:12])
    produce(s, s.request_topic, BAD_MESSAGES)
    produce_requests(s, s.request_topic, requests[12:])
    uuids = {r["UUID"] for r in requests}

    responses = responses_by_uuid(collect(s, s.response_topic,
                                          until=lambda ms: {m.key().decode() for m in ms} >= uuids))
    assert set(responses) == uuids  # no response for any bad message
    # The predict query's task threads, and the Kafka producer thread they started, run at
    # FD_ANSWER_PATH_NICE inside the JVM; the store queries' threads at the JVM's niceness.
    raised = {name for name, nice in job.jvm_threads() if nice == s.answer_path_nice}
    assert s.answer_path_nice < 0 and {"Executor task l", "kafka-producer-"} <= raised, raised
    assert not any(name.startswith(("stream execut", "spark-listener")) for name in raised), raised
    expected = expected_predictions(spark, requests)
    for uuid, answers in responses.items():
        for answer in answers:
            assert answer["prediction"] == expected[uuid]
            assert answer["label"] and len(answer["probabilities"]) == 4
            assert abs(sum(answer["probabilities"]) - 1) < 1e-6
            assert answer["model_version"] == "default" and answer["model_name"] == s.model_name

    dead = collect(s, s.dlq_topic, until=lambda ms: len(ms) >= len(BAD_MESSAGES))
    assert sorted(m.key() for m in dead) == sorted(k for k, _ in BAD_MESSAGES)
    reasons = {m.key(): json.loads(m.value()) for m in dead}
    assert "not a JSON object" in reasons[b"bad-json"]["reason"]
    assert "CRSDepTime" in reasons[b"bad-type"]["fields"]
    assert {"Origin", "Dest", "FlightDate", "CRSDepTime"} <= set(reasons[b"missing"]["fields"])
    assert "unknown airport XXX" in reasons[b"unknown-airport"]["fields"]["Dest"]
    assert set(reasons[b"impossible-date"]["fields"]) == {"FlightDate", "CRSDepTime"}
    assert "larger than" in reasons[b"oversized"]["reason"]
    assert "not UTF-8" in reasons[b"garbage-bytes"]["reason"]
    assert base64.b64decode(reasons[b"garbage-bytes"]["raw_base64"]) == dict(BAD_MESSAGES)[b"garbage-bytes"]
    assert reasons[b"bad-json"]["raw"] == "{not json" and reasons[b"bad-json"]["topic"] == s.request_topic
    assert {"partition", "offset"} <= set(reasons[b"bad-json"])

    docs = wait_for(lambda: (d := mongo_docs(s, uuids)) and len(d) == len(uuids) and d, 90, "MongoDB")
    assert {d["_id"] for d in docs} == uuids
    assert all(d["prediction"] == expected[d["_id"]] for d in docs)
    counts = wait_for(lambda: (c := cassandra_counts(s, requests)) and all(v == (1, 1) for v in c.values()) and c,
                      90, "Cassandra")
    assert len(counts) == len(requests)
    archived = wait_for(lambda: (a := parquet.read_uuids(spark, s)) and len(a) >= len(uuids) and a, 120, "the archive")
    assert sorted(archived) == sorted(uuids)
    # The warm-up answered its requests on topics of its own (the response topic holds only ours)
    # and removed them.
    n = s.predict_warmup_requests
    assert n > 0 and f"warm-up of the predict path: {n} of {n} synthetic requests answered" in job.log.read_text()
    wait_for(lambda: not set(warmup_topics(warmup_settings(s))) & set(kafka.admin(s).list_topics(timeout=10).topics),
             30, "the warm-up's topics to be deleted")


def test_kill_minus_nine_mid_stream_loses_and_duplicates_nothing(job, spark):
    s = job.settings
    job.start()
    requests = sample_requests(load_reference(), 300, seed=23)
    uuids = {r["UUID"] for r in requests}
    produce_requests(s, s.request_topic, requests[:150])
    # Kill while the first half is in flight through the stores.
    collect(s, s.response_topic, until=lambda ms: len(ms) >= 40, timeout=120)
    job.kill9()
    produce_requests(s, s.request_topic, requests[150:])
    job.start()

    responses = responses_by_uuid(collect(s, s.response_topic,
                                          until=lambda ms: {m.key().decode() for m in ms} >= uuids, timeout=180))
    assert set(responses) == uuids
    docs = wait_for(lambda: (d := mongo_docs(s, uuids)) and len(d) == len(uuids) and d, 120, "MongoDB")
    assert len(docs) == len({d["_id"] for d in docs}) == len(uuids)
    counts = wait_for(lambda: (c := cassandra_counts(s, requests)) and all(v == (1, 1) for v in c.values()) and c,
                      120, "Cassandra")
    assert set(counts.values()) == {(1, 1)}
    archived = wait_for(lambda: (a := parquet.read_uuids(spark, s)) and len(set(a)) >= len(uuids) and a, 180,
                        "the archive")
    assert len(archived) == len(set(archived)) == len(uuids)


def test_alias_move_is_served_without_a_restart(job, spark):
    from mlflow.tracking import MlflowClient

    s = job.settings
    client = MlflowClient(tracking_uri=s.mlflow_uri, registry_uri=s.mlflow_uri)
    first = register_shipped_model(s, s.model_name)
    client.set_registered_model_alias(s.model_name, s.model_alias, first)
    job.start()
    pid = job.proc.pid

    def versions_of(requests, timeout=120):
        produce_requests(s, s.request_topic, requests)
        wanted = {r["UUID"] for r in requests}
        got = responses_by_uuid(collect(s, s.response_topic,
                                        until=lambda ms: {m.key().decode() for m in ms} >= wanted,
                                        timeout=timeout))
        return {a["model_version"] for u, answers in got.items() if u in wanted for a in answers}

    before_swap = sample_requests(load_reference(), 5, seed=31)
    assert versions_of(before_swap) == {first}

    second = register_shipped_model(s, s.model_name)
    client.set_registered_model_alias(s.model_name, s.model_alias, second)
    wait_for(lambda: versions_of(sample_requests(load_reference(), 1, seed=32), timeout=30) == {second},
             180, f"responses from version {second}", interval=2)
    assert versions_of(sample_requests(load_reference(), 5, seed=33)) == {second}
    assert job.proc.poll() is None and job.proc.pid == pid  # same process: no restart
    # The swap restarted the predict query mid real-time batch: what it had answered, it does not answer again.
    answers = responses_by_uuid(collect(s, s.response_topic, until=lambda ms: False, timeout=10))
    assert {r["UUID"]: len(answers[r["UUID"]]) for r in before_swap} == {r["UUID"]: 1 for r in before_swap}
    assert "skips the requests answered before it started: partition" in job.log.read_text()
    status = job_status.read(s)
    assert status.model == job_status.ModelStatus(s.model_name, second, "mlflow", "compiled")


def test_a_store_outage_stalls_then_catches_up_with_nothing_lost(job, servers):
    """MongoDB stops while requests flow: answers keep coming over Kafka, the Mongo archive
    query retries, and once MongoDB is back every prediction is stored exactly once."""
    from infra import launcher
    from infra.services import by_name

    s = job.settings
    mongo = by_name(["mongo"])[0]
    job.start()
    first = sample_requests(load_reference(), 30, seed=41)
    produce_requests(s, s.request_topic, first)
    wait_for(lambda: len(mongo_docs(s, {r["UUID"] for r in first})) == len(first), 90, "MongoDB before the outage")

    launcher.stop(servers, mongo)  # the stack's own settings: its pid file and data
    try:
        during = sample_requests(load_reference(), 40, seed=42)
        produce_requests(s, s.request_topic, during)
        wanted = {r["UUID"] for r in during}
        answered = collect(s, s.response_topic,
                           until=lambda ms: {m.key().decode() for m in ms} >= wanted, timeout=90)
        assert {m.key().decode() for m in answered} >= wanted  # the user-facing path does not wait
        wait_for(lambda: "archive-mongo batch" in job.log.read_text() and "failed (attempt" in job.log.read_text(),
                 60, "the Mongo archive query to report its retries")
    finally:
        launcher.start(servers, mongo)
    uuids = {r["UUID"] for r in first + during}
    docs = wait_for(lambda: (d := mongo_docs(s, uuids)) and len(d) == len(uuids) and d, 120, "MongoDB to catch up")
    assert len({d["_id"] for d in docs}) == len(uuids)
    assert job.running()
