"""Drift: the distributions a model's training left behind, and how far a live window is from them.

The reference ("as training left it", ``monitor_reference.json`` beside ``reference.json`` in a
model folder and the ``monitor/monitor_reference.json`` artifact of its MLflow run) holds, for
the TRAINING split, the counts of:

* ``DepDelay``: departure delay in the fixed bins of ``DEP_DELAY_EDGES`` (minutes);
* ``DepHour``: scheduled departure hour (``CRSDepTime // 100``, as ``features.add_features``);
* ``Carrier``: the carrier mix;
* ``Route``: the route mix, the ``top_routes`` most flown routes and one bin ``other``;
* ``prediction``: the model's own predicted class mix on its training split;

and the model's holdout accuracy. ``build_reference`` makes it from rows (dicts with the request's
fields and ``prediction``), ``reference_from_frame`` from a Spark frame (one aggregation, then the
same binning in Python: one definition of each bin).

``score_window`` compares a live window (response records: the request's fields and the
predicted class) with it: the Population Stability Index per feature, sum((a - e) * ln(a / e))
over the bins with empty shares raised to ``epsilon``, and the Jensen-Shannon divergence (base 2,
0..1) beside it; the window's verdict is its largest PSI against the thresholds (rule of thumb:
0.1 moderate, 0.25 significant). A window with fewer predictions than ``min_window`` gets no
verdict (PSI's bias alone is about (bins - 1) / n). Live accuracy against the holdout's is judged
by ``judge_accuracy`` once enough outcomes are matched.

Standard library only: the monitor, the web app and the tests use it without Spark.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from flightdelay.reference import save_text

FORMAT_VERSION = 1
ARTIFACT_PATH = "monitor/monitor_reference.json"   # in a model's MLflow run; ModelDir.monitor_reference locally

FEATURES = ("DepDelay", "DepHour", "Carrier", "Route", "prediction")
DEP_DELAY_EDGES = (-15, -5, 0, 5, 15, 30, 60, 120, 240)   # minutes; bins [a, b), open at both ends
OTHER = "other"
MISSING = "missing"

# Verdicts
NONE, MODERATE, SIGNIFICANT, INSUFFICIENT = "none", "moderate", "significant", "insufficient"
NO_REFERENCE = "no_reference"    # the version's reference could not be had: nothing to compare with
ACCURACY_OK, ACCURACY_DROPPED = "ok", "dropped"


@dataclass(frozen=True)
class Thresholds:
    """What the verdicts compare against (Settings' FD_MONITOR_* values)."""
    psi_moderate: float = 0.1
    psi_significant: float = 0.25
    epsilon: float = 1e-4
    min_window: int = 300
    min_outcomes: int = 200
    accuracy_drop: float = 0.05

    @classmethod
    def from_settings(cls, s) -> "Thresholds":
        return cls(psi_moderate=s.monitor_psi_moderate, psi_significant=s.monitor_psi_significant,
                   epsilon=s.monitor_psi_epsilon, min_window=s.monitor_min_window,
                   min_outcomes=s.monitor_min_outcomes, accuracy_drop=s.monitor_accuracy_drop)


# -- bins ----------------------------------------------------------------------------------------
def dep_delay_bin(minutes) -> str:
    """The bin of a departure delay: '<-15', '-15..-5', ..., '240+'."""
    if minutes is None:
        return MISSING
    value = float(minutes)
    if value < DEP_DELAY_EDGES[0]:
        return f"<{DEP_DELAY_EDGES[0]}"
    for lo, hi in zip(DEP_DELAY_EDGES, DEP_DELAY_EDGES[1:]):
        if lo <= value < hi:
            return f"{lo}..{hi}"
    return f"{DEP_DELAY_EDGES[-1]}+"


def dep_delay_bins() -> list[str]:
    edges = DEP_DELAY_EDGES
    return [f"<{edges[0]}", *(f"{lo}..{hi}" for lo, hi in zip(edges, edges[1:])), f"{edges[-1]}+"]


def hour_bin(crs_dep_time) -> str:
    return MISSING if crs_dep_time is None else str(int(crs_dep_time) // 100)


def route_of_record(record: Mapping[str, Any]) -> str | None:
    if record.get("Route"):
        return str(record["Route"])
    if record.get("Origin") and record.get("Dest"):
        return f"{record['Origin']}-{record['Dest']}"
    return None


def raw_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The raw value of each feature in a record (request fields + ``prediction``)."""
    prediction = record.get("prediction")
    return {"DepDelay": record.get("DepDelay"), "DepHour": record.get("CRSDepTime"),
            "Carrier": record.get("Carrier"), "Route": route_of_record(record),
            "prediction": None if prediction is None else int(prediction)}


def bin_of(feature: str, raw, routes: frozenset[str] | None = None) -> str:
    if feature == "DepDelay":
        return dep_delay_bin(raw)
    if feature == "DepHour":
        return hour_bin(raw)
    if raw is None:
        return MISSING
    if feature == "Route" and routes is not None and str(raw) not in routes:
        return OTHER
    return str(int(raw)) if feature == "prediction" else str(raw)


# -- the reference -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitorReference:
    distributions: Mapping[str, Mapping[str, int]]   # feature -> bin -> training rows
    holdout_accuracy: float | None = None
    rows: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def routes(self) -> frozenset[str]:
        return frozenset(b for b in self.distributions.get("Route", {}) if b != OTHER)

    def bin(self, feature: str, raw) -> str:
        return bin_of(feature, raw, self.routes)

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "meta": dict(self.meta), "rows": self.rows,
                "holdout_accuracy": self.holdout_accuracy, "dep_delay_edges": list(DEP_DELAY_EDGES),
                "distributions": {f: dict(sorted(self.distributions[f].items())) for f in FEATURES
                                  if f in self.distributions}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def save(self, path: str | Path) -> Path:
        return save_text(path, self.to_json())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MonitorReference":
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"monitor reference format_version {data.get('format_version')!r} is not {FORMAT_VERSION}")
        if list(data.get("dep_delay_edges", DEP_DELAY_EDGES)) != list(DEP_DELAY_EDGES):
            raise ValueError("monitor reference made with other departure delay bins")
        missing = [f for f in FEATURES if f not in data.get("distributions", {})]
        if missing:
            raise ValueError(f"monitor reference lacks {', '.join(missing)}")
        return cls(distributions={f: {str(k): int(v) for k, v in d.items()} for f, d in data["distributions"].items()},
                   holdout_accuracy=data.get("holdout_accuracy"), rows=int(data.get("rows", 0)),
                   meta=dict(data.get("meta", {})))


def load_monitor_reference(path: str | Path) -> MonitorReference:
    with open(path, encoding="utf-8") as fh:
        return MonitorReference.from_dict(json.load(fh))


def reference_from_counts(raw_counts: Mapping[str, Mapping[Any, int]], *, holdout_accuracy: float | None,
                          top_routes: int = 20, meta: Mapping[str, Any] | None = None) -> MonitorReference:
    """A reference from the counts of each feature's raw values (what an aggregation gives)."""
    route_counts = Counter({str(k): int(v) for k, v in raw_counts["Route"].items() if k is not None})
    kept = frozenset(r for r, _ in sorted(route_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_routes])
    distributions = {}
    for feature in FEATURES:
        binned: Counter = Counter()
        for raw, n in raw_counts[feature].items():
            binned[bin_of(feature, raw, kept)] += int(n)
        if feature == "Route":
            binned.setdefault(OTHER, 0)
        distributions[feature] = dict(binned)
    rows = sum(int(n) for n in raw_counts["prediction"].values())
    return MonitorReference(distributions=distributions, holdout_accuracy=holdout_accuracy, rows=rows,
                            meta=dict(meta or {}, top_routes=top_routes))


def build_reference(rows: Iterable[Mapping[str, Any]], *, holdout_accuracy: float | None, top_routes: int = 20,
                    meta: Mapping[str, Any] | None = None) -> MonitorReference:
    """A reference from rows of the training split (request fields + the model's ``prediction``)."""
    raw_counts: dict[str, Counter] = {f: Counter() for f in FEATURES}
    for row in rows:
        for feature, raw in raw_values(row).items():
            raw_counts[feature][raw] += 1
    return reference_from_counts(raw_counts, holdout_accuracy=holdout_accuracy, top_routes=top_routes, meta=meta)


def reference_from_frame(scored, *, holdout_accuracy: float | None, top_routes: int = 20,
                         meta: Mapping[str, Any] | None = None) -> MonitorReference:
    """A reference from a Spark frame of the training split scored by the model (its request
    columns, ``Route`` and ``prediction``): one pass counting each feature's raw values
    (GROUPING SETS), binned here by the same code as ``build_reference``."""
    from pyspark.sql import functions as F

    columns = {"DepDelay": F.col("DepDelay"), "DepHour": F.col("CRSDepTime"), "Carrier": F.col("Carrier"),
               "Route": F.col("Route"), "prediction": F.col("prediction").cast("int")}
    view = f"monitor_reference_{id(scored)}"
    scored.select(*(c.alias(f) for f, c in columns.items())).createOrReplaceTempView(view)
    sets = ", ".join(f"(`{f}`)" for f in FEATURES)
    found = scored.sparkSession.sql(
        f"SELECT {', '.join(f'`{f}`' for f in FEATURES)}, grouping_id() AS gid, count(*) AS n "
        f"FROM {view} GROUP BY GROUPING SETS ({sets})").collect()
    scored.sparkSession.catalog.dropTempView(view)
    raw_counts: dict[str, Counter] = {f: Counter() for f in FEATURES}
    last = len(FEATURES) - 1
    for row in found:
        # grouping_id: bit (last - i) is 0 for the column grouped on
        feature = next(f for i, f in enumerate(FEATURES) if not (row["gid"] >> (last - i)) & 1)
        raw_counts[feature][row[feature]] += row["n"]
    return reference_from_counts(raw_counts, holdout_accuracy=holdout_accuracy, top_routes=top_routes, meta=meta)


# -- the statistics ------------------------------------------------------------------------------
def shares(counts: Mapping[str, int], bins: Iterable[str]) -> list[float]:
    total = sum(counts.values())
    return [(counts.get(b, 0) / total) if total else 0.0 for b in bins]


def psi(expected: list[float], actual: list[float], epsilon: float = 1e-4) -> float:
    """Population Stability Index of ``actual`` against ``expected`` (shares over the same bins)."""
    out = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, epsilon), max(a, epsilon)
        out += (a - e) * math.log(a / e)
    return out


def jensen_shannon(p: list[float], q: list[float]) -> float:
    """Jensen-Shannon divergence, base 2 (0: the same, 1: disjoint)."""
    def kl(x, m):
        return sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m) if xi > 0)

    m = [(a + b) / 2 for a, b in zip(p, q)]
    return max(0.0, (kl(p, m) + kl(q, m)) / 2)


@dataclass(frozen=True)
class DriftScores:
    predictions: int
    psi: dict[str, float]
    js: dict[str, float]
    verdict: str                 # none, moderate, significant, or insufficient (too few predictions)
    worst_feature: str | None
    max_psi: float | None


def window_counts(reference: MonitorReference, records: Iterable[Mapping[str, Any]]) -> dict[str, Counter]:
    counts: dict[str, Counter] = {f: Counter() for f in FEATURES}
    for record in records:
        for feature, raw in raw_values(record).items():
            counts[feature][reference.bin(feature, raw)] += 1
    return counts


def score_window(reference: MonitorReference, records: list[Mapping[str, Any]],
                 thresholds: Thresholds = Thresholds()) -> DriftScores:
    """PSI and Jensen-Shannon per feature of ``records`` against ``reference``, and the verdict."""
    counts = window_counts(reference, records)
    psis, jss = {}, {}
    for feature in FEATURES:
        expected = reference.distributions[feature]
        bins = sorted(set(expected) | set(counts[feature]))
        e, a = shares(expected, bins), shares(counts[feature], bins)
        psis[feature] = round(psi(e, a, thresholds.epsilon), 6) if records else 0.0
        jss[feature] = round(jensen_shannon(e, a), 6) if records else 0.0
    worst = max(FEATURES, key=lambda f: psis[f])
    if len(records) < thresholds.min_window:
        verdict = INSUFFICIENT
    elif psis[worst] >= thresholds.psi_significant:
        verdict = SIGNIFICANT
    elif psis[worst] >= thresholds.psi_moderate:
        verdict = MODERATE
    else:
        verdict = NONE
    return DriftScores(predictions=len(records), psi=psis, js=jss, verdict=verdict, worst_feature=worst,
                       max_psi=psis[worst])


def unscored(predictions: int) -> DriftScores:
    """A window of a version without a reference: counted, not compared."""
    return DriftScores(predictions=predictions, psi={}, js={}, verdict=NO_REFERENCE, worst_feature=None, max_psi=None)


@dataclass(frozen=True)
class AccuracyScores:
    matched: int
    correct: int
    live_accuracy: float | None
    holdout_accuracy: float | None
    drop: float | None            # holdout - live (positive: worse live)
    verdict: str                  # ok, dropped, or insufficient (too few matched outcomes / no holdout figure)


def judge_accuracy(matched: int, correct: int, holdout_accuracy: float | None,
                   thresholds: Thresholds = Thresholds()) -> AccuracyScores:
    live = correct / matched if matched else None
    drop = None if live is None or holdout_accuracy is None else round(holdout_accuracy - live, 6)
    if drop is None or matched < thresholds.min_outcomes:
        verdict = INSUFFICIENT
    else:
        verdict = ACCURACY_DROPPED if drop >= thresholds.accuracy_drop else ACCURACY_OK
    return AccuracyScores(matched=matched, correct=correct, live_accuracy=None if live is None else round(live, 6),
                          holdout_accuracy=holdout_accuracy, drop=drop, verdict=verdict)


def window_record(*, model_name: str, model_version: str, window_start: int, window_end: int, drift: DriftScores,
                  accuracy: AccuracyScores, malformed: int = 0, reference: str = "") -> dict:
    """One window's scores of one model version, as published on the monitor topic and stored
    (``flightdelay.stores.monitor``); times in epoch ms. ``alert``: significant drift or a
    live accuracy drop."""
    return {"model_name": model_name, "model_version": str(model_version), "window_start": int(window_start),
            "window_end": int(window_end), "predictions": drift.predictions, "malformed": malformed,
            "drift": drift.verdict, "worst_feature": drift.worst_feature, "max_psi": drift.max_psi,
            "psi": dict(drift.psi), "js": dict(drift.js), "matched": accuracy.matched,
            "live_accuracy": accuracy.live_accuracy, "holdout_accuracy": accuracy.holdout_accuracy,
            "accuracy_drop": accuracy.drop, "accuracy": accuracy.verdict,
            "alert": drift.verdict == SIGNIFICANT or accuracy.verdict == ACCURACY_DROPPED, "reference": reference}
