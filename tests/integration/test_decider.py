"""The promotion decider (monitor/decider.py, in `python -m monitor`) against the real Kafka,
Cassandra and MLflow: shadow predictions and scored records of a model of the test's own, on
topics of its own, written as the job writes them (the shadow topic's contract; the scored
topic's SCORED_FIELDS), for registered versions whose runs carry the holdout figures training
records (holdout_accuracy, champion_holdout_accuracy, evaluated_against).

* a challenger right far more often than the champion on the same flights is promoted (aliases
  moved, the former champion 'previous'), its tags set and an event row written; then, on
  probation, pairs where the previous champion is much better roll it back;
* a challenger forced to be worse live is never promoted: refused, the champion untouched.

The monitor runs with a minimum of 100 pairs (FD_PROMOTE_MIN_OUTCOMES), so the test stays short;
the model, topics and the model's Cassandra rows are removed at the end."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid as uuidlib

import pytest

from flightdelay.config import REPO_ROOT, load_settings
from flightdelay.kafka import delete_topics, ensure_topics
from flightdelay.stores import cassandra
from flightdelay.stores import promotion as store
from harness.traffic import produce
from harness.wait import wait_for
from monitor import status

PAIRS = 150   # requests played per contest
MIN = 100     # FD_PROMOTE_MIN_OUTCOMES of the test's monitor: a decision may come before the last pairs


@pytest.fixture(scope="module")
def decider(stack, tmp_path_factory):
    stack.require("kafka", "cassandra", "mlflow")
    from mlflow import MlflowClient

    sfx = uuidlib.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("decider")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FD_STATE_DIR=str(tmp / "state"),
               FD_RESPONSE_TOPIC=f"test-dec-resp-{sfx}", FD_MONITOR_TOPIC=f"test-dec-mon-{sfx}",
               FD_SHADOW_TOPIC=f"test-dec-shadow-{sfx}", FD_SCORED_TOPIC=f"test-dec-scored-{sfx}",
               FD_MONITOR_GROUP=f"test-dec-{sfx}", FD_MONITOR_STARTING_OFFSETS="earliest",
               FD_MODEL_NAME=f"test_decider_{sfx}", FD_MONITOR_RETRAIN_ON_ALERT="0",
               FD_PROMOTE_MIN_OUTCOMES=str(MIN), FD_PROMOTE_MAX_OUTCOMES="1000", FD_PROMOTE_ALPHA="0.01",
               FD_PROBATION_OUTCOMES="1000")
    s = load_settings(env)
    ensure_topics(s, [s.response_topic, s.monitor_topic, s.shadow_topic, s.scored_topic])
    client = MlflowClient(tracking_uri=s.mlflow_uri, registry_uri=s.mlflow_uri)
    experiment = client.create_experiment(f"test_decider_{sfx}")
    client.create_registered_model(s.model_name)
    log = tmp / "monitor.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "monitor"], env=env, cwd=REPO_ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def reading():
        if proc.poll() is not None:
            raise RuntimeError(f"monitor exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        return status.problem(s) is None and len((status.read(s) or {}).get("decider", {}).get("assigned") or []) >= 2

    cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        wait_for(reading, 60, f"the monitor's decider to read {s.shadow_topic} and {s.scored_topic} (log {log})",
                 interval=0.5)
        yield {"s": s, "client": client, "experiment": experiment, "sess": sess, "proc": proc, "log": log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        delete_topics(s, [s.response_topic, s.monitor_topic, s.shadow_topic, s.scored_topic])
        client.delete_registered_model(s.model_name)
        client.delete_experiment(experiment)
        for c in store.contests(sess, s.model_name):
            sess.execute("DELETE FROM shadow_pairs WHERE model_name = %s AND champion_version = %s AND "
                         "shadow_version = %s", [s.model_name, c["champion_version"], c["shadow_version"]])
        for table in ("model_events", "model_contests"):
            sess.execute(f"DELETE FROM {table} WHERE model_name = %s", [s.model_name])
        cluster.shutdown()


def register(d, holdout: float, champion_holdout: float | None = None, against: str | None = None) -> str:
    """A version whose run carries what training records about its holdout."""
    client = d["client"]
    run = client.create_run(d["experiment"])
    client.log_metric(run.info.run_id, "holdout_accuracy", holdout)
    if champion_holdout is not None:
        client.log_metric(run.info.run_id, "champion_holdout_accuracy", champion_holdout)
        client.set_tag(run.info.run_id, "evaluated_against", against)
    client.set_terminated(run.info.run_id)
    return str(client.create_model_version(d["s"].model_name, source=f"{run.info.artifact_uri}/model",
                                           run_id=run.info.run_id).version)


def aliases(d) -> dict:
    return {alias: str(v) for alias, v in (d["client"].get_registered_model(d["s"].model_name).aliases or {}).items()}


def play(d, champion: str, shadow: str, role: str, champion_right: float, shadow_right: float, n: int = PAIRS):
    """``n`` requests: the shadow predictions (as the job writes them), then the champion's scored
    records; each model right on the given share of them (the first ones), wrong otherwise."""
    s, now = d["s"], int(time.time() * 1000)
    shadows, scored = [], []
    for i in range(n):
        uuid, actual = str(uuidlib.uuid4()), 3
        flight = {"UUID": uuid, "Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "Route": "EWR-IAH",
                  "FlightDate": "2013-11-04", "FlightNum": 1000 + i, "CRSDepTime": 900, "CRSArrTime": 1200}
        shadow_prediction = actual if i < shadow_right * n else 0
        champion_prediction = actual if i >= n - champion_right * n else 1
        shadows.append((uuid.encode(), json.dumps({
            **flight, "DepDelay": 45.0, "Distance": 1400.0, "prediction": shadow_prediction,
            "label": str(shadow_prediction), "probabilities": [0.25] * 4, "model_name": s.model_name,
            "model_version": shadow, "requested_at": now, "predicted_at": now + 5, "role": role,
            "champion_version": champion, "unscorable": None}).encode()))
        scored.append((uuid.encode(), json.dumps({
            **{k: flight[k] for k in ("UUID", "Carrier", "FlightNum", "Origin", "Dest", "Route", "FlightDate",
                                      "CRSDepTime")},
            "flight_key": f"UA-{1000 + i}-2013-11-04", "model_name": s.model_name, "model_version": champion,
            "prediction": champion_prediction, "probability": 0.4, "status": "scored", "actual": actual,
            "correct": champion_prediction == actual, "ArrDelay": 60.0, "DepDelay": 45.0, "outcome_id": uuid,
            "requested_at": now, "reported_at": now + 1000, "scored_at": now + 2000, "outcome_kafka_at": now + 1000,
            "prediction_kafka_at": now + 10}).encode()))
    produce(s, s.shadow_topic, shadows)
    produce(s, s.scored_topic, scored)


def event(d, action: str, subject: str) -> dict:
    return wait_for(lambda: next((e for e in store.events(d["sess"], d["s"].model_name)
                                  if e["action"] == action and e["subject_version"] == subject), None),
                    30, f"the {action} of v{subject} in model_events")


def test_a_better_challenger_is_promoted_then_rolled_back_when_its_predecessor_is_better(decider):
    d, s, client = decider, decider["s"], decider["client"]
    v1 = register(d, holdout=0.53)
    v2 = register(d, holdout=0.55, champion_holdout=0.53, against=v1)
    client.set_registered_model_alias(s.model_name, s.model_alias, v1)
    client.set_registered_model_alias(s.model_name, s.challenger_alias, v2)

    play(d, champion=v1, shadow=v2, role="challenger", champion_right=0.3, shadow_right=0.8)
    wait_for(lambda: aliases(d) == {s.model_alias: v2, s.previous_alias: v1}, 45,
             f"v{v2} promoted over v{v1} (aliases now {aliases(d)})")
    promoted = event(d, "promote", v2)
    assert (promoted["champion_version"], promoted["shadow_version"], promoted["served_version"]) == (v1, v2, v2)
    f = promoted["figures"]
    assert MIN <= f["n"] <= PAIRS and f["shadow_only"] > f["champion_only"] and f["p_shadow_better"] < 0.01
    assert f["shadow_holdout"] == pytest.approx(0.55) and f["champion_holdout"] == pytest.approx(0.53)
    tags = client.get_model_version(s.model_name, v2).tags
    assert tags["decision"] == "promote" and "significantly better" in tags["decision_why"]
    assert json.loads(tags["decision_figures"])["n"] == f["n"]
    assert "promote on live evidence" in client.get_run(client.get_model_version(s.model_name, v2).run_id
                                                        ).data.tags["promotion_reason"]

    # probation: the job now serves v2 and scores v1 in shadow as 'previous'; v1 is much better
    play(d, champion=v2, shadow=v1, role="previous", champion_right=0.2, shadow_right=0.7)
    wait_for(lambda: aliases(d) == {s.model_alias: v1}, 45, f"v{v2} rolled back to v{v1} (aliases {aliases(d)})")
    rolled = event(d, "rollback", v2)
    assert (rolled["champion_version"], rolled["shadow_version"], rolled["served_version"]) == (v2, v1, v1)
    assert rolled["figures"]["p_shadow_better"] < 0.01 and MIN <= rolled["figures"]["n"] <= PAIRS
    assert client.get_model_version(s.model_name, v2).tags["decision"] == "rollback"
    assert d["proc"].poll() is None
    lines = [line for line in d["log"].read_text().splitlines() if "monitor.decider decision " in line]
    assert len(lines) == 2 and "PROMOTE" in lines[0] and "ROLLBACK" in lines[1], lines


def test_a_challenger_worse_live_is_never_promoted(decider):
    d, s, client = decider, decider["s"], decider["client"]
    champion = register(d, holdout=0.53)
    worse = register(d, holdout=0.60, champion_holdout=0.53, against=champion)   # better on the holdout
    client.set_registered_model_alias(s.model_name, s.model_alias, champion)
    client.set_registered_model_alias(s.model_name, s.challenger_alias, worse)

    play(d, champion=champion, shadow=worse, role="challenger", champion_right=0.7, shadow_right=0.2)
    refused = event(d, "refuse", worse)
    assert "significantly worse" in refused["why"] and refused["served_version"] == champion
    assert aliases(d) == {s.model_alias: champion}
    assert client.get_model_version(s.model_name, worse).tags["decision"] == "refuse"
    contests = {(c["champion_version"], c["shadow_version"]): c for c in store.contests(d["sess"], s.model_name)}
    assert contests[(champion, worse)]["state"] == "refuse" and contests[(champion, worse)]["n"] == refused["figures"]["n"]
    assert MIN <= refused["figures"]["n"] <= PAIRS
