"""The streaming job on a Spark standalone cluster (FD_SPARK_CLUSTER=1): the launcher starts a
master and a worker from the pyspark installation, the job is submitted to spark://..., and a
request on Kafka comes back as a prediction on Kafka, computed by the cluster's executor."""
import dataclasses
import json

import pytest

from flightdelay.health import http_get
from flightdelay.reference import load_reference
from harness.job import JobProcess
from harness.traffic import collect, produce_requests, sample_requests
from harness.wait import wait_for
from infra import launcher
from infra.services.spark_cluster import SparkMaster, SparkWorker

APP_NAME = "flight-delay-predict-stream"


@pytest.fixture(scope="module")
def cluster(stack):
    """Kafka and the stores through the session's stack; the master and worker started here
    (and stopped after the module) unless they already run, e.g. from `make up`."""
    s = dataclasses.replace(stack.require("kafka", "mongo", "cassandra", "hdfs", "mlflow"), spark_cluster=1)
    started = [svc for svc in (SparkMaster(), SparkWorker()) if launcher.start(s, svc)]
    yield s
    launcher.down(s, started)


@pytest.fixture
def job(cluster, tmp_path):
    process = JobProcess(tmp_path, FD_SPARK_CLUSTER="1")
    yield process
    process.discard()


def get_json(url: str, what: str):
    """A JSON answer of a Spark UI; a loaded machine may answer slowly: ask again until it does."""
    def attempt():
        try:
            return [json.loads(http_get(url, 20))]
        except OSError:  # timed out or refused: not an answer yet
            return None
    return wait_for(attempt, 180, what)[0]


def test_a_prediction_is_computed_on_the_cluster(cluster, job):
    s = job.settings
    assert s.spark_master_url == f"spark://{s.spark_master_host}:{s.spark_master_port}"
    job.start(timeout=480)  # executors start and load the model remotely: slower than local mode

    # The master runs the job as an application with cores of the worker's. The platform's own
    # job may run on the same cluster under the same name (`make up` with FD_SPARK_CLUSTER=1):
    # this job's application is the one its own Spark UI names.
    app_id = get_json(f"{s.spark_ui_url}/api/v1/applications", "the job's Spark UI")[0]["id"]
    master = f"{s.spark_master_web_url}/json/"
    [app] = wait_for(lambda: [a for a in get_json(master, "the master's /json/")["activeapps"] if a["id"] == app_id],
                     60, "the job to show on the master's /json/")
    assert app["name"] == APP_NAME and app["cores"] >= 2 and app["state"] == "RUNNING"
    workers = [w for w in get_json(master, "the master's /json/")["workers"] if w["state"] == "ALIVE"]
    assert workers and sum(w["coresused"] for w in workers) >= app["cores"]

    request = sample_requests(load_reference(), 1, seed=3)[0]
    produce_requests(s, s.request_topic, [request])
    answers = collect(s, s.response_topic, until=lambda ms: any(m.key().decode() == request["UUID"] for m in ms))
    answer = next(json.loads(m.value()) for m in answers if m.key().decode() == request["UUID"])
    assert answer["prediction"] in (0, 1, 2, 3) and len(answer["probabilities"]) == 4
    assert answer["model_name"] == s.model_name

    # The tasks ran in the worker's executor, not in the driver.
    executors = get_json(f"{s.spark_ui_url}/api/v1/applications/{app_id}/executors", "the job's executors")
    remote = [e for e in executors if e["id"] != "driver"]
    assert remote and sum(e["activeTasks"] + e["completedTasks"] for e in remote) > 0, remote
