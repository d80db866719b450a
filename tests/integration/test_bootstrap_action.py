"""`python -m infra bootstrap`: what the compose init container runs. Against servers it did not
start, it creates the topics, the keyspace and tables, the collection and its indexes and the
HDFS archive directory that its settings name, and starts nothing."""
import dataclasses
import os
import subprocess
import sys
import uuid as uuidlib

import pytest

from flightdelay import kafka
from flightdelay.config import REPO_ROOT, Settings, env_name, load_settings
from flightdelay.stores import cassandra, mongo, parquet
from infra.services.mongo import ensure_postgres_indexes


@pytest.fixture
def fresh(stack):
    stack.require("kafka", "mongo", "cassandra", "hdfs")
    sfx = uuidlib.uuid4().hex[:8]
    # Every topic of its own: the cleanup deletes them, and the platform's must live on.
    topics = {env_name(f.name): f"test-boot-{f.name.removesuffix('_topic')}-{sfx}"
              for f in dataclasses.fields(Settings) if f.name.endswith("_topic")}
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **topics,
               FD_CASSANDRA_KEYSPACE=f"test_boot_{sfx}",
               FD_MONGO_COLLECTION=f"test_boot_{sfx}", FD_PREDICTION_ARCHIVE_PATH=f"/tmp/test-boot-{sfx}")
    s = load_settings(env)
    assert not set(s.platform_topics) & set(load_settings().platform_topics)
    yield env, s
    kafka.admin(s).delete_topics(list(s.platform_topics))
    mongo.drop_collection(s)
    parquet.delete_archive(s)
    cluster, session = cassandra.session(s)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {s.cassandra_keyspace}")
    finally:
        cluster.shutdown()


def test_bootstrap_creates_what_the_settings_name_on_running_servers(fresh):
    env, s = fresh
    pid_files = sorted(p.name for p in s.state.glob("*/pid.json"))
    result = subprocess.run([sys.executable, "-m", "infra", "bootstrap", "kafka", "mongo", "cassandra", "hdfs"],
                            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in s.state.glob("*/pid.json")) == pid_files  # no server started

    assert set(s.platform_topics) <= set(kafka.admin(s).list_topics(timeout=10).topics)
    cluster, session = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        tables = {r.table_name for r in session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (s.cassandra_keyspace,))}
    finally:
        cluster.shutdown()
    assert {"predictions_by_uuid", "predictions_by_route_day"} <= tables
    with mongo.client(s) as client:
        assert s.mongo_collection in client[s.mongo_database].list_collection_names()
        assert mongo.summary_collection(client, s).name in client[s.mongo_database].list_collection_names()
    # FerretDB on PostgreSQL: the history's indexes are GIN indexes on its table, created by
    # bootstrap, so a second pass has nothing left to create.
    assert s.mongo_backend == "postgresql" and ensure_postgres_indexes(s, s.mongo_collection) == []
    assert parquet.hdfs_client(s).status(s.prediction_archive_path, strict=True)["type"] == "DIRECTORY"
