"""Training end to end against the real MLflow server of the local stack: a small sample
registers a version but never replaces the model being served; a deliberately worse model does
not take the alias from a champion.

Each test run uses its own experiment and registered-model name, removed at the end."""
import subprocess
import sys
import uuid

import pytest

from flightdelay.config import REPO_ROOT

SAMPLE = "0.05"


def train(*args, timeout=900):
    cmd = [sys.executable, "-m", "training.train", "--sample", SAMPLE, *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def mlflow_names(stack):
    settings = stack.require("mlflow")
    from mlflow import MlflowClient

    tag = uuid.uuid4().hex[:10]
    names = {"uri": settings.mlflow_uri, "model": f"test_flight_delay_rf_{tag}",
             "experiment": f"test_training_{tag}", "alias": settings.model_alias}
    yield names
    client = MlflowClient(tracking_uri=names["uri"])
    if client.search_registered_models(filter_string=f"name = '{names['model']}'"):
        client.delete_registered_model(names["model"])
    experiment = client.get_experiment_by_name(names["experiment"])
    if experiment is not None:
        client.delete_experiment(experiment.experiment_id)


def test_a_sample_run_never_replaces_the_served_model_and_a_worse_one_never_takes_the_alias(mlflow_names, tmp_path):
    from mlflow import MlflowClient

    n = mlflow_names
    common = ["--mlflow-uri", n["uri"], "--experiment", n["experiment"], "--model-name", n["model"]]
    first = train(*common, "--num-trees", "10", "--max-depth", "6", "--output", str(tmp_path / "good"))
    assert first.returncode == 0, first.stderr[-4000:]
    # No champion yet: the job serves the shipped default model (full data), which a 5% sample
    # does not beat on the same holdout, so the new version is registered but not served.
    assert "version 1 not promoted" in first.stderr and "the shipped default model" in first.stderr

    client = MlflowClient(tracking_uri=n["uri"])
    assert client.get_registered_model(n["model"]).aliases == {}
    version1 = client.get_model_version(n["model"], "1")
    run = client.get_run(version1.run_id)
    assert run.data.tags["promoted"] == "false" and run.data.tags["live_version"] == "default"
    assert run.data.tags["evaluated_against"] == "default"
    good_accuracy = run.data.metrics["holdout_accuracy"]
    assert good_accuracy > run.data.metrics["baseline_accuracy"]
    assert good_accuracy < run.data.metrics["champion_holdout_accuracy"]
    for key in ("holdout_weighted_f1", "holdout_macro_f1", "holdout_precision_3", "holdout_recall_0"):
        assert key in run.data.metrics
    logged = {a.path for a in client.list_artifacts(version1.run_id)}
    assert {"confusion_matrix.png", "feature_importance.png", "metrics.json", "model", "reference"} <= logged
    assert client.list_artifacts(version1.run_id, "reference")[0].path == "reference/reference.json"
    assert (tmp_path / "good" / "pipeline_model" / "metadata").is_dir()

    # With version 1 as champion, a worse model is registered and compared on the same holdout.
    client.set_registered_model_alias(n["model"], n["alias"], "1")
    worse = train(*common, "--num-trees", "1", "--max-depth", "1")
    assert worse.returncode == 0, worse.stderr[-4000:]
    assert "not promoted" in worse.stderr
    versions = client.search_model_versions(f"name = '{n['model']}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    assert client.get_model_version_by_alias(n["model"], n["alias"]).version == "1"
    second = client.get_run(client.get_model_version(n["model"], "2").run_id)
    assert second.data.tags["promoted"] == "false" and second.data.tags["live_version"] == "1"
    assert second.data.metrics["holdout_accuracy"] < second.data.metrics["champion_holdout_accuracy"]
    assert abs(second.data.metrics["champion_holdout_accuracy"] - good_accuracy) < 1e-9


def test_training_fails_loudly_on_an_empty_holdout(tmp_path):
    failed = train("--no-mlflow", "--output", str(tmp_path), "--split-date", "2099-01-01", timeout=600)
    assert failed.returncode != 0
    assert "empty split" in failed.stderr
