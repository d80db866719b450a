"""Every query example of docs/stores-and-querying.md, run as written against the real servers
(only the addresses and the archive path are swapped for this stack's): pymongo, CQL on both
Cassandra tables, Spark SQL over the parquet archive on HDFS, WebHDFS / hdfscli listings; the
outcome tables and the scored archive (with a model name, outcome stream and UUID of the test's
own, so the platform's live metrics stay clean)."""
import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flightdelay.config import REPO_ROOT
from flightdelay.stores import cassandra, mongo, parquet

EXAMPLE = re.compile(r"<!-- query-example: (\S+) -->\n```\w+\n(.*?)```", re.S)
UUID = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff"
PREDICTION = {"UUID": UUID, "Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "Route": "EWR-IAH",
              "FlightDate": "2013-12-24", "FlightNum": "1545", "CRSDepTime": 529, "CRSArrTime": 830,
              "DepDelay": 45.0, "prediction": 2, "label": "slightly late (0-30 min)",
              "probabilities": [0.1, 0.2, 0.6, 0.1], "model_name": "flight_delay_rf", "model_version": "1",
              "requested_at": 1_795_780_800_000, "predicted_at": 1_795_780_800_040}  # 2026-11-27T12:00Z


DOC = REPO_ROOT / "docs" / "stores-and-querying.md"


def examples() -> dict[str, str]:
    found = dict(EXAMPLE.findall(DOC.read_text()))
    assert set(found) == {"pymongo", "cql", "spark-sql", "webhdfs", "cql-outcomes", "spark-sql-scored"}, sorted(found)
    return found


@pytest.fixture(scope="module")
def servers(stack):
    return stack.require("mongo", "cassandra", "hdfs")


@pytest.fixture(scope="module")
def archive(servers, spark, tmp_path_factory):
    """A scratch archive written by Spark's parquet file sink (with its commit log) holding
    the example prediction, and its page aggregate."""
    s = dataclasses.replace(servers, prediction_archive_path=f"/tmp/test-readme/{uuid.uuid4().hex}")
    source = tmp_path_factory.mktemp("source")
    (source / "rows.json").write_text(json.dumps({k: PREDICTION[k] for k in ("UUID", "FlightDate", "prediction", "label")}))
    (spark.readStream.schema("UUID STRING, FlightDate STRING, prediction INT, label STRING").json(str(source))
     .writeStream.format("parquet").partitionBy("FlightDate").option("path", parquet.url(s))
     .option("checkpointLocation", str(tmp_path_factory.mktemp("checkpoint")))
     .trigger(availableNow=True).start().awaitTermination(300))
    parquet.summary(parquet.hdfs_client(s), s, budget_s=None)
    yield s
    parquet.hdfs_client(s).delete(s.prediction_archive_path, recursive=True)


def local(code: str, s) -> str:
    """The example with this stack's addresses and archive path."""
    return (code.replace("mongodb://127.0.0.1:27017", f"mongodb://{s.host}:{s.mongo_port}")
            .replace("hdfs://127.0.0.1:8020", s.hdfs_url).replace("http://127.0.0.1:9870", s.webhdfs_url)
            .replace("/user/spark/prediction", s.prediction_archive_path)
            .replace("flight_delay.predictions_", f"{s.cassandra_keyspace}.predictions_"))


def run_python(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC.relative_to(REPO_ROOT)), "exec"), {})
    return out.getvalue()


def test_the_pymongo_example(servers):
    with mongo.client(servers) as c:  # the example's own document, as this version writes it
        mongo.collection(c, servers).delete_one({"_id": UUID})
    writer = mongo.MongoWriter(servers)
    try:
        writer.write([writer.convert(PREDICTION)])
    finally:
        writer.reset()
    out = run_python(local(examples()["pymongo"], servers))
    assert f"'_id': '{UUID}'" in out and "'label': 'slightly late (0-30 min)'" in out
    assert f"{UUID} 2013-12-24 2 slightly late (0-30 min)" in out  # the route-day query found it
    assert "'_id': '2026-11-27'" in out and "'n': " in out


def test_the_cql_examples_on_both_tables(servers):
    writer = cassandra.CassandraWriter(servers)
    try:
        writer.write([writer.convert(PREDICTION)])
    finally:
        writer.reset()
    statements = [st.strip() for st in local(examples()["cql"], servers).split(";") if st.strip()]
    assert len(statements) == 2
    assert statements[1].endswith("LIMIT 10")
    cluster, sess = cassandra.session(servers)
    try:
        by_uuid, by_route_day = (list(sess.execute(st)) for st in statements)
        # Other tests store flights of the same route and day too (the e2e form's flight): the
        # example's newest 10 need not hold this one, the whole partition does.
        whole_day = list(sess.execute(statements[1].removesuffix("LIMIT 10")))
    finally:
        cluster.shutdown()
    assert [(r.route, r.prediction, r.label) for r in by_uuid] == [("EWR-IAH", 2, "slightly late (0-30 min)")]
    assert 1 <= len(by_route_day) <= 10
    assert UUID in {r.uuid for r in whole_day}


def test_the_spark_sql_example(archive):
    out = run_python(local(examples()["spark-sql"], archive))
    assert re.search(r"\|2013-12-24\s*\|2\s*\|slightly late \(0-30 min\)\s*\|1\s*\|", out), out


def test_the_webhdfs_and_hdfscli_examples(archive, tmp_path):
    script = local(examples()["webhdfs"], archive)
    script = (script.replace("/tmp/hdfscli.cfg", str(tmp_path / "hdfscli.cfg"))
              .replace("~/.cache/flightdelay/venv/bin", str(Path(sys.executable).parent)))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "DIRECTORY FlightDate=2013-12-24" in done.stdout and "DIRECTORY _spark_metadata" in done.stdout
    assert "FILE _fd_counts.json" in done.stdout
    assert "'FlightDate=2013-12-24'" in done.stdout  # CLIENT.list in hdfscli's interactive prompt
    assert '{"version":1' in done.stdout  # the aggregate, streamed by hdfscli download


# -- outcomes and live metrics ------------------------------------------------------------------------
SCORED_EXAMPLE_UUID = "0d2f6e4c-5b1a-4c3e-9f7d-2a6b8c1e4f90"


def test_the_outcome_cql_examples(servers):
    from flightdelay.outcomes import Join, prediction_of, report_of
    from flightdelay.stores.outcomes import CassandraJoinStore

    s = servers
    own = uuid.uuid4().hex[:8]
    name, stream, request_uuid = f"docs_model_{own}", f"docs-outcome-{own}", str(uuid.uuid4())
    now = int(time.time() * 1000)
    prediction = {**PREDICTION, "UUID": request_uuid, "FlightDate": "2013-11-01", "FlightNum": 1545,
                  "model_name": name, "model_version": "7", "requested_at": now, "predicted_at": now}
    writer = cassandra.CassandraWriter(s)
    try:
        writer.write([writer.convert(prediction)])
    finally:
        writer.reset()
    store = CassandraJoinStore(s, name, stream)
    join = Join(store, stream, 7 * 86400, 60)
    outcome = {"outcome_id": str(uuid.uuid4()), "reported_at": now + 1000, "Carrier": "UA", "FlightNum": 1545,
               "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-11-01", "CRSDepTime": 529, "DepDelay": 45.0,
               "ArrDelay": 10.0, "Cancelled": False, "Diverted": False}  # 10 min late: class 2, as predicted
    try:
        join.process([prediction_of(prediction, now)], [], [], "docs:0")
        join.process([], [report_of(outcome, now + 1000)], [], "docs:1")
    finally:
        store.reset()
    code = (local(examples()["cql-outcomes"], s).replace("'flight_delay_rf'", f"'{name}'")
            .replace("'flight-delay-ml-outcome'", f"'{stream}'").replace(SCORED_EXAMPLE_UUID, request_uuid)
            .replace("flight_delay.", f"{s.cassandra_keyspace}."))
    statements = [st.strip() for st in code.split(";") if st.strip()]
    assert len(statements) == 4
    cluster, sess = cassandra.session(s)
    try:
        total, by_date, scored, stream_rows = (list(sess.execute(st)) for st in statements)
    finally:
        cluster.shutdown()
    assert [(r.model_version, r.matched, r.accuracy, r.expected_accuracy) for r in total] == [("7", 1, 1.0, 0.6)]
    assert list(total[0].confusion)[2 * 4 + 2] == 1 and sum(total[0].confusion) == 1
    assert [(r.model_version, r.matched, r.accuracy) for r in by_date] == [("7", 1, 1.0)]
    assert [(r.prediction, r.actual_class, r.correct, r.arr_delay, r.status) for r in scored] == [
        (2, 2, True, 10.0, "scored")]
    assert [(r.outcomes, r.matched, r.late, r.invalid) for r in stream_rows] == [(1, 1, 0, 0)]


@pytest.fixture(scope="module")
def scored_archive(servers, spark, tmp_path_factory):
    """A scratch archive of scored predictions written by Spark's parquet file sink."""
    s = dataclasses.replace(servers, scored_archive_path=f"/tmp/test-readme-scored/{uuid.uuid4().hex}")
    source = tmp_path_factory.mktemp("scored-source")
    rows = [{"UUID": str(uuid.uuid4()), "FlightDate": day, "model_version": "default", "status": "scored",
             "prediction": cls, "actual": actual, "correct": cls == actual, "probability": 0.5}
            for day, cls, actual in (("2013-11-01", 2, 2), ("2013-11-01", 1, 2), ("2013-11-02", 0, 0))]
    (source / "rows.json").write_text("\n".join(json.dumps(r) for r in rows))
    (spark.readStream.schema("UUID STRING, FlightDate STRING, model_version STRING, status STRING, prediction INT, "
                             "actual INT, correct BOOLEAN, probability DOUBLE").json(str(source))
     .writeStream.format("parquet").partitionBy("FlightDate").option("path", parquet.scored_url(s))
     .option("checkpointLocation", str(tmp_path_factory.mktemp("scored-checkpoint")))
     .trigger(availableNow=True).start().awaitTermination(300))
    yield s
    parquet.hdfs_client(s).delete(s.scored_archive_path, recursive=True)


def test_the_spark_sql_example_over_the_scored_archive(scored_archive):
    s = scored_archive
    code = examples()["spark-sql-scored"].replace("hdfs://127.0.0.1:8020", s.hdfs_url).replace(
        "/user/spark/scored", s.scored_archive_path)
    out = run_python(code)
    assert re.search(r"\|default\s*\|2013-11-01\|2\s*\|0\.5\s*\|0\.5\s*\|", out), out
    assert re.search(r"\|default\s*\|2013-11-02\|1\s*\|1\.0\s*\|0\.5\s*\|", out), out
    assert re.search(r"\|\s*2\|\s*1\|\s*1\|", out) and re.search(r"\|\s*0\|\s*0\|\s*1\|", out), out
