import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.wait import wait_for
from infra.process import Tracked, alive, proc_start_time, read_tracked, spawn, terminate
from infra.services.spark_connector import artifact_id


def test_spawn_track_and_terminate_a_process_group(tmp_path):
    pid_file = tmp_path / "pid.json"
    tracked = spawn([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path,
                    log_file=tmp_path / "x.log", pid_file=pid_file, env={})
    assert alive(tracked)
    assert read_tracked(pid_file) == tracked
    terminate(tracked, grace=5)
    assert not alive(tracked)


def test_recycled_pid_is_not_ours():
    me = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert alive(Tracked(me.pid, proc_start_time(me.pid)))
        assert not alive(Tracked(me.pid, "0"))
    finally:
        me.kill()
        me.wait()


def test_start_time_is_the_kernels_clock_ticks_after_boot_as_pid_files_hold_it():
    """Pid files written before psutil hold field 22 of /proc/<pid>/stat: the servers they name
    must still count as ours."""
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert proc_start_time(os.getpid()) == stat.rsplit(")", 1)[1].split()[19]


def test_missing_or_garbled_pid_file(tmp_path):
    assert read_tracked(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_tracked(tmp_path / "bad.json") is None


def test_artifact_id_strips_versions():
    assert artifact_id("kafka-clients-3.9.2.jar") == "kafka-clients"
    assert artifact_id("spark-sql-kafka-0-10_2.13-4.2.0.jar") == "spark-sql-kafka-0-10_2.13"
    assert artifact_id("hadoop-client-api-3.5.0.jar") == "hadoop-client-api"


def test_kafka_cluster_ids_never_look_like_options():
    from infra.services.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_spawn_at_a_niceness_keeps_the_commands_own_pid(tmp_path):
    tracked = spawn([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path,
                    log_file=tmp_path / "x.log", pid_file=tmp_path / "pid.json", env={}, nice=7)
    try:
        # `nice` sets its own niceness, then execs the command under the same pid.
        process = psutil.Process(tracked.pid)
        wait_for(lambda: process.cmdline()[:1] == [sys.executable], 10, "nice to exec the command", interval=0.05)
        assert process.nice() == 7
        assert alive(tracked)
    finally:
        terminate(tracked, grace=5)


def test_only_archive_stores_run_at_the_store_niceness():
    from flightdelay.config import load_settings
    from infra.services import all_services

    s = load_settings({}, store_nice=10)
    nice = {svc.name: svc.nice(s) for svc in all_services()}
    assert nice == {"postgres": 10, "mongo": 10, "kafka": 0, "nifi": 10, "mlflow": 0, "hdfs": 10, "cassandra": 10,
                    "streaming": 0, "webapp": 0, "monitor": 10, "airflow": 0, "airflow-scheduler": 0, "airflow-dag-processor": 0,
                    "spark-master": 0, "spark-worker": 0,
                    # the FD_CLUSTER=1 nodes, which `down` covers too
                    "kafka-1": 0, "kafka-2": 0, "kafka-3": 0, "cassandra-1": 10, "cassandra-2": 10, "cassandra-3": 10,
                    "hdfs-namenode": 10, "hdfs-datanode-1": 10, "hdfs-datanode-2": 10,
                    "spark-worker-1": 0, "spark-worker-2": 0}
    assert {svc.nice(load_settings({}, store_nice=0)) for svc in all_services()} == {0}


def test_up_starts_the_next_servers_while_a_background_one_starts(monkeypatch):
    from flightdelay.config import load_settings
    from infra import launcher
    from infra.services.base import Service

    calls = []

    class Fake(Service):
        def __init__(self, name, background):
            self.name, self.start_in_background = name, background

    def start(s, svc, *, wait=True):
        calls.append(("start", svc.name, wait))
        return True

    monkeypatch.setattr(launcher, "start", start)
    monkeypatch.setattr(launcher, "finish_start", lambda s, svc, began=None: calls.append(("ready", svc.name)))
    services = [Fake("a", False), Fake("slow", True), Fake("b", False)]
    assert launcher.up(load_settings({}), services) == services
    assert calls == [("start", "a", True), ("start", "slow", False), ("start", "b", True), ("ready", "slow")]


def autogroup_niceness(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


def test_spawn_at_a_niceness_gives_it_to_the_sessions_scheduler_group_too(tmp_path):
    if autogroup_niceness(os.getpid()) is None:
        pytest.skip("kernel without autogroup scheduling: per-process niceness is machine-wide")
    tracked = spawn([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path,
                    log_file=tmp_path / "x.log", pid_file=tmp_path / "pid.json", env={}, nice=9)
    try:
        # A new session is a new autogroup; without this its niceness would be 0 and the
        # process's own niceness would rank it only inside that group.
        assert autogroup_niceness(tracked.pid) == 9
    finally:
        terminate(tracked, grace=5)
