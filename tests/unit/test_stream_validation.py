"""The streaming job's Spark validation agrees with schema.validate_request on one corpus."""
import json
import uuid

import pytest

from flightdelay.reference import load_reference
from flightdelay.schema import ValidationError, validate_request
from spark_jobs.validate import ERRORS, MAX_MESSAGE_BYTES, validated

GOOD = {"UUID": str(uuid.UUID(int=1)), "Carrier": "UA", "Origin": "EWR", "Dest": "IAH",
        "FlightDate": "2013-01-03", "CRSDepTime": 529, "CRSArrTime": 830, "DepDelay": 2.0,
        "FlightNum": 1545, "requested_at": 1_700_000_000_000}


def variant(**changes):
    out = dict(GOOD)
    for key, value in changes.items():
        if value is KeyError:
            out.pop(key)
        else:
            out[key] = value
    return out


CORPUS = [
    GOOD,
    variant(Carrier="ua", FlightNum=None),
    variant(Carrier=KeyError),
    variant(Carrier="ZZ"),
    variant(Carrier="UAL"),
    variant(Carrier=12),
    variant(Origin="XXX"),
    variant(Origin="EWR", Dest="EWR"),
    variant(Origin="JFK", Dest="BQN"),
    variant(Origin="LGA", Dest="HNL"),       # both airports known, route never flown from LGA
    variant(Dest="QQQ"),
    variant(FlightDate="2013-02-30"),
    variant(FlightDate="03/01/2013"),
    variant(FlightDate="1890-01-01"),
    variant(FlightDate=KeyError),
    variant(CRSDepTime=2400),
    variant(CRSDepTime=1261),
    variant(CRSDepTime=-5),
    variant(CRSArrTime="noon"),
    variant(DepDelay="late"),
    variant(DepDelay=99999.0),
    variant(DepDelay=KeyError),
    variant(FlightNum=0),
    variant(UUID="not-a-uuid"),
    variant(UUID=KeyError),
    variant(requested_at=-1),
    variant(Carrier=KeyError, Origin="XXX", CRSDepTime=2500, DepDelay="x"),
]


def python_verdict(payload):
    reference = load_reference()
    try:
        validate_request(payload, reference, envelope=True)
        return set()
    except ValidationError as exc:
        return set(exc.fields)


@pytest.fixture(scope="module")
def spark_verdicts(spark):
    reference = load_reference()
    rows = [(i, json.dumps(p).encode()) for i, p in enumerate(CORPUS)]
    df = spark.createDataFrame(rows, "i int, value binary")
    out = validated(df, reference).select("i", ERRORS).collect()
    return {r["i"]: dict(r[ERRORS]) for r in out}


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_same_verdict_as_validate_request(spark_verdicts, index):
    payload = CORPUS[index]
    assert set(spark_verdicts[index]) == python_verdict(payload), (payload, spark_verdicts[index])


def test_good_request_has_no_errors_and_typed_columns(spark):
    df = spark.createDataFrame([(json.dumps(GOOD).encode(),)], "value binary")
    row = validated(df, load_reference()).collect()[0]
    assert row[ERRORS] == {}
    assert (row["Carrier"], row["CRSDepTime"], row["DepDelay"]) == ("UA", 529, 2.0)


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not a JSON object"),
    (b"[1, 2, 3]", "not a JSON object"),
    # Every field there and typed, then broken: the one-parse fast path must not take it.
    (json.dumps(GOOD)[:-1].encode() + b", }", "not a JSON object"),
    (json.dumps(GOOD)[:-1].encode() + b', "FlightNum": }', "not a JSON object"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b'{"pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}', "larger than"),
    (None, "empty message"),
])
def test_message_level_failures(spark, raw, reason):
    df = spark.createDataFrame([(raw,)], "value binary")
    errors = validated(df, load_reference()).collect()[0][ERRORS]
    assert list(errors) == ["request"]
    assert reason in errors["request"]
