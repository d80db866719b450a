"""Cassandra: the drift monitor's windows, table ``drift_windows`` of ``cassandra.cql``:
PRIMARY KEY ((model_name, day), window_start, model_version), newest first; one row per model
version and window (``flightdelay.drift.window_record``).

Written by the monitor (``python -m monitor``), read by the web app's model page and the tests.
"""
from __future__ import annotations

import datetime as dt
import time

from flightdelay.config import Settings
from flightdelay.stores import cassandra
from flightdelay.stores.outcomes import insert_cql, millis, timestamp

TABLE = "drift_windows"
COLUMNS = ("model_name", "day", "window_start", "model_version", "window_end", "predictions", "malformed", "drift",
           "worst_feature", "max_psi", "psi", "js", "matched", "live_accuracy", "holdout_accuracy", "accuracy_drop",
           "accuracy", "alert", "reference", "scored_at")
DAY_MS = 86_400_000


def utc_day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def row(w: dict, now: dt.datetime) -> tuple:
    return (w["model_name"], utc_day(w["window_start"]), timestamp(w["window_start"]), w["model_version"],
            timestamp(w["window_end"]), w["predictions"], w["malformed"], w["drift"], w["worst_feature"], w["max_psi"],
            w["psi"], w["js"], w["matched"], w["live_accuracy"], w["holdout_accuracy"], w["accuracy_drop"],
            w["accuracy"], w["alert"], w["reference"], now)


def record_of_row(r) -> dict:
    out = {c: getattr(r, c) for c in COLUMNS}
    for c in ("window_start", "window_end", "scored_at"):
        out[c] = millis(out[c])
    out["psi"], out["js"] = dict(out["psi"] or {}), dict(out["js"] or {})
    return out


class WindowWriter:
    """Upserts window rows (idempotent: a window rewritten is the same row)."""

    def __init__(self, s: Settings):
        self.s = s
        self._cluster = self._session = self._insert = None

    def session(self):
        """The connection, made on first use (reads of the live metrics share it)."""
        if self._session is None:
            self._cluster, self._session = cassandra.session(self.s, keyspace=self.s.cassandra_keyspace, metadata=False)
            self._insert = self._session.prepare(insert_cql(TABLE, COLUMNS))
        return self._session

    def write(self, windows: list[dict]) -> None:
        sess = self.session()
        now = dt.datetime.now(dt.timezone.utc)
        for w in windows:
            sess.execute(self._insert, row(w, now), execution_profile=cassandra.WRITE)

    def reset(self) -> None:
        """Forget the connection (after a failure: the next write connects again)."""
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = self._insert = None


def windows_since(sess, model_name: str, since_ms: int, now_ms: int) -> list[dict]:
    """The windows of ``model_name`` that started in [since_ms, now_ms], oldest first."""
    query = sess.prepare(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE model_name = ? AND day = ? "
                         "AND window_start >= ?")
    out = []
    day = since_ms - since_ms % DAY_MS
    while day <= now_ms:
        out += [record_of_row(r) for r in sess.execute(query, (model_name, utc_day(day), timestamp(since_ms)))]
        day += DAY_MS
    return sorted(out, key=lambda w: (w["window_start"], w["model_version"]))
