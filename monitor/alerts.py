"""Alerts become retraining: a window whose drift is significant or whose live accuracy fell
starts the retraining DAG (flightdelay.retrain_trigger, Airflow's REST API), which itself starts
nothing while a run is queued or running or within its cool-down.

Airflow is asked in a thread of its own, one alert at a time: a slow or absent Airflow never
holds the monitor's windows back. Alerts arriving while one is being sent are counted, not
queued (the next window that still alerts asks again).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flightdelay import drift, retrain_trigger
from flightdelay.config import Settings

log = logging.getLogger(__name__)

# (settings, reason, window, scores) -> retrain_trigger.Decision
Trigger = Callable[..., retrain_trigger.Decision]


def reason_of(record: dict) -> str:
    """One line saying why a window alerted, for the DAG run's conf, its note and its first log line."""
    parts = []
    if record["drift"] == drift.SIGNIFICANT:
        parts.append(f"drift: PSI {record['max_psi']:.3f} on {record['worst_feature']} over "
                     f"{record['predictions']} predictions")
    if record["accuracy"] == drift.ACCURACY_DROPPED:
        parts.append(f"live accuracy {record['live_accuracy']:.4f} vs holdout {record['holdout_accuracy']:.4f} "
                     f"over {record['matched']} outcomes")
    return f"monitor alert for {record['model_name']} v{record['model_version']}: " + "; ".join(parts)


def window_of(record: dict) -> dict:
    return {k: record[k] for k in ("model_name", "model_version", "window_start", "window_end")}


def scores_of(record: dict) -> dict:
    return {"max_psi": record["max_psi"], "psi": record["psi"], "js": record["js"],
            "live_accuracy": record["live_accuracy"], "holdout_accuracy": record["holdout_accuracy"],
            "accuracy_drop": record["accuracy_drop"], "matched": record["matched"]}


class RetrainOnAlert:
    def __init__(self, s: Settings, trigger: Trigger = retrain_trigger.trigger):
        self.s = s
        self.trigger = trigger
        self.counts = {"alerts": 0, "retrain_started": 0, "retrain_refused": 0, "airflow_failed": 0,
                       "skipped_while_sending": 0}
        self.last: dict | None = None   # the last decision, for the status file
        self._sending: threading.Thread | None = None

    def offer(self, record: dict) -> threading.Thread | None:
        """Ask Airflow to retrain for an alerting window; the thread doing it, or None if one is
        already asking."""
        self.counts["alerts"] += 1
        if self._sending is not None and self._sending.is_alive():
            self.counts["skipped_while_sending"] += 1
            return None
        self._sending = threading.Thread(target=self._send, args=(record,), name="retrain-trigger", daemon=True)
        self._sending.start()
        return self._sending

    def _send(self, record: dict) -> None:
        reason = reason_of(record)
        try:
            decision = self.trigger(self.s, reason, window_of(record), scores_of(record))
        except Exception as exc:  # Airflow away or refusing: the next alerting window asks again
            self.counts["airflow_failed"] += 1
            self.last = {"started": False, "reason": f"Airflow did not answer: {type(exc).__name__}: {exc}"[:300]}
            log.warning("retraining not requested (%s): Airflow did not answer: %s: %s", reason, type(exc).__name__,
                        str(exc)[:200])
            return
        self.counts["retrain_started" if decision.started else "retrain_refused"] += 1
        self.last = decision.as_dict()
