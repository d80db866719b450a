"""The MLflow model registry, as the platform reads it: the client, the champion lookup (the
version behind ``Settings.model_alias``), versions, the artifacts a registered run carries
(``model``, ``reference/reference.json``, ``metrics.json``, PNG plots) and the summary the web
app's model page shows.

What is served from it (the champion, else the shipped default model, with its reference data
and compiled forest) and how the alias is followed is ``flightdelay.serving``; the ``models/``
layout of the shipped model is ``flightdelay.model_dir``.

MLflow is imported lazily: the web app imports this module before it needs a client.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from flightdelay.config import Settings
from flightdelay.model_dir import SHIPPED, SHIPPED_VERSION
from flightdelay.reference import Reference, load_reference

log = logging.getLogger(__name__)

MODEL_ARTIFACT_PATH = "model"        # mlflow.spark model inside a registered run
MLFLOW_SPARK_SUBDIR = "sparkml"      # the PipelineModel inside an mlflow.spark model folder
REFERENCE_ARTIFACT_PATH = "reference/reference.json"
METRICS_ARTIFACT_PATH = "metrics.json"
# What "there is nothing there" looks like in the registry's answers (no model, no alias).
NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


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


def load_pipeline(s: Settings, version: str, local_dir: str | None = None):
    """The registered version's Spark PipelineModel (its MLflow model folder downloaded into
    ``local_dir`` if given, else a temporary folder; the PipelineModel itself is in its
    ``MLFLOW_SPARK_SUBDIR``)."""
    import mlflow
    import mlflow.spark

    mlflow.set_tracking_uri(s.mlflow_uri)   # "models:/" URIs resolve through the tracking server too
    mlflow.set_registry_uri(s.mlflow_uri)
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri(s, version), dst_path=local_dir)
    return mlflow.spark.load_model(local)


# -- aliases and tags, as the promotion decider (monitor/decider.py) moves and records them -----------
def alias_version(s: Settings, alias: str, mlflow_client=None) -> str | None:
    """The version behind ``alias`` of ``s.model_name``, or None when there is none; a registry
    that does not answer raises."""
    mlflow_client = mlflow_client or client(s)
    try:
        return str(mlflow_client.get_model_version_by_alias(s.model_name, alias).version)
    except Exception as exc:  # MlflowException; "nothing there" is an answer, anything else is not
        if is_not_found(exc):
            return None
        raise


def set_alias(s: Settings, alias: str, version: str, mlflow_client=None) -> None:
    (mlflow_client or client(s)).set_registered_model_alias(s.model_name, alias, str(version))


def delete_alias(s: Settings, alias: str, mlflow_client=None) -> None:
    """Remove ``alias``; an alias already gone is not an error."""
    try:
        (mlflow_client or client(s)).delete_registered_model_alias(s.model_name, alias)
    except Exception as exc:  # MlflowException
        if not is_not_found(exc):
            raise


def set_version_tags(s: Settings, version: str, tags: dict[str, str], *, on_run: bool = False,
                     mlflow_client=None) -> None:
    """Tag the registered version (and its run too with ``on_run``)."""
    mlflow_client = mlflow_client or client(s)
    run_id = mlflow_client.get_model_version(s.model_name, str(version)).run_id if on_run else None
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(s.model_name, str(version), key, str(value))
        if run_id:
            mlflow_client.set_tag(run_id, key, str(value))


def holdout_comparison(s: Settings, version: str, mlflow_client=None) -> dict:
    """What training recorded on the version's run about its holdout: ``holdout_accuracy``, and
    (training/observed.py, training/tracking.record_evaluation) ``champion_holdout_accuracy`` of
    the version that served then (``evaluated_against``) on the same held-out flights; None where
    the run has no such record."""
    mlflow_client = mlflow_client or client(s)
    run = mlflow_client.get_run(mlflow_client.get_model_version(s.model_name, str(version)).run_id)
    return {"holdout_accuracy": run.data.metrics.get("holdout_accuracy"),
            "champion_holdout_accuracy": run.data.metrics.get("champion_holdout_accuracy"),
            "evaluated_against": run.data.tags.get("evaluated_against")}


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
