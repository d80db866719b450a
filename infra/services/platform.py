"""The platform's own long-running processes, started after the servers they need:
the streaming prediction job (Spark), the web app and the drift monitor."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from flightdelay import status as job_status
from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import check_spark_ui, http_get
from infra.process import StackError
from infra.services.base import Service, java_env
from infra.services.spark_connector import install_spark_connector

SOCKETIO_CLIENT = "socket.io-client@4.8.1"
CHARTJS = "chart.js@4.6.1"  # the archive page's chart (its UMD build, served by the web app)


def platform_env(s: Settings) -> dict[str, str]:
    """The platform's own processes run from the clone with the project's JDK."""
    env = java_env(s)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


class StreamingJob(Service):
    name = "streaming"
    # Loading the served model from MLflow and starting four queries took 4-5 min on the shared
    # 2-core machine under load (load average 25-50, FD_SPARK_CLUSTER=1, 2026-11-28); a restart
    # after a SIGKILL (the fault suite) 219 s, its four queries recovering their checkpoints.
    start_timeout = 480.0
    stop_grace = 60.0

    def port(self, s: Settings) -> int:
        return s.spark_ui_port

    def url(self, s: Settings) -> str:
        return s.spark_ui_url

    def install(self, s: Settings) -> None:
        install_spark_connector(s)  # the job reads and writes Kafka through Spark's connector

    def command(self, s: Settings, workdir: Path) -> list[str]:
        job_status.clear(s)
        return [sys.executable, "-m", "spark_jobs.predict_stream"]

    def env(self, s: Settings) -> dict[str, str]:
        return platform_env(s)

    def probe(self, s: Settings) -> None:
        check_spark_ui(s)
        status = job_status.read(s)
        if status is None:
            raise StackError("the job has not written its status yet")
        inactive = status.inactive_queries()
        if inactive:
            raise StackError(f"queries not running: {', '.join(inactive)}")


class WebApp(Service):
    name = "webapp"
    start_timeout = 60.0
    stop_grace = 10.0

    def port(self, s: Settings) -> int:
        return s.webapp_port

    def url(self, s: Settings) -> str:
        return f"http://{s.host}:{s.webapp_port}"

    def install(self, s: Settings) -> None:
        install_socketio_client(s)
        install_npm_file(s, CHARTJS, Path("chart.js") / "dist" / "chart.umd.min.js")

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return [sys.executable, "-m", "webapp"]

    def env(self, s: Settings) -> dict[str, str]:
        return platform_env(s)

    def probe(self, s: Settings) -> None:
        status = json.loads(http_get(f"{self.url(s)}/healthz"))
        if not status.get("response_consumer_ready"):
            raise StackError("the Kafka response consumer is not assigned yet")


class Monitor(Service):
    """The drift monitor (python -m monitor): no port of its own; ready once its status file says
    it runs and reads the response topic."""
    name = "monitor"
    start_timeout = 60.0
    stop_grace = 15.0

    def nice(self, s: Settings) -> int:
        return s.store_nice  # off the user's path: on a shared machine the answer path gets the CPU first

    def port(self, s: Settings) -> str:
        return "-"

    def url(self, s: Settings) -> str:
        return f"{s.response_topic} -> {s.monitor_topic}"

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return [sys.executable, "-m", "monitor"]

    def env(self, s: Settings) -> dict[str, str]:
        return platform_env(s)

    def probe(self, s: Settings) -> None:
        from monitor import status as monitor_status

        problem = monitor_status.problem(s)
        if problem:
            raise StackError(f"monitor: {problem}")


def install_npm_file(s: Settings, spec: str, file: Path) -> Path:
    """``file`` of the npm package ``spec``, fetched from the npm registry into the cache once
    (served by the web app itself: pages must work without internet, and the CSP allows
    scripts from 'self' only)."""
    prefix = s.cache / "npm"
    target = prefix / "node_modules" / file
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise StackError(f"webapp: npm is needed once to fetch {spec}")
    print(f"[webapp] fetching {spec} from npm into {prefix}", flush=True)
    result = subprocess.run([npm, "install", "--prefix", str(prefix), spec, "--no-audit", "--no-fund", "--silent"],
                            capture_output=True, text=True)
    if result.returncode != 0 or not target.exists():
        raise StackError(f"webapp: npm install {spec} failed:\n{result.stdout}{result.stderr}")
    return target


def install_socketio_client(s: Settings) -> Path:
    """The browser's Socket.IO client, from the npm registry into the cache (served by the
    web app itself: pages must work without internet)."""
    prefix = s.cache / "npm"
    target = prefix / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise StackError("webapp: npm is needed once to fetch the Socket.IO browser client")
    print(f"[webapp] fetching {SOCKETIO_CLIENT} from npm into {prefix}", flush=True)
    began = time.monotonic()
    result = subprocess.run([npm, "install", "--prefix", str(prefix), SOCKETIO_CLIENT, "--no-audit",
                             "--no-fund", "--silent"], capture_output=True, text=True)
    if result.returncode != 0 or not target.exists():
        raise StackError(f"webapp: npm install {SOCKETIO_CLIENT} failed:\n{result.stdout}{result.stderr}")
    print(f"[webapp] Socket.IO client ready in {time.monotonic() - began:.1f} s", flush=True)
    return target
