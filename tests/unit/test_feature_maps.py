"""The feature code's constant lookups (features.literal_lookup, a perfect hash read with Spark's
xxhash64): the same answer as a map literal for every known key, null for unknown and null keys,
the driver's hash equal to Spark's, and the streaming path's features equal to training's."""
import json
import random

import pytest
from pyspark.sql import functions as F

from flightdelay import features
from flightdelay.reference import load_reference

ODD_KEYS = ["", " ", "a", "EWR-IAH", "ewr-iah", "EWR-IAH|0", "EWR-IAH ", "Zürich-São Paulo", "東京-大阪",
            "x" * 31, "y" * 32, "z" * 33, "long key " * 12, "null", "NULL", "\u0000", "-", "|"]


def random_keys(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ-|0123456789éü東"
    return [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70)))) for _ in range(n)]


def map_literal_lookup(mapping: dict, key, value_type: str):
    """What the feature code used before: a map literal's lookup (Spark's linear key scan)."""
    return F.from_json(F.lit(json.dumps(mapping)), f"MAP<STRING, {value_type}>")[key]


def looked_up(spark, mapping: dict, keys: list, value_type: str) -> list[tuple]:
    """(key, literal_lookup, map literal lookup) per key, in order."""
    frame = spark.createDataFrame([(i, k) for i, k in enumerate(keys)], "i INT, key STRING")
    rows = frame.select("i", "key", features.literal_lookup(mapping, F.col("key"), value_type).alias("got"),
                        map_literal_lookup(mapping, F.col("key"), value_type).alias("want")).orderBy("i").collect()
    return [(r["key"], r["got"], r["want"]) for r in rows]


# -- the driver's hash is Spark's --------------------------------------------------------------
def test_python_hash_equals_sparks_for_every_length_and_utf8(spark):
    keys = ODD_KEYS + random_keys(400, seed=1)
    rows = spark.createDataFrame([(k,) for k in keys], "s STRING").select(
        "s", F.hash("s").alias("h"), F.hash(F.lit(7), "s").alias("salted")).collect()
    assert len(rows) == len(keys)
    assert [features.spark_hash(r["s"]) for r in rows] == [r["h"] for r in rows]
    assert [features.spark_hash(r["s"], salt=7) for r in rows] == [r["salted"] for r in rows]


def test_keys_with_one_hash_get_a_salted_table(spark):
    """Spark's hash is 32 bits: two of a few thousand keys can share it (here a known pair)."""
    twins = ("route-997", "route-39995")
    assert features.spark_hash(twins[0]) == features.spark_hash(twins[1])
    mapping = {twins[0]: 1.0, twins[1]: 2.0, "EWR-IAH": 3.0}
    assert features.lookup_table(json.dumps(mapping)).salt is not None
    rows = looked_up(spark, mapping, [*twins, "EWR-IAH", "route-998", None], "DOUBLE")
    assert [got for _, got, _ in rows] == [1.0, 2.0, 3.0, None, None]


# -- literal_lookup answers as a map literal does ----------------------------------------------
@pytest.mark.parametrize("value_type, value_of", [
    ("DOUBLE", lambda i: i * 1.5 - 7.25),
    ("INT", lambda i: i),
    ("STRING", lambda i: f"value {i}"),
    ("STRUCT<a: DOUBLE, b: ARRAY<DOUBLE>>", lambda i: {"a": i / 4, "b": [float(i), None]}),
])
def test_known_unknown_and_null_keys_as_a_map_literal(spark, value_type, value_of):
    known = list(dict.fromkeys(ODD_KEYS + random_keys(2_000, seed=2)))
    mapping = {k: value_of(i) for i, k in enumerate(known)}
    unknown = [k for k in random_keys(2_000, seed=3) + [k + "!" for k in known[:200]] if k not in mapping]
    rows = looked_up(spark, mapping, known + unknown + [None], value_type)
    assert len(rows) == len(known) + len(unknown) + 1
    assert all(got is not None for _, got, _ in rows[:len(known)])
    if not value_type.startswith("STRUCT"):
        assert [got for _, got, _ in rows[:len(known)]] == [mapping[k] for k in known]
    assert all(got is None for _, got, _ in rows[len(known):])
    assert all(got == want for _, got, want in rows)


def test_a_one_key_table_and_an_empty_one(spark):
    assert looked_up(spark, {"EWR": 1.0}, ["EWR", "JFK", None, ""], "DOUBLE") == [
        ("EWR", 1.0, 1.0), ("JFK", None, None), (None, None, None), ("", None, None)]
    assert [got for _, got, _ in looked_up(spark, {}, ["EWR", None], "DOUBLE")] == [None, None]


def test_every_key_has_its_own_slot():
    mapping = {k: i for i, k in enumerate(dict.fromkeys(random_keys(5_000, seed=4)))}
    table = features.lookup_table(json.dumps(mapping))
    placed = [k for k in table.keys if k is not None]
    assert sorted(placed) == sorted(mapping) and len(table.keys) <= 8 * len(mapping)
    assert all(table.keys[table.slot(features.spark_hash(k))] == k for k in mapping)
    assert all(table.values[s] == mapping[k] for s, k in enumerate(table.keys) if k is not None)


# -- the feature code: every route of the shipped reference, streaming path == training -------
def test_every_route_and_season_gets_its_reference_distance_and_typical_time(spark):
    ref = load_reference()
    months = (1, 4, 7, 10)  # one per season
    rows = [(*route.split("-"), f"2013-{m:02d}-15", 900, 1200, 0.0, "UA") for route in sorted(ref.routes)
            for m in months]
    rows += [("EWR", "XXX", "2013-01-15", 900, 1200, 0.0, "UA"), ("QQQ", "IAH", "2013-07-15", 900, 1200, 0.0, "UA")]
    frame = spark.createDataFrame(rows, "Origin STRING, Dest STRING, FlightDate STRING, CRSDepTime INT, "
                                        "CRSArrTime INT, DepDelay DOUBLE, Carrier STRING")
    got = features.add_features(frame, ref).select("Origin", "Dest", "Month", "Distance", "RouteTypicalElapsed",
                                                   "CRSElapsedTime").collect()
    assert len(got) == 4 * len(ref.routes) + 2
    d = ref.defaults
    for r in got:
        distance = ref.distance(r["Origin"], r["Dest"])
        assert r["Distance"] == (float(d["distance"]) if distance is None else distance), r
        assert r["RouteTypicalElapsed"] == ref.typical_elapsed(r["Origin"], r["Dest"], month=r["Month"]), r
        assert r["CRSElapsedTime"] is not None


def test_streaming_path_features_equal_training_features(spark):
    """The same flights as training rows and as Kafka request rows parsed by the streaming job's
    validation: identical derived features (one add_features, one set of lookup tables)."""
    from pyspark.testing import assertDataFrameEqual

    from spark_jobs.validate import validated
    from training import data

    ref = load_reference()
    flights = data.load_flights(spark, sample=0.002, seed=11).frame.limit(400).collect()
    fields = ["Carrier", "Origin", "Dest", "FlightDate", "CRSDepTime", "CRSArrTime", "DepDelay", "FlightNum"]
    training_rows = spark.createDataFrame([tuple(r[f] for f in fields) for r in flights],
                                          "Carrier STRING, Origin STRING, Dest STRING, FlightDate STRING, "
                                          "CRSDepTime INT, CRSArrTime INT, DepDelay DOUBLE, FlightNum INT")
    requests = [json.dumps({**{f: r[f] for f in fields}, "UUID": f"00000000-0000-4000-8000-{i:012d}",
                            "requested_at": 1_700_000_000_000}) for i, r in enumerate(flights)]
    kafka = spark.createDataFrame([(str(i).encode(), v.encode(), "t", 0, i) for i, v in enumerate(requests)],
                                  "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT")
    parsed = validated(kafka, ref)
    assert parsed.filter("NOT _valid").count() == 0
    cols = ["Carrier", "FlightNum", "FlightDate", "CRSDepTime", "Origin", "Dest", *features.DERIVED_COLUMNS]
    served = features.add_features(parsed, ref).select(*cols)
    trained = features.add_features(training_rows, ref).select(*cols)
    assert trained.count() == len(flights) > 300
    assertDataFrameEqual(served, trained)
