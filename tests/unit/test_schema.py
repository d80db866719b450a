"""The request contract: every bad field is reported at once, with a message; no pyspark needed."""
import math
import subprocess
import sys

import pytest

from flightdelay import schema
from flightdelay.reference import Reference, load_reference
from flightdelay.schema import ValidationError, validate_request

GOOD = {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-01-03",
        "CRSDepTime": 515, "CRSArrTime": 819, "DepDelay": 2.0, "FlightNum": 1545}


@pytest.fixture(scope="module")
def ref():
    return Reference(
        carriers={"UA": "United Air Lines Inc.", "AA": "American Airlines Inc."},
        airports={"EWR": {"name": "Newark Liberty Intl", "tz": "America/New_York"},
                  "JFK": {"name": "John F Kennedy Intl", "tz": "America/New_York"},
                  "IAH": {"name": "George Bush Intercontinental", "tz": "America/Chicago"},
                  "MIA": {"name": "Miami Intl", "tz": "America/New_York"}},
        routes={"EWR-IAH": {"distance": 1400.0, "typical_elapsed": 240.0, "flights": 10},
                "JFK-MIA": {"distance": 1089.0, "typical_elapsed": 180.0, "flights": 10}},
        defaults={"tz": "America/New_York", "distance": 800.0, "elapsed_intercept": 30.0,
                  "elapsed_per_mile": 0.125})


def errors_of(payload, ref=None, **kw):
    with pytest.raises(ValidationError) as exc:
        validate_request(payload, ref, **kw)
    return exc.value.fields


def test_good_request_is_cleaned_and_typed(ref):
    clean = validate_request({**GOOD, "Carrier": " ua ", "CRSDepTime": "0515", "DepDelay": "-3.5",
                              "FlightNum": "", "extra": "ignored"}, ref)
    assert clean == {**GOOD, "CRSDepTime": 515, "DepDelay": -3.5, "FlightNum": None}
    assert type(clean["DepDelay"]) is float and type(clean["CRSArrTime"]) is int


def test_missing_fields_are_all_reported():
    fields = errors_of({})
    assert set(fields) == {"Carrier", "Origin", "Dest", "FlightDate", "CRSDepTime", "CRSArrTime", "DepDelay"}
    assert all("required" in msg for msg in fields.values())


@pytest.mark.parametrize("field, value, words", [
    ("Carrier", 12, "text code"),
    ("Carrier", "UNITED", "not a valid code"),
    ("Origin", "NEWARK", "not a valid code"),
    ("Dest", "I@H", "not a valid code"),
    ("FlightDate", "03/01/2013", "YYYY-MM-DD"),
    ("FlightDate", "2013-02-30", "not a calendar date"),
    ("FlightDate", 20130103, "date string"),
    ("FlightDate", "1890-01-01", "between"),
    ("CRSDepTime", 2400, "not a time of day"),
    ("CRSDepTime", 1261, "minutes below 60"),
    ("CRSArrTime", -5, "not a time of day"),
    ("CRSArrTime", "noon", "HHMM"),
    ("CRSArrTime", 8.5, "HHMM"),
    ("DepDelay", "late", "number of minutes"),
    ("DepDelay", float("nan"), "finite"),
    ("DepDelay", True, "boolean"),
    ("DepDelay", 5000, "between -120 and 1440"),
    ("FlightNum", "UA12", "whole number"),
    ("FlightNum", 0, "between 1 and 9999"),
])
def test_each_bad_field_has_a_message(field, value, words):
    fields = errors_of({**GOOD, field: value})
    assert list(fields) == [field]
    assert words in fields[field]


def test_every_bad_field_is_reported_at_once(ref):
    fields = errors_of({**GOOD, "Carrier": "ZZ", "FlightDate": "2013-13-01", "CRSDepTime": 975,
                        "DepDelay": None}, ref)
    assert set(fields) == {"Carrier", "FlightDate", "CRSDepTime", "DepDelay"}


def test_unknown_carrier_and_airports_are_named(ref):
    fields = errors_of({**GOOD, "Carrier": "ZZ", "Origin": "XXX", "Dest": "YYY"}, ref)
    assert fields == {"Carrier": "unknown airline 'ZZ'", "Origin": "unknown airport 'XXX'",
                      "Dest": "unknown airport 'YYY'"}


def test_unknown_route_is_a_clear_error(ref):
    fields = errors_of({**GOOD, "Origin": "JFK", "Dest": "IAH"}, ref)
    assert list(fields) == [schema.ROUTE_ERROR_FIELD]
    assert "unknown route JFK-IAH" in fields["Dest"] and "distance" in fields["Dest"]


def test_same_origin_and_destination(ref):
    assert errors_of({**GOOD, "Dest": "EWR"}, ref) == {"Dest": "must differ from Origin"}


def test_without_reference_only_the_form_is_checked():
    assert validate_request({**GOOD, "Carrier": "ZZ", "Dest": "XXX"})["Carrier"] == "ZZ"


def test_envelope_fields_required_for_the_streaming_side():
    fields = errors_of(GOOD, envelope=True)
    assert set(fields) == {"UUID", "requested_at"}
    fields = errors_of({**GOOD, "UUID": "nope", "requested_at": -1}, envelope=True)
    assert "not a UUID" in fields["UUID"] and "non-negative" in fields["requested_at"]
    clean = validate_request({**GOOD, "UUID": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                              "requested_at": 1700000000000}, envelope=True)
    assert list(clean) == list(schema.REQUEST_FIELDS)
    assert clean["UUID"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


def test_not_a_mapping():
    with pytest.raises(ValidationError) as exc:
        validate_request(["UA"])
    assert "JSON object" in exc.value.fields["request"]


def test_hhmm_rule_as_data():
    assert [schema.hhmm_is_valid(v) for v in (0, 59, 60, 2359, 2360, 2400)] == [True, True, False, True, False, False]


def test_labels_and_splits_match():
    assert schema.LABEL_SPLITS == (-math.inf, -15.0, 0.0, 30.0, math.inf)
    assert sorted(schema.LABELS) == [0, 1, 2, 3]
    assert [schema.label_for_delay(x) for x in (-16, -15, -0.5, 0, 29.9, 30, 300)] == [0, 1, 1, 2, 2, 3, 3]


def test_spark_ddl_strings_name_every_field():
    assert schema.REQUEST_DDL.startswith("UUID STRING, Carrier STRING")
    assert schema.REQUEST_DDL.endswith("requested_at BIGINT")
    assert [p.split()[0] for p in schema.RESPONSE_DDL.split(", ")] == list(schema.RESPONSE_FIELDS)
    assert "probabilities ARRAY<DOUBLE>" in schema.RESPONSE_DDL


def test_schema_and_reference_import_without_pyspark():
    code = ("import sys; import flightdelay.schema, flightdelay.reference; "
            "assert 'pyspark' not in sys.modules, 'pyspark imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_reference_validates_a_real_route():
    ref = load_reference()
    assert ref.has_route("EWR", "IAH") and ref.distance("EWR", "IAH") == 1400.0
    assert ref.carrier_name("UA") == "United Air Lines Inc."
    assert "EWR" in ref.origins() and "SJU" in ref.destinations("JFK")
    clean = validate_request({**GOOD, "FlightNum": None}, ref)
    assert clean["Dest"] == "IAH"
    assert errors_of({**GOOD, "Origin": "LGA", "Dest": "SJU"}, ref) and not ref.has_route("LGA", "SJU")
