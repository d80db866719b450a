"""Apache Airflow 3: API server (with the UI), scheduler (LocalExecutor) and DAG processor, three
launcher services sharing one AIRFLOW_HOME (FD_STATE_DIR/airflow, SQLite metadata) and their
own virtualenv in the cache (FD_CACHE_DIR/airflow-venv).

Airflow pins libraries the platform wants newer (fastapi, opentelemetry), so it never shares
the platform's virtualenv: its DAG tasks run training with the platform's interpreter as a
subprocess. The venv is installed from ``infra/airflow/constraints-3.3.2-py311.txt``, a pip
freeze of a working install (Airflow's published constraint files are not reachable here).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import airflow_health, check_airflow
from infra.process import StackError
from infra.services.base import Service, fingerprint

AIRFLOW_VERSION = "3.3.2"
CONSTRAINTS = REPO_ROOT / "infra" / "airflow" / f"constraints-{AIRFLOW_VERSION}-py311.txt"
DAGS_FOLDER = REPO_ROOT / "dags"
SECRETS_FILE = "secrets.json"


def airflow_bin(s: Settings, name: str = "airflow") -> str:
    return str(s.airflow_venv / "bin" / name)


def installed_stamp(s: Settings) -> Path:
    return s.airflow_venv / f".installed-{fingerprint(CONSTRAINTS)}"


def install_airflow(s: Settings) -> None:
    """Airflow's virtualenv, from the committed constraints (once per constraints content)."""
    stamp = installed_stamp(s)
    if stamp.exists():
        return
    print(f"[airflow] installing apache-airflow=={AIRFLOW_VERSION} into {s.airflow_venv} "
          f"(first run: about a minute)", flush=True)
    began = time.monotonic()
    python = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    steps = [[python, "-m", "venv", str(s.airflow_venv)],
             [airflow_bin(s, "python"), "-m", "pip", "install", "--quiet", "--progress-bar", "off",
              f"apache-airflow=={AIRFLOW_VERSION}", "-c", str(CONSTRAINTS)]]
    for cmd in steps:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"airflow: {' '.join(cmd[:4])} ... failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    for old in s.airflow_venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    print(f"[airflow] installed in {time.monotonic() - began:.0f} s", flush=True)


def local_secrets(s: Settings) -> dict:
    """Secrets every Airflow process must share (the JWT secret signs the tokens the scheduler's
    tasks present to the API server), generated once per state directory."""
    path = s.airflow_home / SECRETS_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"jwt_secret": secrets.token_urlsafe(32), "secret_key": secrets.token_urlsafe(32)}))
        path.chmod(0o600)
    return json.loads(path.read_text())


def ui_password(s: Settings) -> str:
    """The UI user's password: generated once (SimpleAuthManager reads it from this file)."""
    path = s.airflow_passwords_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({s.airflow_user: secrets.token_urlsafe(12)}))
        path.chmod(0o600)
    return json.loads(path.read_text())[s.airflow_user]


def airflow_env(s: Settings, home: Path | None = None) -> dict[str, str]:
    """The environment of every Airflow command of the platform: its config lives here (no
    airflow.cfg to edit), from Settings. ``home``: another AIRFLOW_HOME (tests' `dags test`)."""
    home = home or s.airflow_home
    keys = local_secrets(s)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "PATH": f"{s.airflow_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        # DAG tasks import the platform's settings (flightdelay.config, standard library only).
        "PYTHONPATH": str(REPO_ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(s.airflow_parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(s.airflow_parallelism),
        # The weekly schedule runs without anyone unpausing the DAG first.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{s.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(s.airflow_passwords_file),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": s.host,
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__BASE_URL": s.airflow_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.airflow_worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s.airflow_triggerer_log_port),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
    })
    return env


def migrate_db(s: Settings, home: Path | None = None) -> None:
    """Create or upgrade the SQLite metadata database (idempotent)."""
    result = subprocess.run([airflow_bin(s), "db", "migrate"], env=airflow_env(s, home), capture_output=True,
                            text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise StackError(f"airflow: db migrate failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


class AirflowService(Service):
    """What the three Airflow processes share: venv, AIRFLOW_HOME, environment."""

    start_timeout = 180.0
    stop_grace = 30.0
    component = ""

    def install(self, s: Settings) -> None:
        install_airflow(s)

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return [airflow_bin(s), self.component]

    def env(self, s: Settings) -> dict[str, str]:
        return airflow_env(s)

    def url(self, s: Settings) -> str:
        return s.airflow_url

    def probe(self, s: Settings) -> None:
        """Healthy per the API server, by a heartbeat newer than the process this launcher
        started (a heartbeat of a process stopped seconds ago would still read "healthy")."""
        status = airflow_health(s).get(self.component.replace("-", "_"), {})
        beat = status.get(f"latest_{self.component.replace('-', '_')}_heartbeat")
        pid_file = s.state / self.name / "pid.json"
        if status.get("status") != "healthy" or not beat or not pid_file.exists():
            raise StackError(f"{self.component}: {status or 'no status yet'}")
        if dt.datetime.fromisoformat(beat).timestamp() < pid_file.stat().st_mtime:
            raise StackError(f"{self.component}: last heartbeat {beat} is older than this process")


class AirflowApiServer(AirflowService):
    name = "airflow"
    component = "api-server"

    def port(self, s: Settings) -> int:
        return s.airflow_port

    def prepare(self, s: Settings, workdir: Path) -> None:
        ui_password(s)
        migrate_db(s)

    def probe(self, s: Settings) -> None:
        check_airflow(s)

    def bootstrap(self, s: Settings) -> None:
        # The password itself stays in its file (mode 600): console output ends up in logs.
        print(f"[airflow] UI {s.airflow_url} login {s.airflow_user}, password in "
              f"{s.airflow_passwords_file}", flush=True)


class AirflowScheduler(AirflowService):
    name = "airflow-scheduler"
    component = "scheduler"

    def port(self, s: Settings) -> int:
        return s.airflow_worker_log_port   # its LocalExecutor's log server


class AirflowDagProcessor(AirflowService):
    name = "airflow-dag-processor"
    component = "dag-processor"

    def port(self, s: Settings) -> int:
        return s.airflow_port              # no port of its own: probed through the API server
