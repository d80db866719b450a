"""Which model serves, where models live, and the reference data each one travels with.

The one place that knows:

* the ``models/`` layout (``ModelDir``): ``pipeline_model/`` (the Spark PipelineModel),
  ``reference.json`` (route table, airports, training statistics) and ``metrics.json``; the
  shipped default model is ``SHIPPED``, training's ``--output DIR`` has the same layout;
* the MLflow side: the champion lookup (the version behind ``Settings.model_alias``), the
  artifact paths a registered run carries (``model``, ``reference/reference.json``,
  ``metrics.json``, PNG plots), the summary the web app's model page shows;
* the served model: the champion if the registry has one, else the shipped default model
  (version ``default``), always with ITS reference data, since the features depend on it.
  The streaming job loads it (``load_served_model``); the web app validates requests against
  the same reference (``ServedReference`` follows the alias as the job does).

MLflow and pyspark are imported lazily: the web app needs no Spark, and ``SHIPPED`` and the
constants can be used before any dependency is installed.
"""
from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.reference import Reference, load_reference

log = logging.getLogger(__name__)

SHIPPED_VERSION = "default"          # model_version of predictions made by the shipped model
MODEL_ARTIFACT_PATH = "model"        # mlflow.spark model inside a registered run
MLFLOW_SPARK_SUBDIR = "sparkml"      # the PipelineModel inside an mlflow.spark model folder
REFERENCE_ARTIFACT_PATH = "reference/reference.json"
METRICS_ARTIFACT_PATH = "metrics.json"
# What "there is nothing there" looks like in the registry's answers (no model, no alias).
NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


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
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    def load_metrics(self) -> dict:
        return json.loads(self.metrics.read_text()) if self.metrics.exists() else {}


SHIPPED = ModelDir(REPO_ROOT / "models")


def shipped_reference() -> Reference:
    return load_reference(SHIPPED.reference)


# -- MLflow registry ---------------------------------------------------------------------------
def import_client() -> None:
    """Import MLflow's client now. The import (pandas, fastapi, ... ) costs a second or more of
    CPU holding the GIL: a serving process pays it before it serves, not lazily on its first
    registry poll, while its request threads wait for the GIL (bench.webapp: p50 325 -> 188 ms)."""
    from mlflow import MlflowClient  # noqa: F401


def client(s: Settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=s.mlflow_uri, registry_uri=s.mlflow_uri)


def is_not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) in NOT_FOUND_CODES


def champion(s: Settings, mlflow_client=None):
    """The model version behind the alias, or None when the registry has none (no such model,
    no such alias). A registry that does not answer raises."""
    mlflow_client = mlflow_client or client(s)
    try:
        return mlflow_client.get_model_version_by_alias(s.model_name, s.model_alias)
    except Exception as exc:  # MlflowException; "nothing there" is an answer, anything else is not
        if is_not_found(exc):
            return None
        raise


def champion_version(s: Settings) -> str | None:
    """For pollers (the job, the web app): the champion's version, or None when there is none
    or the registry cannot be asked right now (they keep what they serve and ask again)."""
    try:
        found = champion(s)
    except Exception as exc:  # an unreachable registry must not stop a poller
        log.warning("registry %s not answering (%s: %s)", s.mlflow_uri, type(exc).__name__, exc)
        return None
    return None if found is None else str(found.version)


def version_count(s: Settings, mlflow_client=None) -> int:
    mlflow_client = mlflow_client or client(s)
    return len(mlflow_client.search_model_versions(f"name = '{s.model_name}'"))


def reference_from_run(run_id: str, tracking_uri: str) -> Reference:
    """The reference data logged with a run (the one a registered version was trained with)."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT_PATH,
                                                tracking_uri=tracking_uri)
    return load_reference(local)


def reference_of_version(s: Settings, version: str) -> Reference:
    mv = client(s).get_model_version(s.model_name, version)
    return reference_from_run(mv.run_id, s.mlflow_uri)


def model_uri(s: Settings, version: str) -> str:
    return f"models:/{s.model_name}/{version}"


# -- the served model --------------------------------------------------------------------------
@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    pipeline: object  # pyspark.ml.PipelineModel
    reference: Reference
    source: str       # "mlflow" or "shipped"
    forest: object = None  # flightdelay.compiled_forest.CompiledForest, or None: MLlib serves

    @property
    def engine(self) -> str:
        return "compiled" if self.forest is not None else "mllib"

    def predict(self, features):
        """A frame of model inputs (``add_features`` output) + ``prediction`` (double) and
        ``probabilities`` (array<double>), by the compiled forest or by MLlib: the same values."""
        from flightdelay.features import PREDICTION_COLUMN, PROBABILITIES_COLUMN, PROBABILITY_COLUMN

        if self.forest is not None:
            return self.forest.score(features, PREDICTION_COLUMN, PROBABILITIES_COLUMN)
        from pyspark.ml.functions import vector_to_array

        return self.pipeline.transform(features).withColumn(PROBABILITIES_COLUMN,
                                                            vector_to_array(PROBABILITY_COLUMN))


def compiled_forest(s: Settings, pipeline_dir: Path, pipeline):
    """The pipeline's forest compiled for the job (FD_PREDICT_ENGINE=compiled), or None when
    MLlib is asked for or the model cannot be compiled exactly (the reason is logged)."""
    if s.predict_engine != "compiled":
        return None
    from flightdelay.compiled_forest import NotCompilable, compile_saved_pipeline
    from flightdelay.spark import forest_udf_jar

    if forest_udf_jar(s) is None:
        return None
    try:
        return compile_saved_pipeline(pipeline_dir, pipeline)
    except NotCompilable as exc:
        log.warning("the model is served by MLlib, not compiled: %s", exc)
        return None


def load_pipeline(s: Settings, version: str, local_dir: str | None = None):
    """The registered version's Spark PipelineModel (its MLflow model folder downloaded into
    ``local_dir`` if given, else a temporary folder)."""
    import mlflow
    import mlflow.spark

    mlflow.set_tracking_uri(s.mlflow_uri)   # "models:/" URIs resolve through the tracking server too
    mlflow.set_registry_uri(s.mlflow_uri)
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri(s, version), dst_path=local_dir)
    return mlflow.spark.load_model(local)


def load_registered(s: Settings, version: str) -> ServedModel:
    mv = client(s).get_model_version(s.model_name, version)
    with tempfile.TemporaryDirectory() as local:
        pipeline = load_pipeline(s, version, local)
        forest = compiled_forest(s, Path(local) / MLFLOW_SPARK_SUBDIR, pipeline)
    reference = reference_from_run(mv.run_id, s.mlflow_uri)
    log.info("loaded %s version %s (run %s) from MLflow", s.model_name, version, mv.run_id)
    return ServedModel(s.model_name, str(version), pipeline, reference, "mlflow", forest)


def load_shipped(s: Settings) -> ServedModel:
    from pyspark.ml import PipelineModel

    pipeline = PipelineModel.load(str(SHIPPED.pipeline))
    log.info("loaded the shipped default model from %s", SHIPPED.pipeline)
    return ServedModel(s.model_name, SHIPPED_VERSION, pipeline, shipped_reference(), "shipped",
                       compiled_forest(s, SHIPPED.pipeline, pipeline))


def load_served_model(s: Settings) -> ServedModel:
    """The champion, else the shipped default model (also when the champion cannot be loaded:
    a broken registry entry must not keep the job from serving)."""
    version = champion_version(s)
    if version is not None:
        try:
            return load_registered(s, version)
        except Exception:  # any failure to load falls back to the model in the clone
            log.exception("could not load %s version %s; serving the shipped model", s.model_name, version)
    return load_shipped(s)


class ServedReference:
    """The reference data of the served model, for the web app: the shipped one until the
    registry names a champion, then the champion's, following the alias when it moves (the
    streaming job validates against the same data). ``refresh`` asks the registry; the web app
    calls it from a background task, never on a request's path."""

    def __init__(self, s: Settings):
        self.settings = s
        self.version = SHIPPED_VERSION
        self.reference = shipped_reference()
        self._lock = threading.Lock()

    def current(self) -> Reference:
        return self.reference

    def refresh(self) -> bool:
        """Load the champion's reference if the alias moved; True if it changed."""
        version = champion_version(self.settings)
        if version is None or version == self.version:
            return False
        try:
            reference = reference_of_version(self.settings, version)
        except Exception as exc:  # keep validating with what we have; the next poll retries
            log.warning("reference of %s version %s not loadable (%s); keeping version %s",
                        self.settings.model_name, version, exc, self.version)
            return False
        with self._lock:
            self.version, self.reference = version, reference
        log.info("validating requests with the reference data of %s version %s (%d routes)",
                 self.settings.model_name, version, len(reference.routes))
        return True

    def follow(self, sleep) -> None:
        """Refresh forever, ``sleep(seconds)`` between polls (the web app passes socketio.sleep)."""
        while True:
            try:
                self.refresh()
            except Exception:  # a poller never dies; the next round tries again
                log.exception("reference refresh failed")
            sleep(self.settings.model_poll_s)


# -- what the model page shows -----------------------------------------------------------------
def champion_summary(s: Settings) -> dict:
    """The served model for people: version, run, metrics, params, plots, why it is live.
    Without a champion (or registry), the shipped default model's metrics."""
    try:
        mlflow_client = client(s)
        mv = champion(s, mlflow_client)
        if mv is not None:
            run = mlflow_client.get_run(mv.run_id)
            plots = [a.path for a in mlflow_client.list_artifacts(mv.run_id) if a.path.endswith(".png")]
            return {"source": "mlflow", "name": s.model_name, "version": str(mv.version), "run_id": mv.run_id,
                    "run_name": run.info.run_name, "metrics": dict(sorted(run.data.metrics.items())),
                    "params": dict(sorted(run.data.params.items())), "plots": plots,
                    "why": run.data.tags.get("promotion_reason", ""),
                    "ui_url": f"{s.mlflow_uri}/#/models/{s.model_name}/versions/{mv.version}",
                    "run_url": f"{s.mlflow_uri}/#/experiments/{run.info.experiment_id}/runs/{mv.run_id}"}
        log.info("no %s@%s in the registry; showing the shipped default model", s.model_name, s.model_alias)
    except Exception as exc:  # no server: show the shipped model, which is what the job serves then
        log.info("registry not answering (%s); showing the shipped default model", exc)
    metrics = SHIPPED.load_metrics()
    return {"source": "shipped", "name": s.model_name, "version": SHIPPED_VERSION, "run_id": None,
            "run_name": None, "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "params": {k: v for k, v in metrics.items() if isinstance(v, str)}, "plots": [], "why": "",
            "ui_url": s.mlflow_uri, "run_url": None}


def run_artifact(s: Settings, run_id: str, path: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        local = client(s).download_artifacts(run_id, path, tmp)
        return Path(local).read_bytes()
