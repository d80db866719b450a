"""The monitor reference of each model version a window holds: the shipped model's file for
version ``default`` (``models/monitor_reference.json``), the ``monitor/monitor_reference.json``
artifact of a registered version's MLflow run otherwise. Kept once found; a version without one
(trained before the monitor existed) or a registry that does not answer is asked again later."""
from __future__ import annotations

import logging
import time

from flightdelay import drift, registry
from flightdelay.config import Settings
from flightdelay.model_dir import SHIPPED, SHIPPED_VERSION

log = logging.getLogger(__name__)

RETRY_S = 60.0  # a version whose reference could not be had is asked for again after this


class ReferenceBook:
    def __init__(self, s: Settings, clock=time.monotonic):
        self.s = s
        self.clock = clock
        self.found: dict[tuple[str, str], tuple[drift.MonitorReference, str]] = {}
        self.missing_until: dict[tuple[str, str], float] = {}

    def get(self, model_name: str, version: str) -> tuple[drift.MonitorReference, str] | None:
        """(reference, where it came from), or None when there is none to be had now."""
        key = (model_name, version)
        if key in self.found:
            return self.found[key]
        if self.missing_until.get(key, 0.0) > self.clock():
            return None
        try:
            self.found[key] = self.load(model_name, version)
            log.info("monitor reference of %s version %s: %s", model_name, version, self.found[key][1])
            return self.found[key]
        except Exception as exc:  # no artifact, no registry: no verdict for this version for now
            log.warning("no monitor reference for %s version %s (%s: %s); asking again in %.0f s", model_name,
                        version, type(exc).__name__, exc, RETRY_S)
            self.missing_until[key] = self.clock() + RETRY_S
            return None

    def load(self, model_name: str, version: str) -> tuple[drift.MonitorReference, str]:
        if version == SHIPPED_VERSION:
            return drift.load_monitor_reference(SHIPPED.monitor_reference), str(SHIPPED.monitor_reference)
        import mlflow

        mv = registry.client(self.s).get_model_version(model_name, version)
        local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=drift.ARTIFACT_PATH,
                                                    tracking_uri=self.s.mlflow_uri)
        return drift.load_monitor_reference(local), f"run {mv.run_id}"
