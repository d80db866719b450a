"""The alert trigger against the real Airflow (API server + DAG processor): two alerts in a row
start exactly one run of the retraining DAG, with the reason in its conf; once that run has
ended, the cool-down still refuses a third. The DAG is paused meanwhile (a paused DAG accepts
runs and keeps them queued), so no retraining actually runs; the runs made here are deleted and
the DAG's pause state restored.

Also, with no server (Airflow's `dags test` in a throwaway AIRFLOW_HOME, training steps marked
done): the DAG's first task logs why the run started."""
import dataclasses
import json
import subprocess
import urllib.parse

import pytest

from flightdelay import retrain_trigger as rt
from flightdelay.config import REPO_ROOT
from harness.wait import wait_for
from infra.services.airflow import airflow_bin, airflow_env, install_airflow, migrate_db
from monitor.alerts import RetrainOnAlert, reason_of


@pytest.fixture(scope="module")
def airflow(stack):
    s = stack.require("airflow", "airflow-dag-processor")
    http = rt.airflow_http(s)
    dag_path = f"/api/v2/dags/{urllib.parse.quote(s.retrain_dag_id)}"

    def parsed():
        try:
            return http("GET", dag_path, None)
        except RuntimeError:   # 404 until the DAG processor has parsed the file
            return None

    was_paused = wait_for(parsed, 180, f"DAG {s.retrain_dag_id} in Airflow", interval=3)["is_paused"]
    http("PATCH", dag_path, {"is_paused": True})
    made = []
    yield s, http, made
    for run_id in made:
        run_path = f"{rt.runs_path(s.retrain_dag_id)}/{urllib.parse.quote(run_id)}"
        http("PATCH", run_path, {"state": "failed"})
        http("DELETE", run_path, None)
    http("PATCH", dag_path, {"is_paused": was_paused})


def alert_runs(s, http):
    return http("GET", rt.runs_path(s.retrain_dag_id, run_id_prefix_pattern=rt.RUN_ID_PREFIX, limit=100),
                None)["dag_runs"]


def test_two_alerts_in_a_row_start_exactly_one_run_with_the_reason_in_its_conf(airflow):
    s, http, made = airflow
    active = http("GET", rt.runs_path(s.retrain_dag_id, state=list(rt.ACTIVE_STATES)), None)["dag_runs"]
    assert active == [], f"another run of the DAG is active; the test needs an idle DAG: {active}"
    before = {r["dag_run_id"] for r in alert_runs(s, http)}
    quick = dataclasses.replace(s, retrain_cooldown_s=0.0)   # only the active run may refuse the second

    first = rt.trigger(quick, "test: PSI DepDelay 0.31 > 0.25", window="w-1", scores={"psi_DepDelay": 0.31})
    if first.run_id:
        made.append(first.run_id)
    second = rt.trigger(quick, "test: the same drift, one window later", window="w-2", scores={"psi_DepDelay": 0.33})
    if second.run_id:
        made.append(second.run_id)

    assert first.started, first.reason
    assert not second.started and second.blocking_run == first.run_id and "queued" in second.reason
    new = [r for r in alert_runs(s, http) if r["dag_run_id"] not in before]
    assert [r["dag_run_id"] for r in new] == [first.run_id]
    assert new[0]["conf"] == {"reason": "test: PSI DepDelay 0.31 > 0.25", "window": "w-1",
                              "scores": {"psi_DepDelay": 0.31}, "observed": "hdfs"}
    assert new[0]["run_type"] == "manual" and new[0]["state"] == "queued"

    # The run ends (failed here, never run): no active run now, but the cool-down holds.
    http("PATCH", f"{rt.runs_path(s.retrain_dag_id)}/{urllib.parse.quote(first.run_id)}", {"state": "failed"})
    third = rt.trigger(dataclasses.replace(s, retrain_cooldown_s=3600.0), "test: a third alert")
    assert not third.started and "cool-down" in third.reason and third.blocking_run == first.run_id
    assert [r["dag_run_id"] for r in alert_runs(s, http) if r["dag_run_id"] not in before] == [first.run_id]


def test_the_monitors_alerts_start_one_run_with_the_windows_reason(airflow):
    """monitor/alerts.py as the monitor uses it, against the real Airflow: an alerting window
    starts a run whose conf carries the window's reason, window and scores; the next alerting
    window is refused while that run is queued."""
    s, http, made = airflow
    before = {r["dag_run_id"] for r in alert_runs(s, http)}
    alerts = RetrainOnAlert(dataclasses.replace(s, retrain_cooldown_s=0.0))
    window = {"model_name": "flight_delay_rf", "model_version": "3", "window_start": 1_000, "window_end": 61_000,
              "predictions": 900, "drift": "significant", "worst_feature": "DepDelay", "max_psi": 0.31,
              "psi": {"DepDelay": 0.31}, "js": {"DepDelay": 0.05}, "matched": 0, "live_accuracy": None,
              "holdout_accuracy": 0.53, "accuracy_drop": None, "accuracy": "insufficient", "alert": True}
    alerts.offer(window).join(60)
    started = (alerts.last or {}).get("run_id")
    if started:
        made.append(started)
    assert alerts.counts["retrain_started"] == 1 and started, alerts.last
    alerts.offer({**window, "window_start": 61_000, "window_end": 121_000}).join(60)
    assert alerts.counts["retrain_refused"] == 1 and "queued" in alerts.last["reason"], alerts.last
    new = [r for r in alert_runs(s, http) if r["dag_run_id"] not in before]
    assert [r["dag_run_id"] for r in new] == [started]
    assert new[0]["conf"]["reason"] == reason_of(window) and new[0]["conf"]["observed"] == "hdfs"
    assert new[0]["conf"]["window"]["window_end"] == 61_000 and new[0]["conf"]["scores"]["psi"] == {"DepDelay": 0.31}
    http("PATCH", f"{rt.runs_path(s.retrain_dag_id)}/{urllib.parse.quote(started)}", {"state": "failed"})


def test_the_first_task_logs_why_the_run_started(settings, tmp_path):
    """`airflow dags test` with an alert's conf; the training tasks are marked done, not run."""
    install_airflow(settings)
    home = tmp_path / "airflow-home"
    migrate_db(settings, home)
    conf = {"reason": "accuracy 0.41 < holdout 0.53 - 5 points", "window": "2026-12-07T01:00",
            "scores": {"live_accuracy": 0.41, "matched": 800}, "sample": 0.01}
    result = subprocess.run([airflow_bin(settings), "dags", "test", settings.retrain_dag_id, "-c", json.dumps(conf),
                             "--mark-success-pattern", "^(train|evaluate|promote|report)$"],
                            env=airflow_env(settings, home), cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=600, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert ("started by an alert: accuracy 0.41 < holdout 0.53 - 5 points; window 2026-12-07T01:00; "
            'scores {"live_accuracy": 0.41, "matched": 800}') in out, out[-6000:]
