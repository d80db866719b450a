"""Alerts become retraining requests (monitor/alerts.py), without servers: a window that alerts
asks the trigger once, with its reason, window and scores; calm windows ask nothing; one request
at a time (a slow Airflow never holds windows back); an Airflow that does not answer is counted
and logged, never fatal. The trigger itself (cool-down, active runs) is tested in
test_trigger_decision.py and against the real Airflow in tests/integration/test_retrain_trigger.py."""
import random
import threading

import pytest

from flightdelay import drift
from flightdelay.config import load_settings
from flightdelay.retrain_trigger import Decision
from monitor.alerts import RetrainOnAlert, reason_of
from monitor.service import Monitor
from tests.unit.test_monitor_windows import Book, Msg, Writer, prediction


@pytest.fixture(scope="module")
def reference():
    rng = random.Random(1)
    return drift.build_reference([prediction(rng) for _ in range(5000)], holdout_accuracy=0.5)


def record(**changes):
    base = {"model_name": "flight_delay_rf", "model_version": "3", "window_start": 1_000, "window_end": 61_000,
            "predictions": 900, "drift": drift.SIGNIFICANT, "worst_feature": "DepDelay", "max_psi": 0.3123,
            "psi": {"DepDelay": 0.3123}, "js": {"DepDelay": 0.05}, "matched": 250, "live_accuracy": 0.41,
            "holdout_accuracy": 0.53, "accuracy_drop": 0.12, "accuracy": drift.ACCURACY_DROPPED, "alert": True}
    return {**base, **changes}


class Trigger:
    def __init__(self, answer=None, fail=None, hold: threading.Event | None = None):
        self.calls, self.answer, self.fail, self.hold = [], answer, fail, hold

    def __call__(self, s, reason, window, scores):
        if self.hold is not None:
            self.hold.wait(10)
        self.calls.append((reason, window, scores))
        if self.fail:
            raise self.fail
        return self.answer or Decision(True, "started", run_id="alert__1")


def monitor_with(reference, alerts):
    s = load_settings({}, monitor_window_n=400, monitor_window_s=60.0, monitor_min_window=100)
    return Monitor(s, references=Book(reference), writer=Writer(), alerts=alerts)


def test_the_reason_names_the_drift_and_the_accuracy_drop():
    assert reason_of(record()) == ("monitor alert for flight_delay_rf v3: drift: PSI 0.312 on DepDelay over 900 "
                                   "predictions; live accuracy 0.4100 vs holdout 0.5300 over 250 outcomes")
    assert reason_of(record(accuracy=drift.ACCURACY_OK)).endswith("PSI 0.312 on DepDelay over 900 predictions")


def test_an_alerting_window_asks_once_with_its_reason_window_and_scores(reference):
    trigger = Trigger()
    alerts = RetrainOnAlert(load_settings({}), trigger=trigger)
    m = monitor_with(reference, alerts)
    rng = random.Random(7)
    m.turn([Msg(prediction(rng, shift=90)) for _ in range(400)], now=5_000)
    alerts._sending.join(5)
    ((reason, window, scores),) = trigger.calls
    assert reason.startswith("monitor alert for flight_delay_rf vdefault: drift: PSI") and "DepDelay" in reason
    assert window["model_version"] == "default" and window["window_end"] == 5_000
    assert scores["psi"]["DepDelay"] > 0.25 and scores["max_psi"] == max(scores["psi"].values())
    assert alerts.counts["retrain_started"] == 1 and alerts.last["run_id"] == "alert__1"


def test_calm_windows_ask_nothing(reference):
    trigger = Trigger()
    m = monitor_with(reference, RetrainOnAlert(load_settings({}), trigger=trigger))
    rng = random.Random(8)
    m.turn([Msg(prediction(rng)) for _ in range(400)], now=5_000)
    assert m.counts["windows"] == 1 and trigger.calls == [] and m.alerts.counts["alerts"] == 0


def test_one_request_at_a_time_and_a_refusal_is_counted():
    hold = threading.Event()
    trigger = Trigger(answer=Decision(False, "run alert__0 of the DAG is queued", blocking_run="alert__0"), hold=hold)
    alerts = RetrainOnAlert(load_settings({}), trigger=trigger)
    first = alerts.offer(record())
    assert alerts.offer(record(window_start=61_000)) is None   # the first is still asking
    hold.set()
    first.join(5)
    assert len(trigger.calls) == 1 and alerts.counts == {"alerts": 2, "retrain_started": 0, "retrain_refused": 1,
                                                          "airflow_failed": 0, "skipped_while_sending": 1}
    alerts.offer(record(window_start=121_000)).join(5)
    assert len(trigger.calls) == 2


def test_an_airflow_that_does_not_answer_is_counted_and_logged(caplog):
    alerts = RetrainOnAlert(load_settings({}), trigger=Trigger(fail=ConnectionRefusedError("port 8180")))
    alerts.offer(record()).join(5)
    assert alerts.counts["airflow_failed"] == 1 and "Airflow did not answer" in alerts.last["reason"]
    assert any("retraining not requested" in r.getMessage() for r in caplog.records)
