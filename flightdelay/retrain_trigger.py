"""Start the retraining DAG once for an alert, through Airflow 3's REST API.

Usage:
    python -m flightdelay.retrain_trigger --reason TEXT [--window WINDOW] [--scores JSON]

The drift monitor calls ``trigger(settings, reason, window, scores)`` when a window crosses a
threshold; an operator can run the command above. Airflow itself is asked, each time, whether a
run may start, so the rule holds across processes and restarts (no state of our own):

* a run of the DAG that is queued or running: nothing new starts (the alert is about the data
  that run is already retraining on);
* the last run this trigger started ended (or was started, if it has no end) less than
  FD_RETRAIN_COOLDOWN_S ago: nothing new starts (its challenger needs time to gather evidence);
* otherwise a run starts with conf ``{reason, window, scores, observed}`` (and ``sample`` when
  FD_RETRAIN_SAMPLE is set, a quicker retrain on part of the base flights): the DAG logs that
  conf in its first task and, with ``observed``, trains on the outcomes the platform collected
  and registers a ``challenger`` (docs/retraining.md).

Runs started here are named ``alert__<UTC time>`` (``RUN_ID_PREFIX``), which is how the
cool-down finds them among the weekly and manual runs. The answer (``Decision``) says whether a
run started and why not when it did not. Standard library only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from flightdelay.config import Settings, load_settings

log = logging.getLogger(__name__)

RUN_ID_PREFIX = "alert__"
ACTIVE_STATES = ("queued", "running")
OBSERVED_SOURCE = "hdfs"   # the DAG's `observed` param: the platform's archives on HDFS

# (method, path under the Airflow URL, JSON body or None) -> decoded JSON answer
Http = Callable[[str, str, Any], Any]


@dataclass(frozen=True)
class Decision:
    started: bool
    reason: str            # why it started, or why nothing was started
    run_id: str | None = None
    blocking_run: str | None = None   # the run that kept a new one from starting

    def as_dict(self) -> dict:
        return {"started": self.started, "reason": self.reason, "run_id": self.run_id,
                "blocking_run": self.blocking_run}


def parse_time(value: str | None) -> dt.datetime | None:
    return None if not value else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def decide(active_runs: list[dict], last_alert_run: dict | None, now: dt.datetime, cooldown_s: float) -> Decision:
    """May a new run start? ``active_runs``: the DAG's queued or running runs (Airflow's run
    objects); ``last_alert_run``: the newest run this trigger started, if any."""
    if active_runs:
        run = active_runs[0]
        return Decision(False, f"run {run['dag_run_id']} of the DAG is {run['state']}; an alert during a retrain "
                               f"starts nothing new", blocking_run=run["dag_run_id"])
    if last_alert_run is not None:
        since = parse_time(last_alert_run.get("end_date")) or parse_time(last_alert_run.get("run_after"))
        if since is not None:
            waited = (now - since).total_seconds()
            if waited < cooldown_s:
                return Decision(False, f"cool-down: the last alert run {last_alert_run['dag_run_id']} ended "
                                       f"{waited:.0f} s ago, less than FD_RETRAIN_COOLDOWN_S={cooldown_s:.0f} s",
                                blocking_run=last_alert_run["dag_run_id"])
    return Decision(True, "no run queued or running, cool-down over")


def run_conf(reason: str, window: Any = None, scores: dict | None = None, observed: str | None = OBSERVED_SOURCE,
             sample: float = 0.0) -> dict:
    """The DAG run's conf; ``sample`` (FD_RETRAIN_SAMPLE) > 0 trains on that fraction of the base flights."""
    conf = {"reason": reason, "window": window, "scores": scores or {}, "observed": observed}
    return {**conf, "sample": sample} if sample else conf


def runs_path(dag_id: str, **query) -> str:
    return f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns" + (
        "?" + urllib.parse.urlencode(query, doseq=True) if query else "")


def trigger(s: Settings, reason: str, window: Any = None, scores: dict | None = None, *,
            http: Http | None = None, now: dt.datetime | None = None) -> Decision:
    """Start the retraining DAG for an alert unless a run is active or the cool-down holds."""
    http = http or airflow_http(s)
    dag_id = s.retrain_dag_id
    active = http("GET", runs_path(dag_id, state=list(ACTIVE_STATES), order_by="-run_after", limit=1), None)
    last = http("GET", runs_path(dag_id, run_id_prefix_pattern=RUN_ID_PREFIX, order_by="-run_after", limit=1), None)
    now = now or dt.datetime.now(dt.timezone.utc)
    decision = decide(active["dag_runs"], (last["dag_runs"] or [None])[0], now, s.retrain_cooldown_s)
    if not decision.started:
        log.info("retraining not started (%s): %s", reason, decision.reason)
        return decision
    run_id = f"{RUN_ID_PREFIX}{now.isoformat(timespec='microseconds')}"
    run = http("POST", runs_path(dag_id), {"dag_run_id": run_id, "logical_date": None,
                                           "conf": run_conf(reason, window, scores, sample=s.retrain_sample),
                                           "note": f"started by an alert: {reason}"[:1000]})
    log.info("retraining started: DAG %s run %s, because %s", dag_id, run["dag_run_id"], reason)
    return Decision(True, f"started because {reason}", run_id=run["dag_run_id"])


# -- HTTP to Airflow -------------------------------------------------------------------------------
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def airflow_password(s: Settings) -> str:
    """The API user's password, from the file the launcher generated (never printed)."""
    return json.loads(s.airflow_passwords_file.read_text())[s.airflow_user]


def _call(url: str, method: str, body: Any, token: str | None, timeout: float) -> Any:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _opener.open(request, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"Airflow {method} {url}: HTTP {exc.code} {exc.read()[:500]!r}") from None


def airflow_http(s: Settings, timeout: float = 30.0) -> Http:
    """An ``Http`` for Airflow's REST API, with a token from ``POST /auth/token``."""
    token = _call(f"{s.airflow_url}/auth/token", "POST",
                  {"username": s.airflow_user, "password": airflow_password(s)}, None, timeout)["access_token"]
    return lambda method, path, body: _call(f"{s.airflow_url}{path}", method, body, token, timeout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flightdelay.retrain_trigger", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--reason", required=True, help="why retrain, e.g. 'PSI DepDelay 0.31 > 0.25'")
    p.add_argument("--window", default=None, help="the window that raised the alert (as the monitor names it)")
    p.add_argument("--scores", type=json.loads, default=None, help="the window's scores, a JSON object")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        decision = trigger(load_settings(), args.reason, args.window, args.scores)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        log.error("could not ask Airflow: %s", exc)
        return 1
    print(json.dumps(decision.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
