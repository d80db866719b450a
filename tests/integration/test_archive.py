"""The archive page's aggregate (flightdelay.stores.parquet.summary) over a real Spark file
sink on the real HDFS: it agrees with a scan of every file, is kept on HDFS, and a later view
reads only files committed since (or reports them pending when out of time)."""
import dataclasses
import json
import uuid

import pytest

from flightdelay.stores import parquet

SCHEMA = "UUID STRING, Route STRING, FlightDate STRING, prediction INT"


@pytest.fixture(scope="module")
def hdfs_settings(stack):
    return stack.require("hdfs")


@pytest.fixture
def archive(hdfs_settings, tmp_path):
    """Settings whose archive path is a scratch directory of its own, and a function that
    runs one micro-batch of the file sink (availableNow) over the given rows."""
    s = dataclasses.replace(hdfs_settings, prediction_archive_path=f"/tmp/test-archive/{uuid.uuid4().hex}")
    source, checkpoint = tmp_path / "source", tmp_path / "checkpoint"
    source.mkdir()

    def commit(spark, rows):
        (source / f"{uuid.uuid4().hex}.json").write_text("\n".join(json.dumps(r) for r in rows))
        query = (spark.readStream.schema(SCHEMA).json(str(source)).writeStream.format("parquet")
                 .partitionBy(parquet.PARTITION_COLUMN).option("path", parquet.url(s))
                 .option("checkpointLocation", str(checkpoint)).trigger(availableNow=True).start())
        query.awaitTermination(300)

    yield s, commit
    parquet.hdfs_client(s).delete(s.prediction_archive_path, recursive=True)


def rows(n, day, cls_of=lambda i: i % 4):
    return [{"UUID": str(uuid.uuid4()), "Route": "JFK-LAX", "FlightDate": day, "prediction": cls_of(i)}
            for i in range(n)]


class CountingReads:
    def __init__(self, monkeypatch):
        self.paths = []
        real = parquet.file_counts
        monkeypatch.setattr(parquet, "file_counts", lambda hdfs, path: self.paths.append(path) or real(hdfs, path))


def test_the_aggregate_counts_each_committed_file_once(spark, archive, monkeypatch):
    s, commit = archive
    hdfs = parquet.hdfs_client(s)
    commit(spark, rows(5, "2013-11-01") + rows(3, "2013-11-02", cls_of=lambda i: 3))
    first = parquet.summary(hdfs, s, budget_s=None)
    assert first["per_day"] == parquet.scan_summary(hdfs, s)["per_day"] == {
        "2013-11-01": {0: 2, 1: 1, 2: 1, 3: 1}, "2013-11-02": {0: 0, 1: 0, 2: 0, 3: 3}}
    assert (first["total"], first["pending_files"]) == (8, 0)
    assert parquet.COUNTS_FILE in hdfs.list(s.prediction_archive_path)  # kept next to the data

    reads = CountingReads(monkeypatch)
    assert parquet.summary(hdfs, s)["per_day"] == first["per_day"]
    assert reads.paths == []  # nothing new: no parquet file is opened

    commit(spark, rows(4, "2013-11-02", cls_of=lambda i: 0))
    after = parquet.summary(parquet.hdfs_client(s), s, budget_s=None)  # a new client: nothing cached
    assert after["per_day"]["2013-11-02"] == {0: 4, 1: 0, 2: 0, 3: 3} and after["total"] == 12
    assert len(reads.paths) == 1 and "FlightDate=2013-11-02" in reads.paths[0]  # only the new file
    assert after["per_day"] == parquet.scan_summary(hdfs, s)["per_day"]


def test_files_not_counted_within_the_budget_are_pending_then_counted(spark, archive):
    s, commit = archive
    hdfs = parquet.hdfs_client(s)
    commit(spark, rows(2, "2013-11-03") + rows(2, "2013-11-04") + rows(2, "2013-11-05"))
    late = parquet.summary(hdfs, s, budget_s=0.0)
    assert (late["total"], late["pending_files"]) == (0, 3)
    caught_up = parquet.summary(hdfs, s, budget_s=None, background_save=True)  # as the web app does
    assert (caught_up["total"], caught_up["pending_files"], caught_up["files"]) == (6, 0, 3)
    caught_up["saving"].join(60)
    assert len(parquet.load_counts(hdfs, s)["files"]) == 3  # saved: the next view reads no parquet file


def test_an_empty_archive_has_an_empty_summary(archive):
    s, _ = archive
    hdfs = parquet.hdfs_client(s)
    hdfs.makedirs(s.prediction_archive_path)
    assert parquet.summary(hdfs, s)["total"] == 0
