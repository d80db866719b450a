"""A web app process of the bench's own, for web benchmarks: every simulated client sends from
one address, so the shared per-client rate limit (FD_WEBAPP_RATE_LIMIT, 600 a minute) would
refuse most of a load test against the platform's web app. This one runs the same code under the
same server (gunicorn) on a free port, with the limit raised, against the running Kafka and job."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import requests

from flightdelay.config import REPO_ROOT, Settings
from harness.ports import free_port
from harness.progress import say
from harness.wait import wait_for

BENCH_RATE_LIMIT = "1000000 per minute"


@contextmanager
def own_webapp(s: Settings, code_root: str | None = None, port: int | None = None, env: dict | None = None):
    """Yield the URL and pid of a fresh web app process; stop it afterwards. ``code_root`` runs
    the web app of another checkout (to measure the code before a change); ``port`` a given
    port instead of a free one (to restart a web app where its pages expect it); ``env`` more
    settings (FD_* variables)."""
    port = port or free_port()
    log_path = s.state / "logs" / "bench-webapp.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    say(f"starting the bench's web app on port {port} (log {log_path})")
    root = code_root or str(REPO_ROOT)
    environ = dict(os.environ, PYTHONPATH=root, FD_WEBAPP_PORT=str(port), FD_WEBAPP_RATE_LIMIT=BENCH_RATE_LIMIT,
                   **(env or {}))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "webapp"], env=environ, cwd=root, start_new_session=True,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{s.host}:{port}"
    try:
        wait_ready(url, proc, log_path)
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def wait_ready(url: str, proc: subprocess.Popen, log_path, timeout: float = 60.0) -> None:
    session = requests.Session()
    session.trust_env = False

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the bench's web app exited; see {log_path}")
        try:
            return bool(session.get(url + "/healthz", timeout=1).json().get("response_consumer_ready"))
        except requests.RequestException:
            return False

    wait_for(ready, timeout, f"the bench's web app to get ready (log {log_path})", interval=0.5)
