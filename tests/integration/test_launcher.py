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
