"""A Spark standalone cluster from the pyspark installation: one master and one worker, or with
FD_CLUSTER=1 one worker per address of FD_SPARK_WORKER_HOSTS (``spark-worker-1`` ..., two by
default), each offering FD_SPARK_WORKER_CORES: one worker alone can run the whole job.

Started only with ``FD_SPARK_CLUSTER=1`` (or FD_CLUSTER=1); the streaming job then submits to
``spark://FD_SPARK_MASTER_HOST:FD_SPARK_MASTER_PORT`` instead of ``local[...]`` and its
executors run in the worker's executor JVMs, as on a real cluster. pyspark ships ``bin/spark-class``
and every jar the daemons need, so nothing is downloaded. The master's UI (and its JSON at
``/json/``) is on FD_SPARK_MASTER_UI_PORT (8080, as users of the original platform expect).

Memory on a small machine: the daemons get FD_SPARK_DAEMON_MEMORY each (256 MB), the worker
offers FD_SPARK_WORKER_MEMORY (1 GB) to executors of FD_SPARK_EXECUTOR_MEMORY. The worker offers
FD_SPARK_WORKER_CORES task slots whatever the machine's cores: real-time mode keeps one task per
Kafka partition of the predict query running for a whole batch, and the archive queries need
slots of their own beside them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from flightdelay.config import Settings
from flightdelay.health import check_spark_master, check_spark_worker, http_get
from infra.services.base import ClusterNode, Service, java_env


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_class(s: Settings) -> str:
    return str(spark_home() / "bin" / "spark-class")


def master_state(s: Settings, timeout: float = 2.0) -> dict:
    """The master's own summary (``/json/``): status, workers, active and completed applications."""
    return json.loads(http_get(f"{s.spark_master_web_url}/json/", timeout))


def daemon_env(s: Settings, host: str) -> dict[str, str]:
    env = java_env(s)
    env.update({
        "SPARK_HOME": str(spark_home()),
        "SPARK_DAEMON_MEMORY": s.spark_daemon_memory,
        "SPARK_LOCAL_IP": host,
        # The daemons must never pick up a spark-env.sh or spark-defaults.conf from elsewhere.
        "SPARK_CONF_DIR": str(s.state / "spark-conf"),
    })
    env.pop("SPARK_MASTER", None)
    return env


class SparkMaster(Service):
    name = "spark-master"
    start_timeout = 90.0
    stop_grace = 15.0

    def enabled(self, s: Settings) -> bool:
        return s.spark_standalone

    def port(self, s: Settings) -> int:
        return s.spark_master_port

    def url(self, s: Settings) -> str:
        return f"{s.spark_master_url} (UI {s.spark_master_web_url})"

    def prepare(self, s: Settings, workdir: Path) -> None:
        (s.state / "spark-conf").mkdir(parents=True, exist_ok=True)

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return [spark_class(s), "org.apache.spark.deploy.master.Master", "--host", s.spark_master_host,
                "--port", str(s.spark_master_port), "--webui-port", str(s.spark_master_ui_port)]

    def env(self, s: Settings) -> dict[str, str]:
        return daemon_env(s, s.spark_master_host)

    def probe(self, s: Settings) -> None:
        check_spark_master(s)


class SparkWorker(Service):
    name = "spark-worker"
    start_timeout = 90.0
    stop_grace = 30.0

    def enabled(self, s: Settings) -> bool:
        return bool(s.spark_cluster) and not s.cluster

    def port(self, s: Settings) -> int:
        return s.spark_worker_ui_port

    def url(self, s: Settings) -> str:
        return f"http://{self.host(s)}:{s.spark_worker_ui_port}"

    def prepare(self, s: Settings, workdir: Path) -> None:
        (workdir / "work").mkdir(parents=True, exist_ok=True)
        (s.state / "spark-conf").mkdir(parents=True, exist_ok=True)

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return [spark_class(s), "org.apache.spark.deploy.worker.Worker", "--host", self.host(s),
                "--webui-port", str(s.spark_worker_ui_port), "--cores", str(s.spark_worker_cores),
                "--memory", s.spark_worker_memory, "--work-dir", str(workdir / "work"),
                f"spark://{s.spark_master_host}:{s.spark_master_port}"]

    def env(self, s: Settings) -> dict[str, str]:
        env = daemon_env(s, self.host(s))
        # Executors' own scratch space (shuffle, RocksDB state working copies) beside the worker's.
        env["SPARK_LOCAL_DIRS"] = str(s.state / self.name / "local")
        env.setdefault("PYSPARK_PYTHON", os.sys.executable)
        return env

    def probe(self, s: Settings) -> None:
        """Registered with the master and alive (the worker's own UI answers before that)."""
        check_spark_worker(s, self.host(s))


class SparkWorkerNode(ClusterNode, SparkWorker):
    """Worker ``node`` of the FD_CLUSTER=1 cluster on its own address ``host``."""

    prefix = cluster = "spark-worker"


def running_applications(s: Settings) -> list[dict]:
    return master_state(s).get("activeapps", [])
