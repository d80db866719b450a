"""The streaming job as a child process with its own topics, checkpoints, Mongo collection,
archive path and model name, for benchmarks and tests that must not touch the platform's."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import uuid as uuidlib
from pathlib import Path

from flightdelay import status as job_status
from flightdelay.config import REPO_ROOT, load_settings
from flightdelay.kafka import delete_topics, ensure_topics
from flightdelay.stores import mongo, parquet
from harness.ports import free_port
from harness.wait import wait_for
from infra.services.mongo import Mongo
from infra.services.spark_connector import install_spark_connector

QUERIES = 5  # predict, the three archive queries and archive-scored


class JobProcess:
    """The streaming job as a child process with bench/test-only topics, paths and model name."""

    def __init__(self, tmp: Path, **extra_env):
        sfx = uuidlib.uuid4().hex[:8]
        tmp.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=str(REPO_ROOT),
                        FD_STATE_DIR=str(tmp / "state"),
                        FD_REQUEST_TOPIC=f"test-req-{sfx}", FD_RESPONSE_TOPIC=f"test-resp-{sfx}",
                        FD_DLQ_TOPIC=f"test-dlq-{sfx}", FD_MONGO_COLLECTION=f"test_predictions_{sfx}",
                        FD_OUTCOME_TOPIC=f"test-outcome-{sfx}", FD_SCORED_TOPIC=f"test-scored-{sfx}",
                        FD_MONITOR_TOPIC=f"test-monitor-{sfx}", FD_SHADOW_TOPIC=f"test-shadow-{sfx}",
                        # discard() deletes the job's topics: every platform topic needs its own name here
                        FD_PREDICTION_ARCHIVE_PATH=f"/tmp/test-archive-{sfx}",
                        FD_SCORED_ARCHIVE_PATH=f"/tmp/test-scored-{sfx}",
                        FD_MODEL_NAME=f"test_model_{sfx}",  # no champion: the shipped model serves
                        FD_SPARK_UI_PORT=str(free_port()), FD_ARCHIVE_TRIGGER="3 seconds",
                        FD_MODEL_POLL_S="2", FD_SPARK_DRIVER_MEMORY="1g",
                        # the warm-up's code path at each start, not the JIT's full warm-up (13 s)
                        FD_PREDICT_WARMUP_REQUESTS="2000")
        self.env.update(extra_env)
        self.settings = load_settings(self.env)
        self.log = tmp / "job.log"
        self.proc = None
        install_spark_connector(self.settings)
        ensure_topics(self.settings, self.settings.platform_topics)
        # The collection, its indexes and the _id lookup index, which lives in the running
        # server's own state directory (not this job's).
        Mongo().bootstrap(dataclasses.replace(self.settings, state_dir=load_settings().state_dir))

    def start(self, timeout: float = 240) -> None:
        job_status.clear(self.settings)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "spark_jobs.predict_stream"], env=self.env,
                                     cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()  # the child holds its own copy
        wait_for(self.running, timeout, f"the streaming job to run its queries (log {self.log})")

    def running(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"job exited with {self.proc.returncode}; log {self.log}:\n"
                               + self.log.read_text()[-3000:])
        status = job_status.read(self.settings)
        return status is not None and status.all_running(QUERIES)

    def discard(self) -> None:
        """Stop the job and remove what it wrote of its own: its collection (FerretDB scans whole
        collections), its parquet archives and its topics. Its Cassandra rows stay: they are in
        the platform's tables, under UUIDs, a model name and an outcome stream of its own."""
        self.stop()
        mongo.drop_collection(self.settings)
        parquet.delete_archive(self.settings)
        parquet.hdfs_client(self.settings).delete(self.settings.scored_archive_path, recursive=True)
        delete_topics(self.settings, self.settings.platform_topics)

    def jvm_threads(self) -> list[tuple[str, int]]:
        """(name as the kernel has it, at most 15 characters; niceness) of each thread of the
        job's JVM, the Java child of its Python driver."""
        import psutil

        jvm = next(c for c in psutil.Process(self.proc.pid).children(recursive=True) if c.name() == "java")
        return [thread_name_and_niceness(jvm.pid, t.id) for t in jvm.threads()]

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.kill9()


def thread_name_and_niceness(pid: int, tid: int) -> tuple[str, int]:
    """A thread's name and niceness from /proc (the niceness is the 19th field of stat)."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    return name, int(stat[stat.rindex(")") + 2:].split()[16])
