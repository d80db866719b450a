"""Retraining on what was observed: the base flights plus the outcomes the platform collected.

``python -m training.train --observed hdfs`` (the retraining DAG with the param ``observed``,
which an alert sets) reads the scored predictions archived on HDFS (FD_SCORED_ARCHIVE_PATH,
``schema.SCORED_FIELDS``: each prediction's flight and its real arrival delay) and takes the
request fields the scored record does not carry (CRSArrTime and the DepDelay the model was given)
from the prediction archive (FD_PREDICTION_ARCHIVE_PATH), by UUID. ``--observed PATH`` reads
the scored predictions from another parquet directory (any Hadoop URL or local path).

* An observed flight is a scored prediction with a class (cancelled and diverted flights have no
  arrival delay: training leaves them out too); several predictions of one flight count once
  (the newest request's fields); a scored prediction whose request is not in the prediction
  archive is left out and counted.
* Its label is the training label: the same Bucketizer on its ArrDelay (``schema.LABEL_SPLITS``),
  its features the same ``flightdelay.features`` code: the observed flights join the base flights
  as rows of the same shape (``data.FLIGHTS_DDL``) before anything is derived from them.
* Evaluation: the newest observed flight dates, whole dates holding at least
  FD_OBSERVED_HOLDOUT_FRACTION of the observed flights, are held out. Training sees the base
  flights before the base split date (the champion's training data) and before the first
  held-out date, plus the older observed flights; a base flight that was also observed is taken
  once, as observed. The route statistics of the reference data come from the base flights only
  (an observed flight carries no actual departure and arrival times).
* The new version is registered under the alias FD_CHALLENGER_ALIAS (``challenger``), never
  ``champion``; the served model is scored on the same held-out flights and recorded on the
  run (``evaluated_against``, ``champion_holdout_accuracy``) for the promotion decision.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from flightdelay.config import Settings
from flightdelay.schema import FLIGHT_IDENTITY, SCORED_DDL

log = logging.getLogger(__name__)

HDFS = "hdfs"   # --observed hdfs: the platform's own archives
FLIGHT_COLUMNS = ("Carrier", "Origin", "Dest", "FlightDate", "CRSDepTime", "CRSArrTime", "DepDelay", "FlightNum",
                  "DepTime", "ArrTime", "ArrDelay")   # data.FLIGHTS_DDL's columns, in its order
SCORED_COLUMNS = ("UUID", "Carrier", "FlightNum", "Origin", "Dest", "FlightDate", "CRSDepTime", "flight_key",
                  "status", "ArrDelay", "requested_at")
REQUEST_COLUMNS = ("UUID", "CRSArrTime", "DepDelay")   # from the prediction archive


class ObservedError(ValueError):
    """Nothing observed to train on; the message says where it looked."""


@dataclass(frozen=True)
class Observed:
    flights: object            # pandas, FLIGHT_COLUMNS, one row per observed flight
    counts: dict               # what was read and left out
    source: str


# -- pure functions (pandas) -----------------------------------------------------------------------
def observed_flights(joined):
    """(one row per observed flight in FLIGHT_COLUMNS, counts) from scored predictions joined
    with their requests (columns SCORED_COLUMNS + CRSArrTime, RequestDepDelay)."""
    import pandas as pd

    scored = joined[(joined["status"] == "scored") & joined["ArrDelay"].notna() & joined["flight_key"].notna()]
    with_request = scored[scored["CRSArrTime"].notna() & scored["RequestDepDelay"].notna()]
    newest = (with_request.sort_values(["flight_key", "requested_at", "UUID"])
              .drop_duplicates("flight_key", keep="last"))
    flights = pd.DataFrame({
        "Carrier": newest["Carrier"], "Origin": newest["Origin"], "Dest": newest["Dest"],
        "FlightDate": newest["FlightDate"], "CRSDepTime": newest["CRSDepTime"].astype("int32"),
        "CRSArrTime": newest["CRSArrTime"].astype("int32"), "DepDelay": newest["RequestDepDelay"].astype("float64"),
        "FlightNum": newest["FlightNum"].astype("int32"),
        "DepTime": pd.array([None] * len(newest), dtype="Int32"), "ArrTime": pd.array([None] * len(newest), dtype="Int32"),
        "ArrDelay": newest["ArrDelay"].astype("float64"),
    }).sort_values(["FlightDate", "CRSDepTime", "Carrier", "FlightNum"]).reset_index(drop=True)
    counts = {"scored_predictions": len(joined),
              "without_class": int(len(joined) - len(scored)),         # cancelled, diverted
              "without_request": int(len(scored) - len(with_request)),  # not in the prediction archive
              "repeated_flight": int(len(with_request) - len(newest)),
              "flights": len(flights)}
    return flights, counts


def holdout_start(flight_dates, fraction: float) -> str:
    """The first held-out flight date: the newest whole dates holding at least ``fraction`` of
    the flights (at least one date; all of them when there is only one)."""
    per_date = sorted(_count(flight_dates).items())
    if not per_date:
        raise ObservedError("no observed flights to hold out")
    wanted = max(1, math.ceil(fraction * sum(n for _, n in per_date)))
    held = 0
    for date, n in reversed(per_date):
        held += n
        if held >= wanted:
            return date
    return per_date[0][0]


def _count(values) -> dict:
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def base_cut(split_date: str, first_holdout_date: str) -> str:
    """Base flights train before this date: the champion's training data, never the held-out days."""
    return min(split_date, first_holdout_date)


def describe(cut: str, first_holdout_date: str, observed_train: int, observed_holdout: int) -> str:
    return (f"observed: train base FlightDate < {cut} + {observed_train} observed flights before {first_holdout_date}, "
            f"holdout the {observed_holdout} observed flights FlightDate >= {first_holdout_date}")


# -- reading (Spark) -------------------------------------------------------------------------------
def scored_url(source: str, s: Settings) -> str:
    from flightdelay.stores import parquet

    return parquet.scored_url(s) if source == HDFS else source


def read_joined(spark, scored: str, predictions: str):
    """The scored predictions (pandas) with the request fields of each from the prediction
    archive: CRSArrTime and RequestDepDelay (null when the request is not archived)."""
    from pyspark.sql import functions as F

    frame = spark.read.schema(SCORED_DDL).parquet(scored).select(*SCORED_COLUMNS)
    dates = [r["FlightDate"] for r in frame.select("FlightDate").distinct().collect()]
    if not dates:
        raise ObservedError(f"no observed outcomes in {scored}")
    requests = (spark.read.parquet(predictions).where(F.col("FlightDate").isin(dates))  # its partitions only
                .select("UUID", F.col("CRSArrTime").cast("int"), F.col("DepDelay").cast("double").alias("RequestDepDelay"))
                .dropDuplicates(["UUID"]))
    return frame.join(requests, "UUID", "left").toPandas()


def load(spark, source: str, s: Settings) -> Observed:
    from flightdelay.stores import parquet

    url = scored_url(source, s)
    flights, counts = observed_flights(read_joined(spark, url, parquet.url(s)))
    log.info("observed outcomes from %s: %s", url, counts)
    if flights.empty:
        raise ObservedError(f"no observed flight with an arrival delay and an archived request in {url}: {counts}")
    return Observed(flights=flights, counts=counts, source=url)


def split(spark, base, observed: Observed, split_date: str, fraction: float) -> dict:
    """Training rows (base before the cut, less the flights observed, plus the older observed
    flights), held-out rows (the newest observed flight dates) and the base rows the reference
    statistics come from; Spark frames in data.FLIGHTS_DDL."""
    from training import data

    flights = observed.flights
    first = holdout_start(flights["FlightDate"], fraction)
    cut = base_cut(split_date, first)
    frame = spark.createDataFrame(flights[list(FLIGHT_COLUMNS)], schema=data.FLIGHTS_DDL)
    observed_train = frame.where(frame["FlightDate"] < first).cache()
    holdout = frame.where(frame["FlightDate"] >= first).cache()
    n_train, n_holdout = observed_train.count(), holdout.count()
    if n_train == 0:
        log.warning("the observed outcomes span one flight date (%s): all held out, training sees none of them", first)
    base_train = base.where(base["FlightDate"] < cut)
    train = (base_train.join(observed_train.select(*FLIGHT_IDENTITY), list(FLIGHT_IDENTITY), "left_anti")
             .unionByName(observed_train))
    counts = dict(observed.counts, train_flights=n_train, holdout_flights=n_holdout, first_holdout_date=first,
                  base_cut=cut, source=observed.source)
    return {"train": train, "holdout": holdout, "base_train": base_train, "counts": counts,
            "description": describe(cut, first, n_train, n_holdout)}


# -- the registry: a challenger, never the champion ----------------------------------------------
def register_challenger(s: Settings, registered: dict, result: dict, reason: str | None = None) -> dict:
    """Give the registered version the challenger alias; score the served model on the same
    held-out flights and record the comparison on the run; tags say what it was trained on."""
    from flightdelay import registry
    from training import tracking

    client = registry.client(s)
    version, run_id = registered["version"], registered["run_id"]
    baseline = tracking.served_baseline(s, result["test_raw"])
    tracking.record_evaluation(s, run_id, baseline)
    client.set_registered_model_alias(s.model_name, s.challenger_alias, version)
    accuracy = result["metrics"]["holdout_accuracy"]
    counts = result["metrics"]["observed"]
    why = (f"trained on the base flights + {counts['train_flights']} observed flights; holdout accuracy "
           f"{accuracy:.4f} vs {baseline.label} {baseline.accuracy:.4f} on the same {counts['holdout_flights']} newest "
           f"observed flights (from {counts['first_holdout_date']}); registered as '{s.challenger_alias}', "
           f"'{s.model_alias}' untouched: promotion is decided on live evidence")
    tags = {"role": s.challenger_alias, "promoted": "false", "promotion_reason": why,
            "live_version": baseline.version, "observed_source": counts["source"],
            "observed_train_flights": str(counts["train_flights"]),
            "observed_holdout_flights": str(counts["holdout_flights"]),
            "observed_first_holdout_date": counts["first_holdout_date"]}
    if reason:
        tags["retrain_reason"] = reason[:5000]
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(s.model_name, version, key, value)
    log.info("%s version %s is now '%s': %s", s.model_name, version, s.challenger_alias, why)
    return {"alias": s.challenger_alias, "promoted": False, "reason": why, "live_version": baseline.version,
            "candidate_accuracy": accuracy, "baseline_version": baseline.version,
            "baseline_accuracy": baseline.accuracy}
