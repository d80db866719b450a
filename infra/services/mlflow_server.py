"""MLflow tracking server + model registry: SQLite backend store, local artifact store."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from flightdelay.config import Settings
from flightdelay.health import check_mlflow
from infra.services.base import Service


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
        # (most of the server's memory; README, "Measured choices"); the platform uses tracking
        # and the registry only.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        return env

    def probe(self, s: Settings) -> None:
        check_mlflow(s)
