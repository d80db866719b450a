"""The drift statistic on known distributions (flightdelay.drift): PSI and Jensen-Shannon by hand,
identical windows near 0, a shifted departure delay above the significant threshold, a tiny
window without a verdict, the accuracy judgement, and the Spark aggregation giving the same
reference as the rows."""
import math
import random

import pytest

from flightdelay import drift
from flightdelay.drift import Thresholds
from flightdelay.model_dir import ModelDir

ROUTES = [f"EWR-{d}" for d in ("IAH", "ORD", "LAX", "SFO", "ATL", "BOS", "MIA", "DEN")] + ["JFK-LAX", "LGA-ORD"]
CARRIERS = ["UA", "AA", "DL", "B6", "EV"]


def flights(n: int, seed: int = 1, delay_shift: float = 0.0) -> list[dict]:
    """Request-shaped records with a prediction, from fixed distributions (deterministic)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        origin, dest = rng.choice(ROUTES).split("-")
        delay = rng.gauss(5, 25) if rng.random() < 0.8 else rng.expovariate(1 / 60)
        out.append({"Carrier": rng.choices(CARRIERS, weights=(5, 4, 3, 2, 1))[0], "Origin": origin, "Dest": dest,
                    "Route": f"{origin}-{dest}", "CRSDepTime": rng.randrange(5, 23) * 100 + rng.choice((0, 30)),
                    "DepDelay": round(delay + delay_shift), "prediction": rng.choices(range(4), weights=(3, 3, 2, 1))[0]})
    return out


@pytest.fixture(scope="module")
def reference():
    return drift.build_reference(flights(20000), holdout_accuracy=0.53, top_routes=6)


def test_psi_and_jensen_shannon_by_hand():
    assert drift.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert drift.psi([0.3, 0.7], [0.3, 0.7]) == 0.0
    assert drift.jensen_shannon([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert drift.jensen_shannon([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # an empty bin costs a finite amount through epsilon, never ln(0)
    assert math.isfinite(drift.psi([0.0, 1.0], [0.5, 0.5], epsilon=1e-4))


def test_bins_are_fixed_and_open_at_both_ends():
    assert drift.dep_delay_bin(-40) == "<-15"
    assert drift.dep_delay_bin(-15) == "-15..-5"
    assert drift.dep_delay_bin(0) == "0..5"
    assert drift.dep_delay_bin(29.9) == "15..30"
    assert drift.dep_delay_bin(1300) == "240+"
    assert len(drift.dep_delay_bins()) == len(drift.DEP_DELAY_EDGES) + 1
    assert drift.hour_bin(529) == "5" and drift.hour_bin(2359) == "23"


def test_the_reference_keeps_the_top_routes_and_one_other_bin(reference):
    routes = reference.distributions["Route"]
    assert len(routes) == 7 and drift.OTHER in routes and routes[drift.OTHER] > 0
    assert sum(routes.values()) == reference.rows == 20000
    assert reference.bin("Route", "XXX-YYY") == drift.OTHER
    assert set(reference.distributions["prediction"]) == {"0", "1", "2", "3"}


def test_an_identical_window_scores_near_zero(reference):
    scores = drift.score_window(reference, flights(2000, seed=2))
    assert scores.verdict == drift.NONE
    assert scores.max_psi < 0.05, scores.psi
    assert max(scores.js.values()) < 0.01
    same = drift.score_window(reference, flights(20000))  # the training rows themselves
    assert max(same.psi.values()) == pytest.approx(0.0, abs=1e-9)


def test_a_shifted_departure_delay_is_significant(reference):
    scores = drift.score_window(reference, flights(2000, seed=3, delay_shift=60))
    assert scores.verdict == drift.SIGNIFICANT
    assert scores.worst_feature == "DepDelay"
    assert scores.psi["DepDelay"] > Thresholds().psi_significant
    assert scores.psi["Carrier"] < Thresholds().psi_moderate  # only what moved


def test_a_tiny_window_gets_scores_but_no_verdict(reference):
    t = Thresholds(min_window=300)
    scores = drift.score_window(reference, flights(20, seed=4, delay_shift=60), t)
    assert scores.verdict == drift.INSUFFICIENT and scores.predictions == 20
    assert all(math.isfinite(v) for v in scores.psi.values())
    empty = drift.score_window(reference, [], t)
    assert empty.verdict == drift.INSUFFICIENT and empty.max_psi == 0.0


def test_thresholds_come_from_settings():
    from flightdelay.config import load_settings

    s = load_settings(environ={"FD_MONITOR_PSI_SIGNIFICANT": "0.4", "FD_MONITOR_MIN_WINDOW": "50"})
    t = Thresholds.from_settings(s)
    assert (t.psi_moderate, t.psi_significant, t.min_window) == (0.1, 0.4, 50)


def test_unseen_values_and_missing_fields_are_binned_not_fatal(reference):
    odd = [{"Carrier": "ZZ", "Route": "AAA-BBB", "CRSDepTime": 300, "DepDelay": None, "prediction": 2}] * 400
    scores = drift.score_window(reference, odd)
    assert scores.verdict == drift.SIGNIFICANT and all(math.isfinite(v) for v in scores.psi.values())


def test_live_accuracy_is_judged_only_with_enough_outcomes():
    t = Thresholds(min_outcomes=200, accuracy_drop=0.05)
    assert drift.judge_accuracy(50, 10, 0.53, t).verdict == drift.INSUFFICIENT
    assert drift.judge_accuracy(0, 0, 0.53, t).live_accuracy is None
    assert drift.judge_accuracy(400, 200, 0.53, t).verdict == drift.ACCURACY_OK       # 0.50: 3 points down
    dropped = drift.judge_accuracy(400, 180, 0.53, t)                                 # 0.45: 8 points down
    assert dropped.verdict == drift.ACCURACY_DROPPED and dropped.drop == pytest.approx(0.08)
    assert drift.judge_accuracy(400, 180, None, t).verdict == drift.INSUFFICIENT


def test_the_reference_survives_its_file(tmp_path, reference):
    path = reference.save(ModelDir(tmp_path).monitor_reference)
    again = drift.load_monitor_reference(path)
    assert again == reference
    bad = reference.to_dict() | {"format_version": 99}
    with pytest.raises(ValueError):
        drift.MonitorReference.from_dict(bad)


def test_the_spark_aggregation_gives_the_reference_of_the_rows(spark):
    rows = flights(3000, seed=5)
    frame = spark.createDataFrame([(r["Carrier"], r["Route"], r["CRSDepTime"], float(r["DepDelay"]),
                                    float(r["prediction"])) for r in rows],
                                  "Carrier STRING, Route STRING, CRSDepTime INT, DepDelay DOUBLE, prediction DOUBLE")
    from_frame = drift.reference_from_frame(frame, holdout_accuracy=0.5, top_routes=6)
    assert from_frame == drift.build_reference(rows, holdout_accuracy=0.5, top_routes=6)
