"""The MLflow tracking server: experiments, metrics and the model registry work over HTTP."""
import uuid

import pytest


@pytest.fixture(scope="module")
def mlflow_client(stack):
    s = stack.require("mlflow")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=s.mlflow_uri, registry_uri=s.mlflow_uri)


def test_create_experiment_and_log_metric(mlflow_client):
    exp_id = mlflow_client.create_experiment(f"test-{uuid.uuid4().hex}")
    run = mlflow_client.create_run(exp_id)
    mlflow_client.log_metric(run.info.run_id, "holdout_accuracy", 0.5)
    mlflow_client.set_terminated(run.info.run_id)
    fetched = mlflow_client.get_run(run.info.run_id)
    assert fetched.data.metrics["holdout_accuracy"] == 0.5
    assert fetched.info.status == "FINISHED"


def test_register_model_version_and_alias(mlflow_client, tmp_path):
    exp_id = mlflow_client.create_experiment(f"test-{uuid.uuid4().hex}")
    run = mlflow_client.create_run(exp_id)
    (tmp_path / "model.txt").write_text("weights")
    mlflow_client.log_artifact(run.info.run_id, str(tmp_path / "model.txt"), artifact_path="model")
    name = f"test-model-{uuid.uuid4().hex[:8]}"
    mlflow_client.create_registered_model(name)
    version = mlflow_client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    mlflow_client.set_registered_model_alias(name, "champion", version.version)
    assert mlflow_client.get_model_version_by_alias(name, "champion").version == version.version
    # The artifact really went to the server's artifact store and comes back.
    local = mlflow_client.download_artifacts(run.info.run_id, "model/model.txt", str(tmp_path / "dl"))
    assert open(local).read() == "weights"


def test_the_shipped_model_registered_by_make_up_carries_its_drift_reference(stack, mlflow_client):
    """make up registers the shipped model (training.champion register-shipped); the monitor
    finds the drift reference of that version on its run, as for any trained version."""
    import os
    import subprocess
    import sys

    from flightdelay.config import REPO_ROOT, load_settings
    from monitor.references import ReferenceBook

    name = f"test-shipped-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FD_MODEL_NAME=name)
    try:
        done = subprocess.run([sys.executable, "-m", "training.champion", "register-shipped"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        version = str(mlflow_client.get_model_version_by_alias(name, "champion").version)
        found = ReferenceBook(load_settings(env)).get(name, version)
        assert found is not None, f"no drift reference on the run of {name} v{version}"
        reference, where = found
        assert where.startswith("run ") and reference.holdout_accuracy is not None and reference.distributions
    finally:
        mlflow_client.delete_registered_model(name)
