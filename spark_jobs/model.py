"""Which model the job serves: the MLflow registry alias (default ``champion``), else the
shipped default model in ``models/``. Each served model travels with the reference data it was
trained with (route table, airports), since the features depend on both."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.reference import Reference, load_reference, reference_from_run

log = logging.getLogger(__name__)

SHIPPED_MODEL_DIR = REPO_ROOT / "models" / "pipeline_model"
SHIPPED_VERSION = "default"


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    pipeline: object  # pyspark.ml.PipelineModel
    reference: Reference
    source: str       # "mlflow" or "shipped"


def champion_version(s: Settings) -> str | None:
    """The registry version behind the alias, or None (no server, no model, no alias)."""
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=s.mlflow_uri, registry_uri=s.mlflow_uri)
        return str(client.get_model_version_by_alias(s.model_name, s.model_alias).version)
    except Exception as exc:  # the registry's answer "nothing there" comes as an exception too
        log.debug("no %s@%s in the registry: %s", s.model_name, s.model_alias, exc)
        return None


def load_registered(s: Settings, version: str) -> ServedModel:
    import mlflow.spark
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=s.mlflow_uri, registry_uri=s.mlflow_uri)
    mv = client.get_model_version(s.model_name, version)
    mlflow.set_tracking_uri(s.mlflow_uri)
    mlflow.set_registry_uri(s.mlflow_uri)
    pipeline = mlflow.spark.load_model(f"models:/{s.model_name}/{version}")
    reference = reference_from_run(mv.run_id, tracking_uri=s.mlflow_uri)
    log.info("loaded %s version %s (run %s) from MLflow", s.model_name, version, mv.run_id)
    return ServedModel(s.model_name, version, pipeline, reference, "mlflow")


def load_shipped(s: Settings) -> ServedModel:
    from pyspark.ml import PipelineModel

    pipeline = PipelineModel.load(str(SHIPPED_MODEL_DIR))
    log.info("loaded the shipped default model from %s", SHIPPED_MODEL_DIR)
    return ServedModel(s.model_name, SHIPPED_VERSION, pipeline, load_reference(), "shipped")


def load_served_model(s: Settings) -> ServedModel:
    version = champion_version(s)
    if version is not None:
        try:
            return load_registered(s, version)
        except Exception:  # a broken registry entry must not keep the job from serving
            log.exception("could not load %s version %s; serving the shipped model", s.model_name, version)
    return load_shipped(s)
