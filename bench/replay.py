"""The replay at full speed: real flights predicted and scored against their outcomes, the lag of
the join, the predict path's latency during it and the join's memory.

Usage:
    python -m bench.replay [--from 2013-11-01] [--days 7] [--warmup-flights 500]

Runs its own streaming job (harness.job.JobProcess: bench-only topics, outcome stream and model
name, so the platform's data stays clean) after starting the servers it needs (like `make up`),
warms it up with --warmup-flights flights of the day before --from (not counted), then plays
--days days of flights from --from as fast as the platform takes them (replay.Replay through
Kafka: each request, then its outcome, in the order of the flights' real times) and reports:

* flights per second predicted (answers on the response topic) and scored (joined with their
  outcome, on the scored topic), from the first request sent;
* the scoring lag: from the arrival on Kafka of the later of a prediction's two halves (its
  response, its outcome) to the live metrics that count it, p50 / p99;
* the predict path's latency: request produced -> response on Kafka, p50 / p99, of the replay's
  own requests (a burst: the week's requests are sent within a second) and of --probe-rate probe
  requests a second sent steadily: for --probe-before seconds alone before the replay, during the
  burst (until every request of the replay is answered), and while the join scores (from then to
  the last score: the join runs in another query and must not slow them);
* the join's memory: resident memory (RSS) of the job's Python driver, where the join runs, and
  of its Spark JVM, before the replay and at its peak (sampled every second);
* the live accuracy, macro F1 and expected accuracy of the shipped model on those flights,
  beside its holdout accuracy (models/metrics.json).

Prints progress lines and, as its last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

from flightdelay import kafka
from flightdelay.config import load_settings
from flightdelay.model_dir import SHIPPED
from flightdelay.reference import load_reference
from harness import machine
from harness.job import JobProcess
from harness.machine import jvm_child, process_tree, rss_mb
from harness.progress import printer
from harness.results import publish
from harness.traffic import sample_requests
from infra import launcher
from infra.services import by_name, with_needs
from replay.flights import events, load
from replay.player import Replay, quantiles

say = printer("bench.replay")


class Probe(threading.Thread):
    """Valid requests at a steady rate to the job's request topic, timed on the response topic by
    the replay's follower (request produced -> response on Kafka), tagged with the phase they were
    sent in."""

    def __init__(self, s, follower, rate: float):
        super().__init__(daemon=True, name="probe")
        self.s = s
        self.follower = follower
        self.rate = rate
        self.phase = "before"
        self.sent: dict[str, str] = {}  # uuid -> phase
        self._halt = threading.Event()

    def run(self) -> None:
        producer = kafka.producer(self.s, {"linger.ms": 0})
        reference = load_reference()
        began, i = time.monotonic(), 0
        while not self._halt.wait(max(0.0, began + i / self.rate - time.monotonic())):
            request = sample_requests(reference, 1, seed=1_000_000 + i)[0]
            request["requested_at"] = int(time.time() * 1000)
            self.follower.want(request["UUID"])
            self.sent[request["UUID"]] = self.phase
            producer.produce(self.s.request_topic, key=request["UUID"].encode(), value=json.dumps(request).encode())
            producer.poll(0)
            i += 1
        producer.flush(30)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def latencies(self, phase: str) -> dict:
        answers = self.follower.snapshot()[0]
        values = [answers[u]["latency_ms"] for u, p in self.sent.items() if p == phase and u in answers]
        return {"sent": sum(p == phase for p in self.sent.values()), "answered": len(values), **quantiles(values)}


class Memory(threading.Thread):
    """The peak RSS of the job's Python driver and of its JVM, sampled every second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True, name="rss")
        self.pid = pid
        self.peak = {"driver": 0.0, "jvm": 0.0}
        self._halt = threading.Event()

    def sample(self) -> dict:
        jvm = jvm_child(self.pid)
        return {"driver": round(rss_mb(process_tree(self.pid)[:1]), 1),
                "jvm": round(rss_mb(process_tree(jvm)[:1]), 1) if jvm else 0.0}

    def run(self) -> None:
        while not self._halt.wait(1.0):
            for name, mb in self.sample().items():
                self.peak[name] = max(self.peak[name], mb)

    def stop(self) -> dict:
        self._halt.set()
        self.join(10)
        return self.peak


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="first_day", default="2013-11-01", help="first flight date")
    parser.add_argument("--days", type=int, default=7, help="days of flights replayed")
    parser.add_argument("--warmup-flights", type=int, default=500, help="flights of the day before, not counted")
    parser.add_argument("--settle", type=float, default=900.0, help="longest wait for the last scores (s)")
    parser.add_argument("--probe-rate", type=float, default=20.0, help="probe requests per second")
    parser.add_argument("--probe-before", type=float, default=20.0, help="seconds of probes alone before the replay")
    return parser.parse_args()


def run(tmp: Path, args) -> dict:
    reference = load_reference()
    job = JobProcess(tmp)
    try:
        say("starting the bench's streaming job")
        job.start()
        s = job.settings
        day_before = (dt.date.fromisoformat(args.first_day) - dt.timedelta(days=1)).isoformat()
        warmup = load(reference, day_before, 1, limit=args.warmup_flights)
        say(f"warm-up: {len(warmup)} flights of {day_before} at full speed (not counted)")
        Replay(s, events(warmup), speed=None, settle=300, say=say).play()
        memory = Memory(job.proc.pid)
        before = memory.sample()
        flights = load(reference, args.first_day, args.days)
        say(f"replay: {len(flights):,} flights from {args.first_day} ({args.days} days) at full speed")
        replay = Replay(s, events(flights), speed=None, settle=args.settle, every=10.0, say=say)
        replay.follower.start()
        if not replay.follower.ready.wait(60):
            raise RuntimeError("the response topic could not be read")
        probe = Probe(s, replay.follower, args.probe_rate)
        probe.start()
        say(f"probes alone: {args.probe_rate:g} requests/s for {args.probe_before:g} s")
        time.sleep(args.probe_before)  # the baseline's length is the point, not a condition
        probe.phase = "burst"
        memory.start()
        result = {}
        player = threading.Thread(target=lambda: result.update(replay.play()), daemon=True, name="replay")
        player.start()
        while player.is_alive():  # once the burst's requests are answered, only the join works
            if probe.phase == "burst" and replay.sent.requests and len(replay.sent.requests) == len(flights) \
                    and set(replay.sent.requests) <= set(replay.follower.snapshot()[0]):
                probe.phase = "join"
            player.join(0.2)
        summary = result
        peak = memory.stop()
        probe.stop()
        time.sleep(2)  # the last probes' answers
        probes = {phase: probe.latencies(phase) for phase in ("before", "burst", "join")}
    finally:
        job.discard()
    holdout = SHIPPED.load_metrics()
    return {
        "flights": summary["flights"], "first_flight_date": summary["first_flight_date"],
        "last_flight_date": summary["last_flight_date"], "settled": summary["settled"],
        "answered": summary["answered"], "resolved": summary["resolved"], "scored": summary["scored"],
        "cancelled": summary["cancelled"], "diverted": summary["diverted"], "unresolved": summary["unresolved"],
        "sending_s": summary["sending_s"], "wall_s": summary["wall_s"],
        "predicted_per_s": summary["predicted_per_s"], "scored_per_s": summary["scored_per_s"],
        "predict_p50_ms": summary["predict_latency"]["p50_ms"], "predict_p99_ms": summary["predict_latency"]["p99_ms"],
        "probe_rate_per_s": args.probe_rate, "probe_before": probes["before"], "probe_burst": probes["burst"],
        "probe_join": probes["join"],
        "lag_p50_ms": summary["score_lag"]["p50_ms"], "lag_p99_ms": summary["score_lag"]["p99_ms"],
        "driver_rss_mb_before": before["driver"], "driver_rss_mb_peak": peak["driver"],
        "jvm_rss_mb_before": before["jvm"], "jvm_rss_mb_peak": peak["jvm"],
        "live_accuracy": summary["accuracy"], "live_macro_f1": summary["macro_f1"],
        "expected_accuracy": summary["expected_accuracy"],
        "holdout_accuracy": round(holdout["holdout_accuracy"], 4), "holdout_macro_f1": round(holdout["holdout_macro_f1"], 4),
        "warmup": f"{len(warmup)} flights of {day_before}, not counted",
        "confusion": summary["confusion"],
    }


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    host = machine.before_bench(say)
    say("starting the servers")
    launcher.up(load_settings(), by_name(with_needs(["kafka", "mongo", "cassandra", "hdfs", "mlflow"])))
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        figures = run(Path(tmp), args)
    say(f"done in {time.monotonic() - began:.0f} s: {figures['predicted_per_s']} flights/s predicted, "
        f"{figures['scored_per_s']}/s scored; lag p50 {figures['lag_p50_ms']} ms, p99 {figures['lag_p99_ms']} ms; "
        f"predict p99 {figures['predict_p99_ms']} ms (probes: {figures['probe_before']['p99_ms']} ms before, "
        f"{figures['probe_burst']['p99_ms']} ms in the burst, {figures['probe_join']['p99_ms']} ms while the join "
        f"scored); driver RSS {figures['driver_rss_mb_before']} -> "
        f"{figures['driver_rss_mb_peak']} MB; live accuracy {figures['live_accuracy']} (holdout "
        f"{figures['holdout_accuracy']})")
    publish("replay", {"machine": host, **figures}, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
