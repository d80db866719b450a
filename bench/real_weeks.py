"""What the drift monitor makes of the real holdout weeks, no shift injected: would the loop
retrain on its own when nothing is injected?

Usage:
    python -m bench.real_weeks [--from 2013-11-01] [--days 61] [--window 1000]

The flights a replay would play (``replay.flights``: the real November and December 2013 flights,
in order of scheduled departure) are predicted by the shipped model (``flightdelay.serving``, the
compiled forest) and cut into windows of ``--window`` consecutive requests, the monitor's
FD_MONITOR_WINDOW_N. Each window is scored with the monitor's own code (``flightdelay.drift``:
PSI per feature against the shipped model's training reference, the thresholds of the settings)
and its live accuracy is judged on the same window's flights against the holdout accuracy (the
running monitor takes the live accuracy from the scored outcomes of the last hour instead; a
replay at speed max puts a window's outcomes in that hour). Printed per week: windows, alerts
and what raised them. No server is needed: Spark runs in this process.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from collections import Counter

from flightdelay import drift
from flightdelay.config import load_settings
from flightdelay.features import add_features
from flightdelay.model_dir import SHIPPED
from flightdelay.reference import load_reference
from flightdelay.schema import label_for_delay
from flightdelay.serving import load_served_model
from flightdelay.spark import get_spark
from harness import machine
from harness.progress import say
from harness.results import publish
from replay.flights import load


def predictions(spark, served, flights) -> list[dict]:
    """The monitor's view of each flight's response (its request fields and the predicted class),
    with the flight's real arrival delay beside it."""
    import pandas as pd

    rows = pd.DataFrame([{**f.request(), "i": i} for i, f in enumerate(flights)])
    frame = add_features(spark.createDataFrame(rows), served.reference)
    predicted = {r["i"]: int(r["prediction"]) for r in served.predict(frame).select("i", "prediction").collect()}
    return [{**f.request(), "prediction": predicted[i], "arr_delay": f.arr_delay} for i, f in enumerate(flights)]


def score(records: list[dict], reference: drift.MonitorReference, thresholds: drift.Thresholds) -> dict:
    scores = drift.score_window(reference, records, thresholds)
    outcomes = [r for r in records if r["arr_delay"] is not None]
    correct = sum(label_for_delay(r["arr_delay"]) == r["prediction"] for r in outcomes)
    accuracy = drift.judge_accuracy(len(outcomes), correct, reference.holdout_accuracy, thresholds)
    return {"first_date": records[0]["FlightDate"], "last_date": records[-1]["FlightDate"], "drift": scores.verdict,
            "max_psi": scores.max_psi, "worst_feature": scores.worst_feature, "accuracy": accuracy.verdict,
            "live_accuracy": accuracy.live_accuracy, "alert": scores.verdict == drift.SIGNIFICANT
            or accuracy.verdict == drift.ACCURACY_DROPPED}


def week_of(date: str) -> str:
    day = dt.date.fromisoformat(date)
    return str(day - dt.timedelta(days=day.weekday()))


def summarise(windows: list[dict]) -> dict:
    alerts = [w for w in windows if w["alert"]]
    return {"windows": len(windows), "alerts": len(alerts),
            "drift_alerts": sum(w["drift"] == drift.SIGNIFICANT for w in windows),
            "accuracy_alerts": sum(w["accuracy"] == drift.ACCURACY_DROPPED for w in windows),
            "alert_features": dict(Counter(w["worst_feature"] for w in alerts if w["drift"] == drift.SIGNIFICANT)),
            "max_psi": max((w["max_psi"] for w in windows), default=None),
            "min_live_accuracy": min((w["live_accuracy"] for w in windows if w["live_accuracy"] is not None),
                                     default=None)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="first_day", default="2013-11-01")
    p.add_argument("--days", type=int, default=61)
    p.add_argument("--window", type=int, default=1000)
    args = p.parse_args()
    machine.before_bench(say)
    s = dataclasses.replace(load_settings(), model_name="bench_real_weeks_no_such_model")  # the shipped model
    thresholds = drift.Thresholds.from_settings(s)
    reference = drift.load_monitor_reference(SHIPPED.monitor_reference)
    flights = load(load_reference(), args.first_day, args.days)
    say(f"{len(flights):,} flights from {args.first_day}, {args.days} days; predicting with the shipped model")
    spark = get_spark(s, "bench-real-weeks")
    records = predictions(spark, load_served_model(s), flights)
    spark.stop()
    windows = [score(records[i:i + args.window], reference, thresholds)
               for i in range(0, len(records) - args.window + 1, args.window)]
    weeks: dict[str, list[dict]] = {}
    for w in windows:
        weeks.setdefault(week_of(w["first_date"]), []).append(w)
    by_week = {week: summarise(ws) for week, ws in weeks.items()}
    say(f"windows of {args.window} requests; alert: PSI >= {thresholds.psi_significant} or live accuracy "
        f"{thresholds.accuracy_drop:.2f} below the holdout's {reference.holdout_accuracy:.4f}")
    for week, f in by_week.items():
        say(f"  week of {week}: {f['alerts']}/{f['windows']} windows alert (drift {f['drift_alerts']} "
            f"{f['alert_features']}, accuracy {f['accuracy_alerts']}); max PSI {f['max_psi']:.3f}, lowest live "
            f"accuracy {f['min_live_accuracy']}")
    total = summarise(windows)
    say(f"all: {total['alerts']} of {total['windows']} windows alert ({total['drift_alerts']} on drift "
        f"{total['alert_features']}, {total['accuracy_alerts']} on accuracy)")
    publish("real_weeks", {"flights": len(flights), "window": args.window, **total, "by_week": by_week,
                           "thresholds": dataclasses.asdict(thresholds)}, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
