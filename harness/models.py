"""Registered model versions for tests and benches: the shipped PipelineModel logged to MLflow
as a new version of a model name of their own, an alias set on it, and everything removed again.

Usage (a bench registers in a child process, so that its own process starts no JVM):
    python -m harness.models register NAME [--alias ALIAS]     prints the new version
    python -m harness.models discard NAME                      the model and its experiment
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings, load_settings
from flightdelay.reference import Reference


def experiment_name(name: str) -> str:
    return f"test-{name}"


def register_shipped_model(s: Settings, name: str, reference: Reference | None = None) -> str:
    """Log the shipped PipelineModel and its reference data (or ``reference``) as a new version
    of ``name``; its version. Needs a SparkSession (PipelineModel.load)."""
    import mlflow
    import mlflow.spark
    import pyspark
    from pyspark.ml import PipelineModel

    from flightdelay.model_dir import SHIPPED
    from flightdelay.registry import MODEL_ARTIFACT_PATH, REFERENCE_ARTIFACT_PATH

    mlflow.set_tracking_uri(s.mlflow_uri)
    mlflow.set_registry_uri(s.mlflow_uri)
    mlflow.set_experiment(experiment_name(name))
    reference_dir, reference_file = REFERENCE_ARTIFACT_PATH.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run():
        path = SHIPPED.reference if reference is None else reference.save(Path(tmp) / reference_file)
        mlflow.log_artifact(str(path), reference_dir)
        info = mlflow.spark.log_model(PipelineModel.load(str(SHIPPED.pipeline)), MODEL_ARTIFACT_PATH,
                                      registered_model_name=name,
                                      pip_requirements=[f"pyspark=={pyspark.__version__}"])
    return str(info.registered_model_version)


def set_alias(s: Settings, name: str, alias: str, version: str) -> None:
    from flightdelay.registry import client

    client(s).set_registered_model_alias(name, alias, version)


def discard_model(s: Settings, name: str) -> None:
    """Delete the registered model ``name`` (its versions and aliases) and the experiment its
    versions were logged in, if they exist."""
    from flightdelay.registry import client

    mlflow_client = client(s)
    if mlflow_client.search_registered_models(filter_string=f"name = '{name}'"):
        mlflow_client.delete_registered_model(name)
    experiment = mlflow_client.get_experiment_by_name(experiment_name(name))
    if experiment is not None:
        mlflow_client.delete_experiment(experiment.experiment_id)


def register_in_child(name: str, alias: str | None = None, timeout: float = 600) -> str:
    """``register_shipped_model`` (and the alias) in a child process: its JVM ends with it."""
    command = [sys.executable, "-m", "harness.models", "register", name] + (["--alias", alias] if alias else [])
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"registering {name} failed: {done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("register", "discard"))
    parser.add_argument("name")
    parser.add_argument("--alias")
    args = parser.parse_args()
    s = load_settings()
    if args.action == "discard":
        discard_model(s, args.name)
        return 0
    from flightdelay.spark import get_spark

    spark = get_spark(s, "harness-register-model")
    try:
        version = register_shipped_model(s, args.name)
        if args.alias:
            set_alias(s, args.name, args.alias, version)
    finally:
        spark.stop()
    print(version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
