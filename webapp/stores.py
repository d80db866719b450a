"""Read side of the web app: prediction history (MongoDB), the parquet archive (HDFS via
WebHDFS), the champion model (MLflow). The queries themselves live with their store in
``flightdelay.stores``; here each client is created lazily and reused."""
from __future__ import annotations

import json
import logging
import threading
import time

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.stores import mongo, parquet
from flightdelay.stores.mongo import HISTORY_FILTERS, HistoryPage

log = logging.getLogger(__name__)

__all__ = ["Stores", "HistoryPage", "HISTORY_FILTERS"]


class Stores:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._mongo = None
        self._hdfs = None
        self._lock = threading.Lock()
        self._archive_cache: tuple[float, dict] | None = None

    # -- MongoDB --------------------------------------------------------------------------
    @property
    def collection(self):
        with self._lock:
            if self._mongo is None:
                self._mongo = mongo.client(self.settings, timeout_ms=3000)
        return mongo.collection(self._mongo, self.settings)

    def prediction(self, uuid: str) -> dict | None:
        try:
            return mongo.find_prediction(self.collection, uuid)
        except Exception as exc:  # MongoDB down: the caller falls back to "pending"/"unknown"
            log.warning("uuid=%s MongoDB lookup failed: %s", uuid, exc)
            return None

    def history(self, filters: dict, page: int = 1, page_size: int = 25) -> HistoryPage:
        return mongo.history(self.collection, filters, page=page, page_size=page_size)

    # -- HDFS parquet archive ----------------------------------------------------------------
    @property
    def hdfs(self):
        with self._lock:
            if self._hdfs is None:
                self._hdfs = parquet.hdfs_client(self.settings, timeout=10)
        return self._hdfs

    def archive_summary(self, max_age_s: float = 30.0) -> dict:
        """Counts per flight date and per class over the archive. Cached briefly: the archive
        only changes once per archive trigger."""
        if self._archive_cache and time.monotonic() - self._archive_cache[0] < max_age_s:
            return self._archive_cache[1]
        summary = parquet.summary(self.hdfs, self.settings)
        self._archive_cache = (time.monotonic(), summary)
        return summary

    # -- MLflow ------------------------------------------------------------------------------
    def champion(self) -> dict:
        """The served model: registry alias if set, else the shipped default model's metrics."""
        s = self.settings
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=s.mlflow_uri, registry_uri=s.mlflow_uri)
            version = client.get_model_version_by_alias(s.model_name, s.model_alias)
            run = client.get_run(version.run_id)
            plots = [a.path for a in client.list_artifacts(version.run_id) if a.path.endswith(".png")]
            return {"source": "mlflow", "name": s.model_name, "version": version.version,
                    "run_id": version.run_id, "metrics": dict(sorted(run.data.metrics.items())),
                    "params": dict(sorted(run.data.params.items())), "plots": plots,
                    "ui_url": f"{s.mlflow_uri}/#/models/{s.model_name}/versions/{version.version}"}
        except Exception as exc:  # no server, no model, no alias: show the shipped model
            log.info("no champion in MLflow (%s); showing the shipped default model", exc)
        metrics_file = REPO_ROOT / "models" / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        return {"source": "shipped", "name": s.model_name, "version": "default", "run_id": None,
                "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                "params": {k: v for k, v in metrics.items() if isinstance(v, str)}, "plots": [],
                "ui_url": s.mlflow_uri}

    def champion_plot(self, run_id: str, path: str) -> bytes:
        import tempfile

        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.settings.mlflow_uri)
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, path, tmp)
            with open(local, "rb") as fh:
                return fh.read()
