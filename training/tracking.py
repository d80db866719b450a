"""MLflow side of training: one run with params, metrics, plots, reference data and the model;
registration; the champion alias moves only to a better model."""
from __future__ import annotations

import logging
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from flightdelay import features
from flightdelay.reference import MLFLOW_ARTIFACT_PATH, reference_from_run
from training import evaluate

log = logging.getLogger(__name__)

MODEL_ARTIFACT_PATH = "model"


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


def current_champion(client: MlflowClient, name: str, alias: str):
    """The model version behind ``alias``, or None (no such model or no such alias yet)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def champion_accuracy(champion, name: str, alias: str, tracking_uri: str, test_raw, accuracy_of) -> float:
    """The champion scored on THIS run's holdout, with the reference data it was trained with."""
    import mlflow.spark

    model = mlflow.spark.load_model(f"models:/{name}@{alias}")
    reference = reference_from_run(champion.run_id, tracking_uri=tracking_uri)
    return accuracy_of(model, reference, test_raw)


def _flat_metrics(m: dict) -> dict[str, float]:
    keys = ["holdout_accuracy", "holdout_weighted_f1", "holdout_macro_f1", "baseline_accuracy",
            "baseline_macro_f1", "train_rows", "test_rows", "flights_read", "cancelled_excluded",
            "diverted_excluded", "fit_seconds"]
    out = {k: float(m[k]) for k in keys}
    out.update({k: float(v) for k, v in m.items() if k.startswith(("holdout_precision_", "holdout_recall_",
                                                                    "holdout_f1_"))})
    return out


def log_and_register(args, result: dict, accuracy_of) -> dict:
    """Log the run, register the model, move the alias if it beats the champion. Returns
    {run_id, version, promoted, reason, champion_accuracy}."""
    import mlflow.spark
    import pyspark

    metrics, model, reference = result["metrics"], result["model"], result["reference"]
    mlflow.set_tracking_uri(args.mlflow_uri)
    client = MlflowClient(tracking_uri=args.mlflow_uri)
    mlflow.set_experiment(args.experiment)

    champion = current_champion(client, args.model_name, args.alias)
    champ_acc = None
    if champion is not None:
        champ_acc = champion_accuracy(champion, args.model_name, args.alias, args.mlflow_uri,
                                      result["test_raw"], accuracy_of)
        log.info("current %s: version %s, accuracy %.4f on this holdout", args.alias, champion.version, champ_acc)

    # What the PipelineModel consumes: the output of add_features, restricted to the model inputs.
    input_cols = list(features.CATEGORICAL) + list(features.FEATURE_SETS[metrics["params"]["feature_set"]])
    example = result["test_df"].select(*input_cols).limit(3)
    example_pdf = example.toPandas()
    output_pdf = model.transform(example).select(features.PREDICTION_COLUMN).toPandas()
    with warnings.catch_warnings():   # "integer columns cannot represent missing values": ours never miss
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example_pdf, output_pdf)

    with mlflow.start_run(run_name=f"rf-{metrics['params']['num_trees']}x{metrics['params']['max_depth']}"
                                   f"{'-sample' if metrics['sample'] else ''}") as run:
        mlflow.log_params({**metrics["params"], "split": metrics["split"], "sample": metrics["sample"],
                           "model_inputs": ",".join(metrics["model_inputs"]),
                           "reference_sha256": metrics["reference_sha256"]})
        mlflow.log_metrics(_flat_metrics(metrics))
        if champ_acc is not None:
            mlflow.log_metric("champion_holdout_accuracy", champ_acc)
        mlflow.log_dict(reference.to_dict(), MLFLOW_ARTIFACT_PATH)
        mlflow.log_dict(metrics, "metrics.json")
        with tempfile.TemporaryDirectory() as tmp:
            title = f"holdout {metrics['split_date']}+ (accuracy {metrics['holdout_accuracy']:.3f})"
            mlflow.log_artifact(str(evaluate.plot_confusion(metrics["confusion_matrix"],
                                                            Path(tmp) / "confusion_matrix.png", title)))
            mlflow.log_artifact(str(evaluate.plot_importance(metrics["feature_importances"],
                                                             Path(tmp) / "feature_importance.png",
                                                             "feature importance")))
        with quiet_jvm_logger(example.sparkSession, "org.apache.spark.ml.util.Instrumentation"):
            info = mlflow.spark.log_model(
                model, MODEL_ARTIFACT_PATH, registered_model_name=args.model_name, signature=signature,
                input_example=example_pdf,
                pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"])
        version = str(info.registered_model_version)
        for key in ("holdout_accuracy", "holdout_macro_f1", "baseline_accuracy"):
            client.set_model_version_tag(args.model_name, version, key, f"{metrics[key]:.6f}")
        client.set_model_version_tag(args.model_name, version, "split", metrics["split"])
        client.set_model_version_tag(args.model_name, version, "reference_sha256", metrics["reference_sha256"])

        if champ_acc is None:
            promoted, reason = True, "first model"
        elif metrics["holdout_accuracy"] > champ_acc:
            promoted, reason = True, f"accuracy {metrics['holdout_accuracy']:.4f} > champion {champ_acc:.4f}"
        else:
            promoted = False
            reason = (f"accuracy {metrics['holdout_accuracy']:.4f} <= champion v{champion.version} "
                      f"{champ_acc:.4f}")
        if promoted:
            client.set_registered_model_alias(args.model_name, args.alias, version)
        mlflow.set_tags({"promoted": str(promoted).lower(), "promotion_reason": reason})
        log.info("%s version %s: %s", args.model_name, version, reason)
        return {"run_id": run.info.run_id, "version": version, "promoted": promoted, "reason": reason,
                "champion_accuracy": champ_acc, "model_uri": info.model_uri}
