"""Cassandra: promotion and rollback on live evidence (tables of ``cassandra.cql``):

* ``shadow_by_uuid``: PRIMARY KEY (uuid, shadow_version); every shadow prediction, until its
  outcome can no longer come (TTL: FD_OUTCOME_HORIZON_S plus a day);
* ``shadow_pairs``: PRIMARY KEY ((model_name, champion_version, shadow_version), uuid); one row
  per request scored by both, the contest's counts are read back from it;
* ``model_contests``: PRIMARY KEY ((model_name), champion_version, shadow_version); where each
  contest stands (counts, accuracies, p-values, state);
* ``model_events``: PRIMARY KEY ((model_name), decided_at, action, subject_version), newest
  first; every promotion, refusal, rollback and probation pass.

Written by the monitor's decider (monitor/decider.py), read by the web app's model page and the
tests. Every write is an upsert keyed by what it records: written twice, it is the same row.
"""
from __future__ import annotations

import datetime as dt
import json

from flightdelay.config import Settings
from flightdelay.promotion import Decision, Pair
from flightdelay.stores import cassandra
from flightdelay.stores.outcomes import chunks, insert_cql, millis, timestamp

SHADOW_COLUMNS = ("uuid", "shadow_version", "model_name", "role", "champion_version", "prediction", "unscorable",
                  "requested_at", "predicted_at", "stored_at")
PAIR_COLUMNS = ("model_name", "champion_version", "shadow_version", "uuid", "role", "actual", "champion_prediction",
                "shadow_prediction", "champion_correct", "shadow_correct", "paired_at")
CONTEST_COLUMNS = ("model_name", "champion_version", "shadow_version", "role", "state", "n", "both_right",
                   "champion_only", "shadow_only", "both_wrong", "champion_accuracy", "shadow_accuracy",
                   "p_shadow_better", "p_champion_better", "champion_holdout", "shadow_holdout", "why", "updated_at")
EVENT_COLUMNS = ("model_name", "decided_at", "action", "subject_version", "role", "champion_version", "shadow_version",
                 "served_version", "figures", "why")
CONCURRENCY = 32
DAY_S = 86_400


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def shadow_row(p: dict, stored_at: dt.datetime) -> tuple:
    """A shadow prediction as monitor.decider.parse_shadow leaves it."""
    return (p["uuid"], p["shadow_version"], p["model_name"], p["role"], p["champion_version"], p["prediction"],
            p["unscorable"], timestamp(p["requested_at"]), timestamp(p["predicted_at"]), stored_at)


def shadow_of_row(r) -> dict:
    return {"uuid": r.uuid, "shadow_version": r.shadow_version, "model_name": r.model_name, "role": r.role,
            "champion_version": r.champion_version, "prediction": r.prediction, "unscorable": r.unscorable,
            "requested_at": millis(r.requested_at), "predicted_at": millis(r.predicted_at)}


def pair_row(p: Pair, paired_at: dt.datetime) -> tuple:
    return (p.model_name, p.champion_version, p.shadow_version, p.uuid, p.role, p.actual, p.champion_prediction,
            p.shadow_prediction, p.champion_correct, p.shadow_correct, paired_at)


def contest_row(model_name: str, d: Decision, updated_at: dt.datetime) -> tuple:
    f = d.figures
    return (model_name, d.champion_version, d.shadow_version, d.role, d.action, f["n"], f["both_right"],
            f["champion_only"], f["shadow_only"], f["both_wrong"], f["champion_accuracy"], f["shadow_accuracy"],
            f["p_shadow_better"], f["p_champion_better"], f["champion_holdout"], f["shadow_holdout"], d.why, updated_at)


def event_row(model_name: str, d: Decision, served_version: str, decided_at: dt.datetime) -> tuple:
    return (model_name, decided_at, d.action, d.subject_version, d.role, d.champion_version, d.shadow_version,
            served_version, json.dumps(d.figures, sort_keys=True), d.why)


def record_of(r, columns: tuple[str, ...]) -> dict:
    out = {c: getattr(r, c) for c in columns}
    for c in ("decided_at", "updated_at", "paired_at"):
        if c in out:
            out[c] = millis(out[c])
    if "figures" in out:
        out["figures"] = json.loads(out["figures"] or "{}")
    return out


class PromotionStore:
    """The decider's connection and statements, made on first use; ``reset`` after a failure."""

    def __init__(self, s: Settings):
        self.s = s
        self._cluster = self._session = None
        self._statements: dict = {}

    def session(self):
        if self._session is None:
            self._cluster, self._session = cassandra.session(self.s, keyspace=self.s.cassandra_keyspace, metadata=False)
            prepare = self._session.prepare
            self._statements = {
                "shadow": prepare(insert_cql("shadow_by_uuid", SHADOW_COLUMNS) + " USING TTL ?"),
                "shadows": prepare(f"SELECT {', '.join(SHADOW_COLUMNS)} FROM shadow_by_uuid WHERE uuid IN ?"),
                "pair": prepare(insert_cql("shadow_pairs", PAIR_COLUMNS)),
                "pairs": prepare("SELECT uuid, champion_correct, shadow_correct FROM shadow_pairs "
                                 "WHERE model_name = ? AND champion_version = ? AND shadow_version = ?"),
                "contest": prepare(insert_cql("model_contests", CONTEST_COLUMNS)),
                "event": prepare(insert_cql("model_events", EVENT_COLUMNS)),
            }
        return self._session

    def reset(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None

    def _run(self, name: str, parameters: list[tuple]) -> list:
        from cassandra.concurrent import execute_concurrent_with_args

        if not parameters:
            return []
        sess = self.session()
        results = execute_concurrent_with_args(sess, self._statements[name], parameters, concurrency=CONCURRENCY,
                                               raise_on_first_error=True, execution_profile=cassandra.WRITE)
        return [list(rows) for _, rows in results]

    def write_shadows(self, shadows: list[dict]) -> None:
        ttl = int(self.s.outcome_horizon_s) + DAY_S
        now = now_utc()
        self._run("shadow", [(*shadow_row(p, now), ttl) for p in shadows])

    def shadows_of(self, uuids: list[str]) -> dict[str, list[dict]]:
        """The stored shadow predictions of ``uuids`` (a request may have had more than one)."""
        self.session()
        found: dict[str, list[dict]] = {}
        for chunk in chunks(list(dict.fromkeys(uuids))):
            for r in self.session().execute(self._statements["shadows"], (chunk,)):
                found.setdefault(r.uuid, []).append(shadow_of_row(r))
        return found

    def write_pairs(self, pairs: list[Pair]) -> None:
        now = now_utc()
        self._run("pair", [pair_row(p, now) for p in pairs])

    def pairs_of(self, contest: tuple[str, str, str]) -> list[tuple[str, bool, bool]]:
        """(uuid, champion_correct, shadow_correct) of every pair of the contest."""
        rows = self.session().execute(self._statements["pairs"], contest)
        return [(r.uuid, bool(r.champion_correct), bool(r.shadow_correct)) for r in rows]

    def write_contest(self, model_name: str, d: Decision) -> None:
        self.session().execute(self._statements["contest"], contest_row(model_name, d, now_utc()),
                               execution_profile=cassandra.WRITE)

    def write_event(self, model_name: str, d: Decision, served_version: str, decided_at: dt.datetime) -> None:
        self.session().execute(self._statements["event"], event_row(model_name, d, served_version, decided_at),
                               execution_profile=cassandra.WRITE)


# -- reads of the model page and the tests -----------------------------------------------------
def events(sess, model_name: str, limit: int = 50) -> list[dict]:
    """The model's events, newest first."""
    query = sess.prepare(f"SELECT {', '.join(EVENT_COLUMNS)} FROM model_events WHERE model_name = ? LIMIT ?")
    return [record_of(r, EVENT_COLUMNS) for r in sess.execute(query, (model_name, limit))]


def contests(sess, model_name: str) -> list[dict]:
    """Every contest of the model, most recently updated first."""
    query = sess.prepare(f"SELECT {', '.join(CONTEST_COLUMNS)} FROM model_contests WHERE model_name = ?")
    found = [record_of(r, CONTEST_COLUMNS) for r in sess.execute(query, (model_name,))]
    return sorted(found, key=lambda c: c["updated_at"] or 0, reverse=True)
