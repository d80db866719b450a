"""The ``models/`` layout: a model folder holds ``pipeline_model/`` (the Spark PipelineModel),
``reference.json`` (route table, airports, training statistics), ``metrics.json`` and
``monitor_reference.json`` (the training split's distributions the drift monitor compares with).

``SHIPPED`` is the default model in the clone (served as version ``SHIPPED_VERSION`` while the
registry names no champion); training's ``--output DIR`` writes the same layout. Standard
library only, importing nothing else of the project: the reference data and the registry both
read from it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from flightdelay.config import REPO_ROOT

SHIPPED_VERSION = "default"  # model_version of predictions made by the shipped model


@dataclass(frozen=True)
class ModelDir:
    """A model folder: the shipped ``models/`` or training's ``--output DIR``."""

    root: Path

    @property
    def pipeline(self) -> Path:
        return self.root / "pipeline_model"

    @property
    def reference(self) -> Path:
        return self.root / "reference.json"

    @property
    def monitor_reference(self) -> Path:
        """The drift monitor's reference distributions (``flightdelay.drift``)."""
        return self.root / "monitor_reference.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    def load_metrics(self) -> dict:
        return json.loads(self.metrics.read_text()) if self.metrics.exists() else {}


SHIPPED = ModelDir(REPO_ROOT / "models")
