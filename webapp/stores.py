"""Read side of the web app: prediction history (MongoDB), the parquet archive (HDFS via
WebHDFS), the champion model (MLflow). Each client is created lazily and reused."""
from __future__ import annotations

import io
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from flightdelay.archive import committed_files, latest_log_files, parse_log, partition_value
from flightdelay.clients import hdfs_client, mongo_client
from flightdelay.config import REPO_ROOT, Settings
from flightdelay.schema import LABELS

log = logging.getLogger(__name__)

HISTORY_FILTERS = ("Route", "Carrier", "FlightDate", "model_version")


@dataclass
class HistoryPage:
    rows: list[dict]
    total: int
    page: int
    page_size: int
    filters: dict = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


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
                self._mongo = mongo_client(self.settings, timeout_ms=3000)
        return self._mongo[self.settings.mongo_database][self.settings.mongo_collection]

    def prediction(self, uuid: str) -> dict | None:
        try:
            doc = self.collection.find_one({"_id": uuid})
        except Exception as exc:  # MongoDB down: the caller falls back to "pending"/"unknown"
            log.warning("uuid=%s MongoDB lookup failed: %s", uuid, exc)
            return None
        if doc is not None:
            doc.pop("_id", None)
        return doc

    def history(self, filters: dict, page: int = 1, page_size: int = 25) -> HistoryPage:
        query = {k: v for k, v in filters.items() if k in HISTORY_FILTERS and v}
        page = max(1, page)
        total = self.collection.count_documents(query)
        cursor = (self.collection.find(query, {"_id": 0}).sort("requested_at", -1)
                  .skip((page - 1) * page_size).limit(page_size))
        return HistoryPage(list(cursor), total, page, page_size, query)

    # -- HDFS parquet archive ----------------------------------------------------------------
    @property
    def hdfs(self):
        with self._lock:
            if self._hdfs is None:
                self._hdfs = hdfs_client(self.settings, timeout=10)
        return self._hdfs

    def archive_summary(self, max_age_s: float = 30.0) -> dict:
        """Counts per flight date and per class over every parquet file of the archive.
        Cached briefly: the archive only changes once per archive trigger."""
        if self._archive_cache and time.monotonic() - self._archive_cache[0] < max_age_s:
            return self._archive_cache[1]
        summary = self._summarise_archive()
        self._archive_cache = (time.monotonic(), summary)
        return summary

    def committed_archive_files(self) -> list[str]:
        root = self.settings.prediction_archive_path
        log_dir = f"{root}/_spark_metadata"
        if self.hdfs.status(log_dir, strict=False) is None:
            return []
        entries = []
        for name in latest_log_files(self.hdfs.list(log_dir)):
            with self.hdfs.read(f"{log_dir}/{name}", encoding="utf-8") as reader:
                entries.extend(parse_log(reader.read()))
        return committed_files(entries)

    def _summarise_archive(self) -> dict:
        import pyarrow.parquet as pq

        per_day: dict[str, dict[int, int]] = {}
        files = self.committed_archive_files()
        for path in files:
            day = partition_value(path, "FlightDate") or "unknown"
            with self.hdfs.read(path) as reader:
                table = pq.read_table(io.BytesIO(reader.read()), columns=["prediction"])
            counts = per_day.setdefault(day, {c: 0 for c in LABELS})
            for value in table.column("prediction").to_pylist():
                counts[int(value)] = counts.get(int(value), 0) + 1
        per_class = {c: sum(day[c] for day in per_day.values()) for c in LABELS}
        return {"per_day": dict(sorted(per_day.items())), "per_class": per_class,
                "total": sum(per_class.values()), "files": len(files),
                "path": f"{self.settings.hdfs_url}{self.settings.prediction_archive_path}"}

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
