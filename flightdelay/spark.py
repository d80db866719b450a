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


JVM_SOURCES = REPO_ROOT / "flightdelay" / "jvm"
# Spark's jars the sources compile against: the UDF interface, the plugin API, slf4j, Scala.
JVM_CLASSPATH = ("spark-sql-api_*.jar", "spark-core_*.jar", "spark-common-utils_*.jar", "scala-library-*.jar",
                 "slf4j-api-*.jar")
ANSWER_PATH_PLUGIN = "flightdelay.jvm.AnswerPathPriority"


def jvm_jar(s: Settings) -> Path | None:
    """The project's JVM classes (flightdelay/jvm: the compiled-forest UDF of
    flightdelay/compiled_forest.py, the answer path's priority plugin) as a jar in the cache,
    built with the JDK's javac against pyspark's own jars the first time these sources are seen.
    None (and MLlib serves, every task at one priority) when no javac is there."""
    import pyspark

    sources = sorted(JVM_SOURCES.glob("*.java"))
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()[:12]
    jar = s.cache / "jvm" / f"flightdelay-jvm-{digest}.jar"
    if jar.exists():
        return jar
    javac = Path(s.java17_home) / "bin" / "javac"
    if not javac.exists():
        log.warning("no javac at %s: the compiled forest is unavailable, MLlib will serve", javac)
        return None
    spark_jars = Path(pyspark.__file__).parent / "jars"
    classpath = [str(p) for pattern in JVM_CLASSPATH for p in spark_jars.glob(pattern)]
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=jar.parent) as build:
        built = subprocess.run([str(javac), "--release", "17", "-nowarn", "-cp", os.pathsep.join(classpath),
                                "-d", build, *map(str, sources)], capture_output=True, text=True)
        if built.returncode:
            raise RuntimeError(f"javac could not build {JVM_SOURCES}: {built.stderr.strip()[-2000:]}")
        partial = Path(build) / jar.name
        with zipfile.ZipFile(partial, "w") as out:
            for cls in Path(build).rglob("*.class"):
                out.write(cls, cls.relative_to(build).as_posix())
        partial.replace(jar)  # atomic: a concurrent builder sees no half-written jar
    log.info("built %s", jar)
    return jar


def answer_path_conf(s: Settings, jar: Path | None, queries: tuple[str, ...]) -> dict[str, str]:
    """The plugin raising the task threads of ``queries`` above the JVM's other threads (the
    store queries') by FD_ANSWER_PATH_NICE; none for 0, no query or no jar, and none on a
    standalone cluster (FD_SPARK_CLUSTER=1), whose executors load plugins before the job's
    jars and have cores of their own. Raising needs root: otherwise the kernel would refuse,
    said once here."""
    if not s.answer_path_nice or not queries or jar is None or not s.spark_master_url.startswith("local"):
        return {}
    if s.answer_path_nice < 0 and os.geteuid() != 0:
        log.warning("FD_ANSWER_PATH_NICE=%d needs root (or RLIMIT_NICE): the predict query's tasks will "
                    "run at the job's niceness, as the store queries'", s.answer_path_nice)
        return {}
    return {"spark.plugins": ANSWER_PATH_PLUGIN, "spark.flightdelay.answerPathQueries": ",".join(queries),
            "spark.flightdelay.answerPathNice": str(s.answer_path_nice)}


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
              answer_path: tuple[str, ...] = (), extra: dict[str, str] | None = None):
    """Return the process's SparkSession, creating it with the project's configuration.

    ``spark.jars`` is only read when the first SparkContext of a process starts, so every
    component must come through here rather than ``SparkSession.builder`` directly.

    Short-lived sessions (tests, training) stop the JIT at its first tier: they start faster
    and use less CPU compiling. A ``long_running`` service (the streaming job) gets the full
    optimising compiler, which after its warm-up makes the hot path several times faster.
    The tasks of the ``answer_path`` queries (the streaming job's predict query and its warm-up)
    run at a lower niceness than the rest of the JVM (``answer_path_conf``).
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
    project_jar = jvm_jar(s) if s.predict_engine == "compiled" or answer_path else None
    jars += [str(project_jar)] if project_jar else []
    conf.update(answer_path_conf(s, project_jar, answer_path))
    if jars:
        # Local paths: on a cluster the driver serves them to every executor, which adds them
        # to its classpath (no executor needs the cache, nor Ivy, nor the network).
        conf["spark.jars"] = ",".join(jars)
    conf.update(extra or {})
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
