"""CPU per request of the predict query's transform (spark_jobs.transform.score: validation,
features, the served model, the response JSON), without Kafka: the part of a request's cost
that the code of this repository decides.

Usage:
    python -m bench.transform [--rows 200000] [--repeat 8]

Builds ``--rows`` valid requests as Kafka rows (harness.traffic's sample requests, cached in
memory), then runs each frame ``--repeat`` times into Spark's no-op sink and prints the best
run's JVM CPU time per request: the rows alone, the validation alone, the whole transform. CPU
time, not wall time: other processes on the machine change the wall time of a run much more
than its CPU time. The first runs include the JIT's compilation; the best run is after it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

from flightdelay.config import load_settings
from flightdelay.serving import load_served_model
from flightdelay.spark import get_spark
from harness import machine
from harness.machine import cpu_seconds, jvm_child
from harness.progress import say
from harness.results import publish
from harness.traffic import sample_requests
from spark_jobs.transform import score
from spark_jobs.validate import validated

KAFKA_ROWS = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"


def best_cpu_us_per_row(frame, rows: int, repeat: int, pid: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        before = cpu_seconds(pid)
        frame.write.format("noop").mode("overwrite").save()
        runs.append(cpu_seconds(pid) - before)
    return round(min(runs) / rows * 1e6, 1), [round(r, 2) for r in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()
    host = machine.before_bench(say)
    # No registry lookup: the shipped model serves, the same on every machine.
    s = dataclasses.replace(load_settings(), model_name="bench_transform_no_such_model")
    spark = get_spark(s, "bench-transform", long_running=True)
    served = load_served_model(s)
    requests = sample_requests(served.reference, args.rows)
    rows = [(r["UUID"].encode(), json.dumps(r).encode(), "bench", 0, i, None) for i, r in enumerate(requests)]
    kafka_rows = spark.createDataFrame(rows, KAFKA_ROWS).repartition(2).cache()
    kafka_rows.count()
    pid = jvm_child(os.getpid())
    frames = {
        "rows_only": kafka_rows.select("key", "value"),
        "validation": validated(kafka_rows.withColumnRenamed("topic", "source_topic"), served.reference)
        .select("_valid", "errors"),
        "transform": score(kafka_rows, served, s),
    }
    results = {"rows": args.rows, "engine": served.engine}
    for name, frame in frames.items():
        us, runs = best_cpu_us_per_row(frame, args.rows, args.repeat, pid)
        results[f"{name}_cpu_us_per_request"] = us
        say(f"{name}: {us} JVM CPU-us per request (best of {args.repeat}; CPU-s per run {runs})")
    results["machine"] = host
    publish("transform", results, args)
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
