"""Every query example of docs/stores-and-querying.md, run as written against the real servers
(only the addresses and the archive path are swapped for this stack's): pymongo, CQL on both
Cassandra tables, Spark SQL over the parquet archive on HDFS, WebHDFS / hdfscli listings."""
import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
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
    assert set(found) == {"pymongo", "cql", "spark-sql", "webhdfs"}, sorted(found)
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
