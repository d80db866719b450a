"""MLflow tracking server + model registry: SQLite backend store, local artifact store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flightdelay.config import Settings
from flightdelay.health import check_mlflow
from infra.process import StackError
from infra.services.base import Service
from infra.services.platform import platform_env


class MLflowServer(Service):
    name = "mlflow"
    start_timeout = 120.0
    stop_grace = 15.0

    def port(self, s: Settings) -> int:
        return s.mlflow_port

    def url(self, s: Settings) -> str:
        return s.mlflow_uri

    def command(self, s: Settings, workdir: Path) -> list[str]:
        (workdir / "artifacts").mkdir(exist_ok=True)
        mlflow = Path(sys.executable).parent / "mlflow"
        return [str(mlflow), "server",
                "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination", str(workdir / "artifacts"),
                "--host", s.host, "--port", str(s.mlflow_port), "--workers", "1"]

    def env(self, s: Settings) -> dict[str, str]:
        env = dict(os.environ)
        # MLflow 3's server-side job runner (GenAI evaluation jobs) forks seven huey consumers
        # (most of the server's memory; docs/decisions.md); the platform uses tracking
        # and the registry only.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        return env

    def probe(self, s: Settings) -> None:
        check_mlflow(s)

    def bootstrap(self, s: Settings) -> None:
        """A registry that has never seen the model gets the shipped default model as version 1
        with the alias, so the registry shows what is served from the start and a retrained
        model is compared with it (training.champion register-shipped; idempotent)."""
        cmd = [sys.executable, "-m", "training.champion", "register-shipped"]
        result = subprocess.run(cmd, env=platform_env(s), capture_output=True, text=True, check=False, timeout=900)
        if result.returncode != 0:
            raise StackError(f"mlflow: registering the shipped model failed:\n{result.stderr[-4000:]}")
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        if summary["registered"]:
            print(f"[mlflow] registered the shipped default model as {summary['model_name']} version "
                  f"{summary['version']}, alias {s.model_alias}", flush=True)
        else:
            print(f"[mlflow] {summary['model_name']}: {summary['versions']} version(s), {s.model_alias} -> "
                  f"{summary['live_version']}", flush=True)
