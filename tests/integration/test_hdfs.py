"""HDFS as the platform uses it: WebHDFS (HdfsCLI) for the web app's history pages, and
``hdfs://`` from Spark for the parquet prediction archive. Every test works under its own path."""
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from flightdelay.stores.parquet import hdfs_client
from infra import launcher
from infra.services import by_name


@pytest.fixture(scope="module")
def hdfs_settings(stack):
    return stack.require("hdfs")


@pytest.fixture(scope="module")
def http():
    session = requests.Session()
    session.trust_env = False  # never through a proxy from the environment: loopback only
    yield session
    session.close()


@pytest.fixture(scope="module")
def webhdfs(hdfs_settings):
    return hdfs_client(hdfs_settings)


@pytest.fixture
def scratch(webhdfs):
    path = f"/tmp/test-hdfs/{uuid.uuid4().hex}"
    yield path
    webhdfs.delete(path, recursive=True)


def test_start_is_idempotent_and_archive_dir_exists(hdfs_settings, webhdfs):
    svc = by_name(["hdfs"])[0]
    assert launcher.start(hdfs_settings, svc) is False  # already up: not started twice
    svc.bootstrap(hdfs_settings)  # bootstrap may run again without harm
    status = webhdfs.status(hdfs_settings.prediction_archive_path)
    assert status["type"] == "DIRECTORY"


def test_webhdfs_write_list_read_delete(webhdfs, scratch):
    path = f"{scratch}/hello.txt"
    webhdfs.write(path, data="UUID,prediction\nabc,2\n", encoding="utf-8", replication=1)

    assert webhdfs.list(scratch) == ["hello.txt"]
    with webhdfs.read(path, encoding="utf-8") as reader:
        assert reader.read() == "UUID,prediction\nabc,2\n"

    assert webhdfs.delete(path) is True
    assert webhdfs.list(scratch) == []
    assert webhdfs.status(path, strict=False) is None


def test_webhdfs_redirects_stay_on_loopback(hdfs_settings, http, scratch):
    """CREATE answers with a redirect to the DataNode; it must name the loopback address,
    not the machine's hostname, or clients would leave 127.0.0.1."""
    url = f"{hdfs_settings.webhdfs_url}/webhdfs/v1{scratch}/redirect.txt"
    params = {"op": "CREATE", "user.name": hdfs_settings.hdfs_user}
    answer = http.put(url, params=params, allow_redirects=False, timeout=30)
    assert answer.status_code == 307, answer.text
    location = urlsplit(answer.headers["Location"])
    assert location.hostname == hdfs_settings.host

    written = http.put(answer.headers["Location"], data=b"via datanode", timeout=30)
    assert written.status_code == 201, written.text


def test_spark_parquet_roundtrip(spark, hdfs_settings, webhdfs, scratch):
    from pyspark.testing import assertDataFrameEqual

    rows = [
        ("7c3e0a56-1", "AA", "JFK", "LAX", "2024-01-02", 2),
        ("7c3e0a56-2", "DL", "LGA", "ATL", "2024-01-02", 0),
        ("7c3e0a56-3", "UA", "EWR", "SFO", "2024-01-03", 3),
    ]
    df = spark.createDataFrame(rows, "UUID string, Carrier string, Origin string, Dest string, "
                                     "FlightDate string, prediction int")
    target = f"{hdfs_settings.hdfs_url}{scratch}/prediction"

    df.write.mode("overwrite").partitionBy("FlightDate").parquet(target)

    # With the schema given, the partition column keeps its type (inferred it would be a date).
    back = spark.read.schema(df.schema).parquet(target).select(*df.columns)
    assertDataFrameEqual(back, df)

    # The same files, seen the way the web app's history pages see them.
    listing = webhdfs.list(f"{scratch}/prediction")
    assert "_SUCCESS" in listing
    assert {"FlightDate=2024-01-02", "FlightDate=2024-01-03"} <= set(listing)
    parquet_files = [f"{root}/{name}" for root, _, files in webhdfs.walk(f"{scratch}/prediction")
                     for name in files if name.endswith(".parquet")]
    assert parquet_files
    assert all(webhdfs.status(p)["length"] > 0 for p in parquet_files)
