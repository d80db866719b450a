"""The streaming job's JVM raises the answer path's task threads above its store queries'
(flightdelay/jvm/AnswerPathPriority.java); what the job asks Spark for is pure logic."""
import os
from pathlib import Path

import pytest

from flightdelay.config import Settings
from flightdelay.spark import ANSWER_PATH_PLUGIN, answer_path_conf

JAR = Path("/cache/jvm/flightdelay-jvm-0.jar")


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_the_job_asks_for_the_plugin_with_its_queries_and_niceness(as_root):
    conf = answer_path_conf(Settings(answer_path_nice=-7), JAR, ("predict", "predict-warmup"))
    assert conf == {"spark.plugins": ANSWER_PATH_PLUGIN, "spark.flightdelay.answerPathQueries": "predict,predict-warmup",
                    "spark.flightdelay.answerPathNice": "-7"}


@pytest.mark.parametrize("nice, queries, jar", [(0, ("predict",), JAR), (-10, (), JAR), (-10, ("predict",), None)])
def test_no_plugin_when_turned_off_without_queries_or_without_the_jar(as_root, nice, queries, jar):
    assert answer_path_conf(Settings(answer_path_nice=nice), jar, queries) == {}


def test_no_plugin_on_a_standalone_cluster(as_root):
    assert answer_path_conf(Settings(spark_cluster=True), JAR, ("predict",)) == {}


def test_without_root_a_raise_is_not_asked_for_and_the_log_says_why(monkeypatch, caplog):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert answer_path_conf(Settings(answer_path_nice=-10), JAR, ("predict",)) == {}
    assert "needs root" in caplog.text
    # Lowering needs no privilege.
    assert answer_path_conf(Settings(answer_path_nice=5), JAR, ("predict",))["spark.flightdelay.answerPathNice"] == "5"
