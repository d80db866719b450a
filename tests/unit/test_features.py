"""Derived features, train/serve parity, and the shipped model in models/."""
import json
import uuid

import pytest

from flightdelay import features
from flightdelay.config import REPO_ROOT
from flightdelay.reference import Reference, load_reference
from flightdelay.schema import (
    LABEL_COLUMN,
    LABEL_SPLITS,
    LABELS,
    REQUEST_DDL,
    REQUEST_FIELDS,
    ValidationError,
    label_for_delay,
    validate_request,
)

MODELS = REPO_ROOT / "models"
REQUEST = {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-01-03",
           "CRSDepTime": 515, "CRSArrTime": 819, "DepDelay": 2.0, "FlightNum": 1545}


@pytest.fixture(scope="module")
def ref():
    return load_reference()


def request_frame(spark, requests, ref=None):
    """What the streaming job parses from Kafka: validated requests in the REQUEST_DDL schema."""
    rows = []
    for i, payload in enumerate(requests):
        clean = validate_request(payload, ref)
        clean.update(UUID=str(uuid.UUID(int=i)), requested_at=1_700_000_000_000 + i)
        rows.append(tuple(clean[name] for name in REQUEST_FIELDS))
    return spark.createDataFrame(rows, schema=REQUEST_DDL)


def unchecked_frame(spark, payload):
    """A request that bypassed validation (e.g. unknown carrier or airport)."""
    row = {name: payload.get(name) for name in REQUEST_FIELDS}
    row.update(UUID=str(uuid.uuid4()), requested_at=0)
    return spark.createDataFrame([tuple(row[n] for n in REQUEST_FIELDS)], schema=REQUEST_DDL)


def featurize(spark, ref, **changes):
    return features.add_features(request_frame(spark, [{**REQUEST, **changes}], ref), ref).first().asDict()


# -- golden records --------------------------------------------------------------------------
def test_golden_record_thursday_2013_01_03(spark, ref):
    row = featurize(spark, ref)
    assert {k: row[k] for k in ("Route", "DayOfMonth", "DayOfWeek", "DayOfYear", "Month", "Season", "DepHour",
                                "ArrHour", "Distance")} == {
        "Route": "EWR-IAH", "DayOfMonth": 3, "DayOfWeek": 4, "DayOfYear": 3, "Month": 1, "Season": 0,
        "DepHour": 5, "ArrHour": 8, "Distance": 1400.0}
    # 05:15 EST -> 08:19 CST: 10:15Z -> 14:19Z
    assert row["CRSElapsedTime"] == 244.0
    # the winter median of the route in the training split, as the reference data (Python) says
    assert row["RouteTypicalElapsed"] == ref.routes["EWR-IAH"]["typical_elapsed_by_season"]["0"]
    assert row["RouteTypicalElapsed"] == ref.typical_elapsed("EWR", "IAH", month=1)
    assert row["BlockSlack"] == row["CRSElapsedTime"] - row["RouteTypicalElapsed"]
    assert row["ExpectedArrDelay"] == row["DepDelay"] - row["BlockSlack"]


@pytest.mark.parametrize("date, dow, doy", [
    ("2013-01-06", 7, 6),      # Sunday
    ("2013-01-07", 1, 7),      # Monday (the reference web app sent 0 here)
    ("2013-12-31", 2, 365),
    ("2016-12-31", 6, 366),    # leap year
])
def test_iso_day_of_week_and_day_of_year(spark, ref, date, dow, doy):
    row = featurize(spark, ref, FlightDate=date)
    assert (row["DayOfWeek"], row["DayOfYear"]) == (dow, doy)


@pytest.mark.parametrize("origin, dest, date, dep, arr, minutes", [
    ("EWR", "PHX", "2013-01-15", 900, 1130, 270),    # EST -> MST (Arizona: no DST)
    ("EWR", "PHX", "2013-07-15", 900, 1130, 330),    # EDT -> MST
    ("JFK", "LAX", "2013-12-19", 2225, 131, 366),    # arrives the next day
])
def test_scheduled_elapsed_time_is_time_zone_correct(spark, ref, origin, dest, date, dep, arr, minutes):
    row = featurize(spark, ref, Origin=origin, Dest=dest, FlightDate=date, CRSDepTime=dep, CRSArrTime=arr)
    assert row["CRSElapsedTime"] == minutes


@pytest.mark.parametrize("date, season", [("2013-12-01", 0), ("2013-02-28", 0), ("2013-03-01", 1),
                                          ("2013-08-31", 2), ("2013-09-01", 3), ("2013-11-30", 3)])
def test_season_and_its_typical_elapsed_time(spark, ref, date, season):
    row = featurize(spark, ref, Origin="JFK", Dest="LAX", FlightDate=date)
    assert row["Season"] == season
    month = int(date[5:7])
    assert row["RouteTypicalElapsed"] == ref.typical_elapsed("JFK", "LAX", month=month)


def test_features_do_not_depend_on_the_session_time_zone(spark, ref):
    before = featurize(spark, ref, Origin="EWR", Dest="PHX", FlightDate="2013-07-15", CRSDepTime=2350)
    old = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
    try:
        after = featurize(spark, ref, Origin="EWR", Dest="PHX", FlightDate="2013-07-15", CRSDepTime=2350)
    finally:
        spark.conf.set("spark.sql.session.timeZone", old)
    assert after == before


def test_unknown_route_falls_back_to_defaults(spark):
    ref = Reference(carriers={"UA": "United"},
                    airports={"EWR": {"name": "Newark", "tz": "America/New_York"}},
                    routes={}, defaults={"tz": "America/New_York", "distance": 800.0,
                                         "elapsed_intercept": 40.0, "elapsed_per_mile": 0.125})
    row = features.add_features(unchecked_frame(spark, {**REQUEST, "Dest": "XXX"}), ref).first()
    assert row["Distance"] == 800.0 and row["RouteTypicalElapsed"] == 140.0
    assert ref.typical_elapsed("EWR", "XXX", month=1) == 140.0
    assert row["ExpectedArrDelay"] == REQUEST["DepDelay"] - (row["CRSElapsedTime"] - 140.0)


# -- train/serve parity ----------------------------------------------------------------------
def test_training_rows_and_web_requests_get_identical_features(spark, ref):
    from pyspark.testing import assertDataFrameEqual

    from training import data

    flights = data.load_flights(spark, sample=0.0005, seed=7)
    train_rows = flights.frame.orderBy("FlightDate", "CRSDepTime", "Carrier", "FlightNum").limit(25)
    collected = train_rows.collect()
    # The same flights as a browser form would post them: strings, zero-padded times.
    web = [{"Carrier": r.Carrier.lower(), "Origin": r.Origin, "Dest": r.Dest, "FlightDate": r.FlightDate,
            "CRSDepTime": f"{r.CRSDepTime:04d}", "CRSArrTime": f"{r.CRSArrTime:04d}",
            "DepDelay": f"{r.DepDelay:g}", "FlightNum": str(r.FlightNum)} for r in collected]
    keys = ["Carrier", "FlightNum", "FlightDate", "CRSDepTime"]
    cols = keys + list(features.CATEGORICAL) + list(features.DERIVED_COLUMNS) + ["DepDelay"]
    cols = list(dict.fromkeys(cols))
    from_training = features.add_features(train_rows, ref).select(*cols)
    from_web = features.add_features(request_frame(spark, web, ref), ref).select(*cols)
    assert from_training.count() == 25
    assertDataFrameEqual(from_web, from_training)

    from pyspark.ml import PipelineModel

    model = PipelineModel.load(str(MODELS / "pipeline_model"))
    def scored(df):
        return model.transform(df).select(*keys, "features", "prediction", "probability")

    assertDataFrameEqual(scored(from_web), scored(from_training))


# -- the pipeline and the shipped model --------------------------------------------------------
def test_pipeline_stages_and_no_label_inside():
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import Bucketizer, StringIndexer, VectorAssembler

    stages = features.build_pipeline().getStages()
    assert [type(s) for s in stages] == [StringIndexer, VectorAssembler, RandomForestClassifier]
    assert stages[0].getHandleInvalid() == "keep"
    assert stages[0].getInputCols() == list(features.CATEGORICAL)
    assert "ArrDelay" not in stages[1].getInputCols()
    assert not any(isinstance(s, Bucketizer) and s.getInputCol() == "ArrDelay" for s in stages)
    assert stages[2].getLabelCol() == LABEL_COLUMN


def test_label_bucketizer_matches_the_schema(spark):
    from pyspark.ml.feature import Bucketizer

    delays = [-60.0, -15.0, -14.0, -0.5, 0.0, 29.0, 30.0, 600.0]
    frame = spark.createDataFrame([(d,) for d in delays], "ArrDelay DOUBLE")
    got = Bucketizer(splits=list(LABEL_SPLITS), inputCol="ArrDelay", outputCol="b").transform(frame)
    assert [int(r.b) for r in got.collect()] == [label_for_delay(d) for d in delays] == [0, 1, 1, 1, 2, 2, 3, 3]


@pytest.fixture(scope="module")
def shipped_model():
    from pyspark.ml import PipelineModel

    return PipelineModel.load(str(MODELS / "pipeline_model"))


def test_shipped_model_scores_a_request_without_arr_delay(spark, ref, shipped_model):
    frame = features.add_features(request_frame(spark, [REQUEST, {**REQUEST, "DepDelay": 180}], ref), ref)
    assert "ArrDelay" not in frame.columns
    on_time, late = shipped_model.transform(frame).collect()
    for row in (on_time, late):
        assert int(row.prediction) in LABELS
        assert len(row.probability) == 4 and abs(sum(row.probability) - 1) < 1e-6
    assert late.prediction == 3 and on_time.prediction < 3


def test_shipped_model_keeps_unknown_carrier_and_airport(spark, ref, shipped_model):
    odd = {**REQUEST, "Carrier": "ZZ", "Dest": "XXX"}
    with pytest.raises(ValidationError) as exc:
        validate_request(odd, ref)
    assert set(exc.value.fields) == {"Carrier", "Dest"}
    row = shipped_model.transform(features.add_features(unchecked_frame(spark, odd), ref)).first()
    indexer = shipped_model.stages[0]
    labels = dict(zip(indexer.getInputCols(), indexer.labelsArray))
    assert row.CarrierIndex == len(labels["Carrier"])     # the "unknown" index of handleInvalid="keep"
    assert row.DestIndex == len(labels["Dest"])
    assert int(row.prediction) in LABELS


def test_shipped_metrics_and_reference_are_complete(ref):
    metrics = json.loads((MODELS / "metrics.json").read_text())
    for key in ("holdout_accuracy", "holdout_weighted_f1", "holdout_macro_f1", "baseline_accuracy", "split",
                "train_rows", "test_rows", "trained_at", "spark_version", "per_class", "confusion_matrix"):
        assert key in metrics, key
    assert metrics["holdout_accuracy"] > metrics["baseline_accuracy"] + 0.1
    assert metrics["reference_sha256"] == ref.sha256
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["test_rows"]
    assert len(ref.routes) >= 220 and len(ref.carriers) == 16


def test_metrics_from_confusion():
    from training.evaluate import majority_baseline, metrics_from_confusion

    cm = [[5, 5, 0, 0], [0, 10, 0, 0], [0, 0, 0, 10], [0, 0, 0, 10]]
    m = metrics_from_confusion(cm)
    assert m["accuracy"] == 25 / 40
    assert m["per_class"][0]["precision"] == 1.0 and m["per_class"][0]["recall"] == 0.5
    assert m["per_class"][2]["f1"] == 0.0
    assert abs(m["macro_f1"] - (2 / 3 + 0.8 + 0 + 2 / 3) / 4) < 1e-12
    b = majority_baseline({0: 1, 1: 9, 2: 3, 3: 0}, [10, 10, 10, 10])
    assert b["class"] == 1 and b["accuracy"] == 0.25
