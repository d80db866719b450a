"""The one way the project builds a SparkSession (training, streaming job, tests).

It hands Spark the Kafka connector jars that the launcher resolved into the cache, keeps every
port on loopback and sizes Spark for a 2-core machine. Import pyspark lazily so that importing
this module stays cheap for components that never start Spark.
"""
from __future__ import annotations

import os

from flightdelay.config import Settings


def kafka_connector_jars(s: Settings) -> list[str]:
    lib = s.cache / "spark-kafka" / "lib"
    return sorted(str(p) for p in lib.glob("*.jar"))


QUICK_JIT = "-XX:TieredStopAtLevel=1"


def cluster_conf(s: Settings) -> dict[str, str]:
    """Executors of a standalone cluster: small heaps, the same JVM flags as the driver, and
    executors whose Python (if a query ever needs one) is this interpreter."""
    conf = {
        "spark.executor.memory": s.spark_executor_memory,
        "spark.executor.extraJavaOptions": "-Dio.netty.tryReflectionSetAccessible=true",
    }
    if os.environ.get("PYTHONPATH"):
        conf["spark.executorEnv.PYTHONPATH"] = os.environ["PYTHONPATH"]
    return conf


def get_spark(s: Settings, app_name: str, *, ui: bool = False, long_running: bool = False,
              extra: dict[str, str] | None = None):
    """Return the process's SparkSession, creating it with the project's configuration.

    ``spark.jars`` is only read when the first SparkContext of a process starts, so every
    component must come through here rather than ``SparkSession.builder`` directly.

    Short-lived sessions (tests, training) stop the JIT at its first tier: they start faster
    and use less CPU compiling. A ``long_running`` service (the streaming job) gets the full
    optimising compiler, which after its warm-up makes the hot path several times faster.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("JAVA_HOME", s.java17_home)
    os.environ.setdefault("SPARK_LOCAL_IP", s.host)
    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    conf = {
        "spark.master": s.spark_master_url,
        "spark.driver.host": s.spark_driver_host,
        "spark.driver.bindAddress": s.host,
        "spark.ui.enabled": "true" if ui else "false",
        "spark.ui.port": str(s.spark_ui_port),
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": s.spark_driver_memory,
        "spark.driver.extraJavaOptions": ("" if long_running else QUICK_JIT + " ")
        + "-Dio.netty.tryReflectionSetAccessible=true",
        # A service logs; the console progress bar would fill its log with stage counters.
        "spark.ui.showConsoleProgress": "false",
        "spark.hadoop.dfs.replication": "1",
        "spark.hadoop.dfs.client.block.write.replace-datanode-on-failure.policy": "NEVER",
        "spark.log.level": "WARN",
        # base64() output in one line (dead-letter records carry the original bytes as base64).
        "spark.sql.chunkBase64String.enabled": "false",
    }
    if s.spark_master_url.startswith("spark://"):
        conf.update(cluster_conf(s))
    jars = kafka_connector_jars(s)
    if jars:
        # Local paths: on a cluster the driver serves them to every executor, which adds them
        # to its classpath (no executor needs the cache, nor Ivy, nor the network).
        conf["spark.jars"] = ",".join(jars)
    conf.update(extra or {})
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
