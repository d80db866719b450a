"""The alert trigger's decision (flightdelay.retrain_trigger): one run per alert, none while a run
of the DAG is queued or running, none within the cool-down of the last alert run; the HTTP layer
is a small function handed in, playing Airflow's answers."""
import dataclasses
import datetime as dt
import json

import pytest

from flightdelay import retrain_trigger as rt
from flightdelay.config import load_settings

NOW = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.timezone.utc)
S = load_settings({}, retrain_cooldown_s=600.0)


def run(run_id, state, run_after=None, end_date=None):
    return {"dag_run_id": run_id, "state": state, "run_after": run_after, "end_date": end_date}


def ago(seconds):
    return (NOW - dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class FakeAirflow:
    """Airflow's dagRuns collection as the REST API answers it; records what was asked."""

    def __init__(self, runs=()):
        self.runs = list(runs)
        self.calls = []

    def __call__(self, method, path, body):
        self.calls.append((method, path, body))
        if method == "POST":
            created = run(body["dag_run_id"], "queued", run_after=NOW.isoformat())
            created["conf"] = body["conf"]
            self.runs.append(created)
            return created
        query = rt.urllib.parse.parse_qs(rt.urllib.parse.urlsplit(path).query)
        found = self.runs
        if "state" in query:
            found = [r for r in found if r["state"] in query["state"]]
        if "run_id_prefix_pattern" in query:
            found = [r for r in found if r["dag_run_id"].startswith(query["run_id_prefix_pattern"][0])]
        found = sorted(found, key=lambda r: r["run_after"] or "", reverse=True)
        return {"dag_runs": found[: int(query["limit"][0])], "total_entries": len(found)}


def test_a_first_alert_starts_one_run_with_the_reason_in_its_conf():
    airflow = FakeAirflow()
    decision = rt.trigger(S, "PSI DepDelay 0.31 > 0.25", window="2026-12-07T00:55", scores={"psi_DepDelay": 0.31},
                          http=airflow, now=NOW)
    assert decision.started and decision.run_id.startswith(rt.RUN_ID_PREFIX)
    posts = [c for c in airflow.calls if c[0] == "POST"]
    assert len(posts) == 1
    method, path, body = posts[0]
    assert path == "/api/v2/dags/retrain_flight_delay/dagRuns"
    assert body["logical_date"] is None
    assert body["conf"] == {"reason": "PSI DepDelay 0.31 > 0.25", "window": "2026-12-07T00:55",
                            "scores": {"psi_DepDelay": 0.31}, "observed": "hdfs"}


def test_a_retrain_sample_setting_puts_the_fraction_of_base_flights_in_the_conf():
    airflow = FakeAirflow()
    rt.trigger(dataclasses.replace(S, retrain_sample=0.03), "drift", http=airflow, now=NOW)
    [(_, _, body)] = [c for c in airflow.calls if c[0] == "POST"]
    assert body["conf"]["sample"] == 0.03 and body["conf"]["observed"] == "hdfs"


def test_a_second_alert_while_the_first_run_is_queued_starts_nothing():
    airflow = FakeAirflow()
    first = rt.trigger(S, "drift", http=airflow, now=NOW)
    second = rt.trigger(S, "drift again", http=airflow, now=NOW + dt.timedelta(seconds=1))
    assert first.started and not second.started
    assert second.blocking_run == first.run_id and "queued" in second.reason
    assert [c[0] for c in airflow.calls].count("POST") == 1


@pytest.mark.parametrize("state", ["queued", "running"])
def test_any_active_run_blocks_even_a_weekly_or_manual_one(state):
    airflow = FakeAirflow([run("scheduled__2026-12-06T03:00:00+00:00", state, run_after=ago(3000))])
    decision = rt.trigger(S, "accuracy drop", http=airflow, now=NOW)
    assert not decision.started and decision.blocking_run.startswith("scheduled__") and state in decision.reason
    assert all(c[0] == "GET" for c in airflow.calls)


def test_the_cool_down_counts_from_the_end_of_the_last_alert_run():
    recent = run(f"{rt.RUN_ID_PREFIX}x", "success", run_after=ago(5000), end_date=ago(599))
    decision = rt.decide([], recent, NOW, 600.0)
    assert not decision.started and "cool-down" in decision.reason and decision.blocking_run == recent["dag_run_id"]
    assert rt.decide([], dict(recent, end_date=ago(601)), NOW, 600.0).started
    # Weekly and manual runs are not alerts: they do not hold the cool-down (only active ones block).
    airflow = FakeAirflow([run("manual__1", "success", run_after=ago(10), end_date=ago(5)), recent])
    assert not rt.trigger(S, "drift", http=airflow, now=NOW).started
    airflow = FakeAirflow([run("manual__1", "success", run_after=ago(10), end_date=ago(5))])
    assert rt.trigger(S, "drift", http=airflow, now=NOW).started


def test_a_failed_alert_run_holds_the_cool_down_too():
    failed = run(f"{rt.RUN_ID_PREFIX}y", "failed", run_after=ago(100), end_date=ago(50))
    assert not rt.decide([], failed, NOW, 600.0).started
    assert rt.decide([], failed, NOW, 0.0).started


def test_the_command_prints_the_decision(monkeypatch, capsys):
    monkeypatch.setattr(rt, "airflow_http", lambda s: FakeAirflow([run("manual__2", "running", run_after=ago(1))]))
    assert rt.main(["--reason", "by hand", "--scores", '{"psi": 0.4}']) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {"started": False, "reason": "run manual__2 of the DAG is running; an alert during a retrain "
                                               "starts nothing new", "run_id": None, "blocking_run": "manual__2"}
