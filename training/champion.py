"""The champion alias, step by step, for the retraining DAG and for ``make up``.

Usage:
    python -m training.champion evaluate VERSION    score VERSION and the served model on VERSION's
                                                    holdout; record the comparison on VERSION's run
    python -m training.champion promote VERSION     move the alias to VERSION if the evaluation says
                                                    it is better (training/tracking.py's rule)
    python -m training.champion register-shipped    register the shipped default model (models/) as
                                                    the first version with the alias, if the
                                                    registered model has no version yet

Registry, model name and alias come from Settings (FD_MLFLOW_PORT, FD_MODEL_NAME,
FD_MODEL_ALIAS). Each command prints one JSON line last and exits non-zero on failure.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from flightdelay import registry
from flightdelay.config import Settings, load_settings
from flightdelay.model_dir import SHIPPED
from flightdelay.reference import load_reference

log = logging.getLogger("training.champion")

SHIPPED_RUN_NAME = "shipped-default"


def parse_param(value: str | None):
    return None if value in (None, "None", "") else value


def holdout_of_run(spark, run):
    """The raw holdout rows of a registered run, rebuilt from its logged data parameters."""
    from training import data

    p = run.data.params
    sample = parse_param(p.get("sample"))
    flights = data.load_flights(spark, sample=None if sample is None else float(sample), seed=int(p["seed"]),
                                source=p.get("data", data.DEFAULT_SOURCE))
    _, test_raw = data.time_split(flights.frame, p.get("split_date", data.DEFAULT_SPLIT_DATE))
    test_raw = test_raw.cache()
    rows, logged = test_raw.count(), int(run.data.metrics["test_rows"])
    if rows != logged:
        raise RuntimeError(f"the rebuilt holdout has {rows} rows, the run logged {logged}: the data source "
                           f"{p.get('data')} changed since training; retrain instead")
    return test_raw


def evaluate(s: Settings, version: str) -> dict:
    """Score VERSION (as registered) and the served model on VERSION's holdout."""
    from flightdelay.spark import get_spark
    from training import evaluate as metrics
    from training import tracking

    mlflow_client = registry.client(s)
    mv = mlflow_client.get_model_version(s.model_name, version)
    run = mlflow_client.get_run(mv.run_id)
    spark = get_spark(s, "flightdelay-evaluate")
    try:
        test_raw = holdout_of_run(spark, run)
        candidate = registry.load_pipeline(s, version)
        accuracy = metrics.holdout_accuracy(candidate, registry.reference_from_run(mv.run_id, s.mlflow_uri), test_raw)
        logged = run.data.metrics["holdout_accuracy"]
        if abs(accuracy - logged) > 1e-9:
            raise RuntimeError(f"version {version} scores {accuracy:.6f} on its holdout, its run logged {logged:.6f}")
        baseline = tracking.served_baseline(s, test_raw)
    finally:
        spark.stop()
    tracking.record_evaluation(s, mv.run_id, baseline)
    log.info("%s version %s: holdout accuracy %.4f (%d rows); %s: %.4f", s.model_name, version, accuracy,
             int(run.data.metrics["test_rows"]), baseline.label, baseline.accuracy)
    return {"model_name": s.model_name, "version": version, "run_id": mv.run_id, "candidate_accuracy": accuracy,
            "baseline_version": baseline.version, "baseline_accuracy": baseline.accuracy,
            "test_rows": int(run.data.metrics["test_rows"])}


def promote(s: Settings, version: str) -> dict:
    from training import tracking

    mlflow_client = registry.client(s)
    mv = mlflow_client.get_model_version(s.model_name, version)
    run = mlflow_client.get_run(mv.run_id)
    baseline = tracking.baseline_of_run(run)
    if baseline is None:
        raise RuntimeError(f"version {version} has not been evaluated: python -m training.champion evaluate {version}")
    return tracking.promote(s, version, mv.run_id, run.data.metrics["holdout_accuracy"], baseline)


def log_monitor_reference(mlflow_client, run_id: str) -> None:
    """The shipped model's drift reference on its run, where the monitor looks for a version's."""
    from flightdelay import drift

    mlflow_client.log_dict(run_id, json.loads(SHIPPED.monitor_reference.read_text()), drift.ARTIFACT_PATH)


def add_monitor_reference_to_shipped_runs(s: Settings) -> None:
    """Versions of the shipped model registered before its run carried the drift reference get
    it: without it the monitor cannot judge the drift of the model it watches first."""
    from flightdelay import drift

    mlflow_client = registry.client(s)
    for mv in mlflow_client.search_model_versions(f"name = '{s.model_name}'"):
        run = mlflow_client.get_run(mv.run_id) if mv.run_id else None
        if run is None or run.info.run_name != SHIPPED_RUN_NAME:
            continue
        folder = drift.ARTIFACT_PATH.rsplit("/", 1)[0]
        if not any(a.path == drift.ARTIFACT_PATH for a in mlflow_client.list_artifacts(mv.run_id, folder)):
            log_monitor_reference(mlflow_client, mv.run_id)
            log.info("the drift reference added to the run of %s version %s", s.model_name, mv.version)


def register_shipped(s: Settings) -> dict:
    """The shipped default model as a registry entry (run with its metrics, plots, reference,
    model), given the alias; only when the registered model has no version at all."""
    existing = registry.version_count(s)
    if existing:
        add_monitor_reference_to_shipped_runs(s)
        live = registry.champion_version(s)
        log.info("%s already has %d version(s) (alias %s -> %s); nothing to register", s.model_name, existing,
                 s.model_alias, live)
        return {"model_name": s.model_name, "registered": False, "versions": existing, "live_version": live}

    from pyspark.ml import PipelineModel

    from flightdelay import features
    from flightdelay.spark import get_spark
    from training import data, tracking

    metrics = SHIPPED.load_metrics()
    reference = load_reference(SHIPPED.reference)
    # Local Spark whatever FD_SPARK_CLUSTER / FD_CLUSTER say: it reads the shipped model and three
    # rows, and `make up` registers it before it starts a Spark cluster.
    spark = get_spark(s, "flightdelay-register-shipped", extra={"spark.master": s.spark_master})
    try:
        model = PipelineModel.load(str(SHIPPED.pipeline))
        # A few real holdout flights as the model's input example (signature in the MLflow UI).
        flights = data.load_flights(spark, sample=0.001, seed=1)
        _, holdout = data.time_split(flights.frame, metrics.get("split_date", data.DEFAULT_SPLIT_DATE))
        example = features.add_features(holdout.limit(3), reference)
        registered = tracking.log_and_register(s, metrics.get("experiment", "flight_delay"), metrics, model,
                                               reference, example, name=SHIPPED_RUN_NAME,
                                               data=metrics.get("data", data.DEFAULT_SOURCE))
    finally:
        spark.stop()
    mlflow_client = registry.client(s)
    version, run_id = registered["version"], registered["run_id"]
    log_monitor_reference(mlflow_client, run_id)
    mlflow_client.set_registered_model_alias(s.model_name, s.model_alias, version)
    reason = (f"the shipped default model in models/ (holdout accuracy {metrics['holdout_accuracy']:.4f}), "
              f"registered by make up as the first version")
    for key, value in (("promoted", "true"), ("promotion_reason", reason), ("live_version", version)):
        mlflow_client.set_tag(run_id, key, value)
        mlflow_client.set_model_version_tag(s.model_name, version, key, value)
    log.info("registered the shipped default model as %s version %s (run %s), alias %s", s.model_name, version,
             run_id, s.model_alias)
    return {"model_name": s.model_name, "registered": True, "version": version, "run_id": run_id,
            "live_version": version}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.champion", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("evaluate", "promote"):
        sub.add_parser(name).add_argument("version")
    sub.add_parser("register-shipped")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    s = load_settings()
    try:
        if args.command == "evaluate":
            result = evaluate(s, args.version)
        elif args.command == "promote":
            result = promote(s, args.version)
        else:
            result = register_shipped(s)
    except Exception:  # an entry point: report and exit non-zero
        log.exception("%s failed", args.command)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
