"""The loop closes, end to end on the whole platform (Kafka, the streaming job, HDFS, Cassandra,
MLflow, Airflow's scheduler, the web app), as an operator would watch it:

1. ``python -m replay --shift heavy-delays`` plays three days of real November 2013 flights,
   evenings congested, through the request and outcome topics; their scored predictions reach
   the HDFS archive (what an alert's retraining reads).
2. The drift monitor (``python -m monitor``, started here with a consumer group of its own that
   begins at the replay's first response) scores its windows, alerts, and starts the retraining
   DAG through Airflow's REST API: exactly one run, with the alerting window's reason in its conf,
   however many windows alert.
3. The run trains on a sample of the base flights plus every observed outcome, holds out the
   newest observed date and registers the version as ``challenger``; the running job scores every
   request with it too (the shadow topic), answering no one.
4. Two more shifted days: the decider pairs both versions' predictions on the same flights' outcomes
   and promotes or refuses the challenger; the decision on its recorded figures is checked here
   against the stated rule (McNemar's exact one-sided test at alpha, minimum and maximum pairs,
   the holdout condition), and a new prediction through the web app comes from the winner.

The monitor runs with small bounds (FD_PROMOTE_MIN_OUTCOMES / MAX below, FD_RETRAIN_SAMPLE) so the
whole loop takes minutes. At the end the champion alias goes back to where it was, the test's
version and its DAG run are deleted, and the job is serving the original champion again.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid as uuidlib
from types import SimpleNamespace

import pytest
from scipy.stats import binomtest

from flightdelay import kafka, registry
from flightdelay import retrain_trigger as rt
from flightdelay import status as job_status
from flightdelay.config import REPO_ROOT, load_settings
from flightdelay.kafka import delete_topics, ensure_topics
from flightdelay.stores import cassandra, parquet
from flightdelay.stores import promotion as promotion_store
from harness.wait import wait_for
from monitor import status as monitor_status
from monitor.alerts import reason_of, window_of
from tests.e2e.test_browser import shot
from tests.e2e.test_retrain import PICKUP_BOUND_S, airflow_run_screenshot, served_version

PHASE_1 = ("2013-11-04", 3)   # shifted days before the alert: the retrain's observed flights
PHASE_2 = ("2013-11-07", 2)   # shifted days while the challenger is in shadow: the live evidence
SHIFT = "heavy-delays"
MIN_PAIRS, MAX_PAIRS, ALPHA = 300, 600, 0.01   # the decision is due by MAX_PAIRS paired outcomes
RETRAIN_SAMPLE = 0.03          # of the base flights (all observed ones are used)
COOLDOWN_S = 1800              # longer than the test: phase 2's alerts must start nothing
ARCHIVE_BOUND_S = 300          # FD_ARCHIVE_TRIGGER (60 s) twice, on a loaded machine
DAG_RUN_BOUND_S = 1200
DECISION_BOUND_S = 600


def replay(s, first_day: str, days: int, out) -> dict:
    summary = out.parent / f"replay-{first_day}.json"
    cmd = [sys.executable, "-m", "replay", "--from", first_day, "--days", str(days), "--shift", SHIFT, "--speed", "max",
           "--settle", "300", "--json", str(summary)]
    with open(out, "ab") as log:
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), stdout=log,
                              stderr=subprocess.STDOUT, timeout=900, check=False)
    assert done.returncode == 0, f"replay {first_day} failed:\n{out.read_text()[-3000:]}"
    return json.loads(summary.read_text())


def commit_group_offsets_at(s, group: str, topic: str, at_ms: int) -> None:
    """The group's committed offsets on ``topic``: its first record at or after ``at_ms`` (the end
    where none is), so a consumer of that group starts reading there."""
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(s, group, {"enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        found = consumer.offsets_for_times([TopicPartition(topic, p, at_ms) for p in partitions], timeout=30)
        offsets = [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else
                                  consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=30)[1])
                   for tp in found]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def archived_scored(s, dates: set[str], since_ms: int) -> int:
    """Scored predictions of flights on ``dates`` in the HDFS archive's files written since ``since_ms``."""
    import io

    import pyarrow.parquet as pq

    hdfs = parquet.hdfs_client(s)
    log_dir = f"{s.scored_archive_path}/_spark_metadata"
    if hdfs.status(log_dir, strict=False) is None:
        return 0
    files = parquet.committed_files(parquet.read_log(hdfs, log_dir, parquet.latest_log_files(hdfs.list(log_dir))),
                                    since_ms)
    count = 0
    for path in files:
        if parquet.partition_value(path, "FlightDate") in dates:   # the archive is partitioned by flight date
            with hdfs.read(path) as reader:
                count += pq.ParquetFile(io.BytesIO(reader.read())).metadata.num_rows
    return count


def days(first_day: str, n: int) -> set[str]:
    import datetime as dt

    start = dt.date.fromisoformat(first_day)
    return {str(start + dt.timedelta(days=i)) for i in range(n)}


def monitor_windows(s, topic: str) -> list[dict]:
    from harness.traffic import collect

    return [json.loads(m.value()) for m in collect(s, topic, until=lambda _: False, timeout=5)]


@pytest.fixture(scope="module")
def loop(platform, tmp_path_factory):
    s = platform
    if monitor_status.problem(s) is None:
        pytest.fail("the platform's own drift monitor is running (make up?): it would alert and decide beside this "
                    "test's; stop it (python -m infra down monitor) and run the test again")
    tmp = tmp_path_factory.mktemp("loop")
    client = registry.client(s)
    original = registry.champion(s, client)
    assert original is not None, "make up (the mlflow bootstrap) registers the shipped model as champion"
    http = rt.airflow_http(s)
    dag_path = f"/api/v2/dags/{urllib.parse.quote(s.retrain_dag_id)}"
    was_paused = wait_for(lambda: _get_or_none(http, dag_path), 180, f"DAG {s.retrain_dag_id} in Airflow",
                          interval=3)["is_paused"]
    if was_paused:
        http("PATCH", dag_path, {"is_paused": False})
    active = http("GET", rt.runs_path(s.retrain_dag_id, state=list(rt.ACTIVE_STATES)), None)["dag_runs"]
    assert active == [], f"another run of the DAG is active; the loop needs an idle DAG: {active}"

    sfx = uuidlib.uuid4().hex[:8]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FD_MONITOR_GROUP=f"test-loop-{sfx}",
               FD_MONITOR_TOPIC=f"test-loop-monitor-{sfx}", FD_MONITOR_STARTING_OFFSETS="latest",
               FD_MONITOR_RETRAIN_ON_ALERT="1", FD_RETRAIN_SAMPLE=str(RETRAIN_SAMPLE),
               FD_RETRAIN_COOLDOWN_S=str(COOLDOWN_S), FD_PROMOTE_MIN_OUTCOMES=str(MIN_PAIRS),
               FD_PROMOTE_MAX_OUTCOMES=str(MAX_PAIRS), FD_PROMOTE_ALPHA=str(ALPHA))
    ensure_topics(s, [env["FD_MONITOR_TOPIC"]])
    st = SimpleNamespace(s=s, ms=load_settings(env), env=env, tmp=tmp, client=client, http=http,
                         original=str(original.version), proc=None, log=tmp / "monitor.log", replay_log=tmp / "replay.log",
                         challenger=None, run_id=None, t={})
    cluster, st.sess = cassandra.session(s, keyspace=s.cassandra_keyspace)
    try:
        yield st
    finally:
        _stop_monitor(st)
        _restore(st, dag_path, was_paused)
        cluster.shutdown()


def _get_or_none(http, path):
    try:
        return http("GET", path, None)
    except RuntimeError:   # 404 until the DAG processor has parsed the file
        return None


def _stop_monitor(st) -> None:
    if st.proc is not None and st.proc.poll() is None:
        os.killpg(st.proc.pid, signal.SIGTERM)
        st.proc.wait(30)
    delete_topics(st.s, [st.ms.monitor_topic])


def _restore(st, dag_path: str, was_paused: bool) -> None:
    s, client = st.s, st.client
    client.set_registered_model_alias(s.model_name, s.model_alias, st.original)
    for alias in (s.challenger_alias, s.previous_alias):
        registry.delete_alias(s, alias, client)
    if st.run_id:
        run_path = f"{rt.runs_path(s.retrain_dag_id)}/{urllib.parse.quote(st.run_id)}"
        if st.http("GET", run_path, None)["state"] in rt.ACTIVE_STATES:
            st.http("PATCH", run_path, {"state": "failed"})
        st.http("DELETE", run_path, None)
    if was_paused:
        st.http("PATCH", dag_path, {"is_paused": True})
    # The next tests meet the platform as it was: the original champion served, nothing in shadow.
    wait_for(lambda: _serving_alone(s, st.original), PICKUP_BOUND_S, f"the job serving v{st.original} alone again",
             interval=2)
    if st.challenger:
        client.delete_model_version(s.model_name, st.challenger)


def _serving_alone(s, version: str) -> bool:
    status = job_status.read(s)
    return status is not None and status.model.version == version and status.model.shadow_version is None


def alert_runs_since(st, since_iso: str) -> list[dict]:
    runs = st.http("GET", rt.runs_path(st.s.retrain_dag_id, order_by="-run_after", limit=50), None)["dag_runs"]
    return [r for r in runs if (r.get("run_after") or "") >= since_iso]


def start_monitor(st, from_ms: int) -> None:
    """The monitor, reading the response topic from ``from_ms`` (its group's offsets committed
    there first) and the shadow and scored topics from their ends."""
    commit_group_offsets_at(st.s, st.ms.monitor_group, st.s.response_topic, from_ms)
    with open(st.log, "ab") as out:
        st.proc = subprocess.Popen([sys.executable, "-m", "monitor"], env=st.env, cwd=REPO_ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)

    def reading():
        if st.proc.poll() is not None:
            raise RuntimeError(f"monitor exited with {st.proc.returncode}:\n{st.log.read_text()[-3000:]}")
        found = monitor_status.read(st.ms) or {}
        return monitor_status.problem(st.ms) is None and len((found.get("decider") or {}).get("assigned") or []) >= 2

    wait_for(reading, 90, f"the monitor reading (log {st.log})", interval=0.5)


def test_an_injected_shift_retrains_shadow_scores_and_decides_by_the_rule(loop, page):
    st, s = loop, loop.s
    t0 = time.time()
    since_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 - 1))
    first = replay(s, *PHASE_1, st.replay_log)
    st.t["replayed"] = time.time()
    assert first["scored"] > 2000 and first["settled"], first
    wait_for(lambda: archived_scored(s, days(*PHASE_1), int(t0 * 1000)) >= first["scored"], ARCHIVE_BOUND_S,
             f"the {first['scored']} scored predictions of {PHASE_1} in the HDFS archive", interval=5)
    st.t["archived"] = time.time()

    # The alert, and exactly one run for however many windows alert.
    start_monitor(st, int(t0 * 1000))
    wait_for(lambda: any(w.get("alert") for w in monitor_windows(s, st.ms.monitor_topic)), 180,
             f"an alerting window on {st.ms.monitor_topic} (log {st.log})", interval=3)
    runs = wait_for(lambda: alert_runs_since(st, since_iso) or None, 60, "the DAG run the alert started", interval=2)
    assert len(runs) == 1 and runs[0]["dag_run_id"].startswith(rt.RUN_ID_PREFIX), runs
    st.run_id = runs[0]["dag_run_id"]
    st.t["alert"] = time.time()
    conf = runs[0]["conf"]
    # The run's conf names the first window that alerted (the topic's two partitions come in any order).
    alerts = [w for w in monitor_windows(s, st.ms.monitor_topic) if w.get("alert")]
    alert = next((w for w in alerts if window_of(w) == conf["window"]), None)
    assert alert is not None, (conf, alerts)
    assert alert["window_end"] == min(w["window_end"] for w in alerts), (alert, alerts)
    assert alert["drift"] == "significant" and alert["model_version"] == st.original, alert
    assert conf["reason"] == reason_of(alert) and conf["observed"] == rt.OBSERVED_SOURCE, conf
    assert conf["scores"]["max_psi"] == alert["max_psi"] and conf["sample"] == RETRAIN_SAMPLE, conf

    run_path = f"{rt.runs_path(s.retrain_dag_id)}/{urllib.parse.quote(st.run_id)}"
    final = wait_for(lambda: (r := st.http("GET", run_path, None))["state"] in ("success", "failed") and r, DAG_RUN_BOUND_S,
                     f"DAG run {st.run_id}", interval=5)
    tasks = {t["task_id"]: t["state"] for t in st.http("GET", f"{run_path}/taskInstances", None)["task_instances"]}
    assert final["state"] == "success", tasks
    st.t["run_end"] = time.time()
    assert len(alert_runs_since(st, since_iso)) == 1, "a second alert started a second run"

    # The challenger: registered on observed flights, then in shadow in the running job.
    st.challenger = str(st.client.get_model_version_by_alias(s.model_name, s.challenger_alias).version)
    assert st.challenger != st.original
    run = st.client.get_run(st.client.get_model_version(s.model_name, st.challenger).run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["role"] == s.challenger_alias and tags["retrain_reason"] == conf["reason"], tags
    assert int(tags["observed_train_flights"]) > 0 and int(tags["observed_holdout_flights"]) > 0, tags
    assert tags["evaluated_against"] == st.original and "champion_holdout_accuracy" in metrics, (tags, metrics)
    wait_for(lambda: (j := job_status.read(s)) and j.model.shadow_version == st.challenger and j.model.version == st.original,
             PICKUP_BOUND_S, f"the job serving v{st.original} with v{st.challenger} in shadow", interval=2)
    st.t["shadow"] = time.time()

    # Live evidence, and the decision by the rule on the figures it recorded.
    second = replay(s, *PHASE_2, st.replay_log)
    assert second["versions"] == {st.original: second["answered"]}, "the challenger answered someone"
    event = wait_for(lambda: next((e for e in promotion_store.events(st.sess, s.model_name)
                                   if e["shadow_version"] == st.challenger and e["action"] in ("promote", "refuse")),
                                  None), DECISION_BOUND_S, f"the decider's verdict on v{st.challenger} (log {st.log})",
                     interval=3)
    st.t["decision"] = time.time()
    follows_the_rule(event, metrics, st.original)
    winner = st.challenger if event["action"] == "promote" else st.original
    wait_for(lambda: served_version(s) == winner, PICKUP_BOUND_S, f"predictions from the winner v{winner}", interval=2)
    st.t["served"] = time.time()
    status = monitor_status.read(st.ms)["retraining"]
    assert status["retrain_started"] == 1 and status["alerts"] >= 1, status
    assert status["alerts"] - 1 == status["retrain_refused"] + status["skipped_while_sending"] + status["airflow_failed"]

    print(f"\nloop: shift replayed {st.t['replayed'] - t0:.0f} s, archived +{st.t['archived'] - st.t['replayed']:.0f} s, "
          f"alert + DAG run started +{st.t['alert'] - st.t['archived']:.0f} s, "
          f"run ended +{st.t['run_end'] - st.t['alert']:.0f} s, "
          f"challenger v{st.challenger} in shadow +{st.t['shadow'] - st.t['run_end']:.0f} s, {event['action']} "
          f"+{st.t['decision'] - st.t['shadow']:.0f} s (n={event['figures']['n']}), v{winner} served "
          f"+{st.t['served'] - st.t['decision']:.0f} s; {status['alerts']} alerting windows, 1 run")
    page.goto(f"http://{s.host}:{s.webapp_port}/model")
    text = page.inner_text("main")
    assert f"v{st.challenger}" in text and event["action"] in text.lower(), text[:2000]
    shot(page, "loop-drift", "#drift")
    shot(page, "loop-decision", "#promotion")
    airflow_run_screenshot(s, page, st.run_id, "airflow-alert-run")


def follows_the_rule(event: dict, metrics: dict, champion: str) -> None:
    """The verdict follows from its recorded figures by the stated rule, recomputed here."""
    f = event["figures"]
    b, c = f["champion_only"], f["shadow_only"]
    assert f["n"] == f["both_right"] + b + c + f["both_wrong"] and MIN_PAIRS <= f["n"], f
    p_better = binomtest(c, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
    p_worse = binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
    assert f["p_shadow_better"] == pytest.approx(p_better) and f["p_champion_better"] == pytest.approx(p_worse), f
    assert f["shadow_holdout"] == pytest.approx(metrics["holdout_accuracy"]), f
    assert f["champion_holdout"] == pytest.approx(metrics["champion_holdout_accuracy"]), f
    holdout_ok = f["shadow_holdout"] >= f["champion_holdout"] and str(f["holdout_against"]) == champion
    if event["action"] == "promote":
        assert p_better < ALPHA and p_worse >= ALPHA and holdout_ok, f
    else:
        assert p_worse < ALPHA or (p_better < ALPHA and not holdout_ok) or f["n"] >= MAX_PAIRS, f
