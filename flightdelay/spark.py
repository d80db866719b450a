"""The one way the project builds a SparkSession (training, streaming job, tests).

It hands Spark the Kafka connector jars that the launcher resolved into the cache, keeps every
port on loopback and sizes Spark for a 2-core machine. Import pyspark lazily so that importing
this module stays cheap for components that never start Spark.
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings

log = logging.getLogger(__name__)


def kafka_connector_jars(s: Settings) -> list[str]:
    lib = s.cache / "spark-kafka" / "lib"
    return sorted(str(p) for p in lib.glob("*.jar"))


FOREST_UDF_SOURCE = REPO_ROOT / "flightdelay" / "jvm" / "FlatForest.java"


def forest_udf_jar(s: Settings) -> Path | None:
    """The compiled-forest UDF (flightdelay/compiled_forest.py) as a jar in the cache, built
    with the JDK's javac against pyspark's own jars the first time this source is seen. None
    (and MLlib serves) when no javac is there."""
    import pyspark

    source = FOREST_UDF_SOURCE.read_bytes()
    jar = s.cache / "forest-udf" / f"flat-forest-{hashlib.sha256(source).hexdigest()[:12]}.jar"
    if jar.exists():
        return jar
    javac = Path(s.java17_home) / "bin" / "javac"
    if not javac.exists():
        log.warning("no javac at %s: the compiled forest is unavailable, MLlib will serve", javac)
        return None
    spark_jars = Path(pyspark.__file__).parent / "jars"
    classpath = [str(p) for pattern in ("spark-sql-api_*.jar", "scala-library-*.jar") for p in spark_jars.glob(pattern)]
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=jar.parent) as build:
        subprocess.run([str(javac), "--release", "17", "-nowarn", "-cp", os.pathsep.join(classpath),
                        "-d", build, str(FOREST_UDF_SOURCE)], check=True, capture_output=True, text=True)
        partial = Path(build) / jar.name
        with zipfile.ZipFile(partial, "w") as out:
            for cls in Path(build).rglob("*.class"):
                out.write(cls, cls.relative_to(build).as_posix())
        partial.replace(jar)  # atomic: a concurrent builder sees no half-written jar
    log.info("built %s", jar)
    return jar


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
        "spark.hadoop.dfs.replication": str(s.dfs_replication),
        # DataNodes are reached by the name they register (dfs.datanode.hostname: their own
        # address), not by the address the NameNode saw them connect from: on one machine every
        # DataNode connects from 127.0.0.1 whatever address it listens on.
        "spark.hadoop.dfs.client.use.datanode.hostname": "true",
        "spark.hadoop.dfs.client.block.write.replace-datanode-on-failure.policy": "NEVER",
        "spark.log.level": "WARN",
        # base64() output in one line (dead-letter records carry the original bytes as base64).
        "spark.sql.chunkBase64String.enabled": "false",
    }
    if s.spark_master_url.startswith("spark://"):
        conf.update(cluster_conf(s))
    jars = kafka_connector_jars(s)
    forest_jar = forest_udf_jar(s) if s.predict_engine == "compiled" else None
    jars += [str(forest_jar)] if forest_jar else []
    if jars:
        # Local paths: on a cluster the driver serves them to every executor, which adds them
        # to its classpath (no executor needs the cache, nor Ivy, nor the network).
        conf["spark.jars"] = ",".join(jars)
    conf.update(extra or {})
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
