"""Read side of the web app: prediction history (MongoDB), the parquet archive (HDFS via
WebHDFS), the champion model (MLflow). The queries themselves live with their store in
``flightdelay.stores``; here each client is created lazily and reused."""
from __future__ import annotations

import logging
import threading
import time

from flightdelay import health, registry
from flightdelay.config import Settings
from flightdelay.stores import mongo, parquet
from flightdelay.stores.mongo import HISTORY_FILTERS, HistoryPage, HistoryQuery

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

    def history(self, query: HistoryQuery) -> HistoryPage:
        coll = self.collection
        return mongo.history(coll, mongo.summary_collection(coll.database.client, self.settings), query)

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
        summary = parquet.summary(self.hdfs, self.settings, budget_s=0.2, background_save=True)
        self._archive_cache = (time.monotonic(), summary)
        return summary

    # -- MLflow ------------------------------------------------------------------------------
    def champion(self) -> dict:
        """The served model (registry champion, else the shipped default): see flightdelay.registry.
        When the shipped model is shown because MLflow does not answer, ``registry_error`` says so
        (the web process asks MLflow without retries: webapp.main)."""
        summary = registry.champion_summary(self.settings)
        if summary.get("source") == "shipped":
            try:
                health.check_mlflow(self.settings)
            except Exception as exc:  # what the page shows
                summary["registry_error"] = f"MLflow is not answering ({type(exc).__name__}); is the stack up? (make status)"
        return summary

    def champion_plot(self, run_id: str, path: str) -> bytes:
        return registry.run_artifact(self.settings, run_id, path)
