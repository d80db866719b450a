"""`make up/status/down` as documented, on an isolated state dir and ports so that the servers
other tests use are never touched."""
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from flightdelay.config import REPO_ROOT
from harness.ports import free_port


@pytest.fixture
def isolated_env(tmp_path):
    env = dict(os.environ)
    env.update({"FD_STATE_DIR": str(tmp_path / "state"), "FD_KAFKA_PORT": str(free_port()),
                "FD_KAFKA_CONTROLLER_PORT": str(free_port()), "SERVICES": "kafka"})
    yield env
    subprocess.run(["make", "-s", "down"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)


def make(target, env):
    result = subprocess.run(["make", "-s", target], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def running(pid):
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_up_twice_status_down_status(isolated_env):
    code, out = make("up", isolated_env)
    assert code == 0, out
    assert "[kafka] up at" in out
    code, out = make("up", isolated_env)
    assert code == 0, out
    assert "already up" in out

    code, out = make("status", isolated_env)
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("kafka"))
    fields = line.split()
    assert fields[1] == "up"
    assert fields[3] == isolated_env["FD_KAFKA_PORT"]
    pid = int(fields[5])
    assert running(pid)
    assert fields[7].endswith("kafka.log") and Path(fields[7]).exists()

    code, out = make("down", isolated_env)
    assert code == 0, out
    assert "stopped: kafka" in out
    assert not running(pid)

    code, out = make("status", isolated_env)
    assert code == 0, out
    assert next(line for line in out.splitlines() if line.startswith("kafka")).split()[1] == "down"
    code, out = make("down", isolated_env)
    assert "nothing to stop" in out


def test_port_taken_by_a_foreign_server_is_a_clear_error(isolated_env):
    # Start a broker, forget its pid file: the launcher must refuse rather than adopt or clash.
    assert make("up", isolated_env)[0] == 0
    pid_file = Path(isolated_env["FD_STATE_DIR"]) / "kafka" / "pid.json"
    saved = pid_file.read_text()
    pid_file.unlink()
    try:
        code, out = make("up", isolated_env)
        assert code != 0
        assert "not started by this launcher" in out
    finally:
        pid_file.write_text(saved)


@pytest.fixture
def cluster_env(tmp_path):
    """FD_CLUSTER=1 with Kafka only, on addresses of its own (127.0.0.11x: not the cluster a
    `FD_CLUSTER=1 make up` may run) and free ports, in its own state dir."""
    env = dict(os.environ)
    env.update({"FD_STATE_DIR": str(tmp_path / "state"), "FD_CLUSTER": "1",
                "FD_KAFKA_HOSTS": "127.0.0.111,127.0.0.112,127.0.0.113",
                "FD_KAFKA_PORT": str(free_port()), "FD_KAFKA_CONTROLLER_PORT": str(free_port()), "SERVICES": "kafka"})
    yield env
    subprocess.run(["make", "-s", "down"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=180)


def test_cluster_mode_runs_three_brokers_that_survive_the_loss_of_one(cluster_env):
    import signal

    from confluent_kafka.admin import ConfigResource

    from flightdelay import kafka
    from flightdelay.config import load_settings
    from harness.traffic import collect, produce

    code, out = make("up", cluster_env)
    assert code == 0, out
    code, out = make("status", cluster_env)
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("kafka-")}
    assert sorted(lines) == ["kafka-1", "kafka-2", "kafka-3"], out
    assert all(f[1] == "up" and f[3] == cluster_env["FD_KAFKA_PORT"] for f in lines.values()), out
    pids = [int(f[5]) for f in lines.values()]
    assert len({f[7] for f in lines.values()}) == 3 and len(set(pids)) == 3  # a log and a process each
    assert all(Path(cluster_env["FD_STATE_DIR"], name, "data", "meta.properties").exists() for name in lines)

    s = load_settings(cluster_env)
    admin = kafka.admin(s)
    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    for topic in s.platform_topics:
        assert all(len(p.replicas) == 3 for p in metadata.topics[topic].partitions.values()), topic
    [config] = admin.describe_configs([ConfigResource("topic", s.request_topic)]).values()
    assert config.result()["min.insync.replicas"].value == "2"

    # One broker killed: an acks=all write still has its two in-sync copies, and is read back.
    os.kill(pids[0], signal.SIGKILL)
    produce(s, s.request_topic, [(b"after-kill", b"still written")])
    read = collect(s, s.request_topic, until=lambda ms: any(m.key() == b"after-kill" for m in ms), timeout=60)
    assert any(m.key() == b"after-kill" for m in read)

    code, out = make("down", cluster_env)
    assert code == 0 and "kafka-3" in out and "kafka-2" in out, out
    assert not any(running(pid) for pid in pids)
