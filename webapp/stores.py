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

__all__ = ["Stores", "HistoryPage", "HISTORY_FILTERS", "ArchiveNotCounted"]

ARCHIVE_COUNT_EVERY_S = 20.0  # the archive page is at most this (plus one count) behind the archive


class ArchiveNotCounted(RuntimeError):
    """No count of the archive yet: the page says why instead of counting itself."""


class Stores:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._mongo = None
        self._hdfs = None
        self._lock = threading.Lock()
        self._archive_cache: dict | None = None
        self._archive_error: str | None = None

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

    def archive_summary(self) -> dict:
        """Counts per flight date and per class over the archive, as the background count last
        left them (``follow_archive``): the page never counts. ``counted_at`` (epoch s) says when;
        ``error`` what went wrong since, if the last count failed. Raises ArchiveNotCounted
        before the first count has finished (or when every one failed)."""
        latest, error = self._archive_cache, self._archive_error
        if latest is None:
            raise ArchiveNotCounted(error or "the archive is being counted for the first time since the web "
                                             "app started; reload in a few seconds")
        return {**latest, "error": error}

    def refresh_archive(self) -> dict:
        """Bring the archive's counts up to its commit log: count every file committed since
        (however many), save the aggregate on HDFS, keep the figures for the page."""
        began = time.monotonic()
        summary = parquet.summary(self.hdfs, self.settings, budget_s=None)
        self._archive_cache = {**summary, "counted_at": time.time(), "count_s": round(time.monotonic() - began, 2)}
        self._archive_error = None
        return self._archive_cache

    def follow_archive(self, sleep, every_s: float = ARCHIVE_COUNT_EVERY_S) -> None:
        """Background task (once per process): count the archive's new files every ``every_s``
        seconds, so the page is current within a minute however many files arrived, and never
        counts on the request path. A failure (HDFS down) is kept for the page and retried."""
        while True:
            try:
                summary = self.refresh_archive()
                if summary["files"]:
                    log.debug("archive counted: %d files, %d predictions in %.2f s", summary["files"],
                              summary["total"], summary["count_s"])
            except Exception as exc:  # HDFS down or restarting: the page says so, the next round retries
                if self._archive_error is None:  # one line when it starts failing, not one per round
                    log.warning("archive count failed (retried every %g s, logged again once it has worked): %s",
                                every_s, exc)
                self._archive_error = f"the HDFS archive could not be read ({type(exc).__name__}: {str(exc)[:200]})"
            sleep(every_s)

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
