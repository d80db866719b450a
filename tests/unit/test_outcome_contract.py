"""The outcome contract (flightdelay.schema): one definition for the web app's door and the job,
every bad field at once, what happened hangs together, the flight's identity, the actual class
in the training label's buckets; the job's check of a message on the outcome topic."""
import json

import pytest

from flightdelay import schema
from flightdelay.schema import ValidationError, actual_class, flight_key, validate_outcome
from spark_jobs.outcomes import Rejected, validate_message
from spark_jobs.validate import MAX_MESSAGE_BYTES

FLOWN = {"Carrier": "UA", "FlightNum": 1545, "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-11-01",
         "CRSDepTime": 529, "DepDelay": 2.0, "ArrDelay": -10.0}
ENVELOPE = {"outcome_id": "6F9619FF-8B86-4D01-B42D-00CF4FC964FF", "reported_at": 1_800_000_000_000}


def errors_of(payload, **kw):
    with pytest.raises(ValidationError) as exc:
        validate_outcome(payload, **kw)
    return exc.value.fields


def test_a_flown_flight_is_cleaned_and_typed():
    clean = validate_outcome({**FLOWN, "Carrier": " ua", "FlightNum": "1545", "CRSDepTime": "0529", "extra": 1})
    assert clean == {**FLOWN, "Cancelled": False, "Diverted": False, "outcome_id": None}
    assert actual_class(clean) == 1  # 10 minutes early: "slightly early (0-15 min)"
    assert [actual_class({**clean, "ArrDelay": d}) for d in (-15.5, -15.0, 0.0, 29.9, 30.0)] == [0, 1, 2, 2, 3]


def test_cancelled_and_diverted_flights_have_no_class():
    cancelled = validate_outcome({**FLOWN, "DepDelay": None, "ArrDelay": None, "Cancelled": True})
    diverted = validate_outcome({**FLOWN, "ArrDelay": None, "Diverted": True})
    assert actual_class(cancelled) is None and actual_class(diverted) is None


def test_the_identity_is_required_and_every_bad_field_is_reported():
    fields = errors_of({"DepDelay": 1.0})
    assert set(fields) == {"Carrier", "FlightNum", "Origin", "Dest", "FlightDate", "CRSDepTime", "ArrDelay"}
    fields = errors_of({**FLOWN, "FlightNum": 0, "FlightDate": "2013-02-30", "CRSDepTime": 2400, "DepDelay": "soon"})
    assert set(fields) == {"FlightNum", "FlightDate", "CRSDepTime", "DepDelay"}


@pytest.mark.parametrize("changes, field, words", [
    ({"Cancelled": True}, "DepDelay", "empty for a cancelled flight"),
    ({"Cancelled": True, "DepDelay": None}, "ArrDelay", "empty for a cancelled flight"),
    ({"Diverted": True}, "ArrDelay", "did not arrive at Dest"),
    ({"Cancelled": True, "Diverted": True, "DepDelay": None, "ArrDelay": None}, "Diverted", "cannot have been"),
    ({"DepDelay": None}, "DepDelay", "required for a flight that left"),
    ({"ArrDelay": None}, "ArrDelay", "required for a flight that arrived"),
    ({"Cancelled": "false"}, "Cancelled", "JSON boolean"),
    ({"ArrDelay": float("inf")}, "ArrDelay", "finite"),
    ({"Dest": "EWR"}, "Dest", "must differ from Origin"),
])
def test_what_happened_must_hang_together(changes, field, words):
    assert words in errors_of({**FLOWN, **changes})[field]


def test_on_kafka_the_envelope_is_required_and_numbers_are_json_numbers():
    clean = validate_outcome({**FLOWN, **ENVELOPE}, envelope=True)
    assert clean["outcome_id"] == ENVELOPE["outcome_id"].lower() and clean["reported_at"] == ENVELOPE["reported_at"]
    assert set(errors_of(FLOWN, envelope=True)) == {"outcome_id", "reported_at"}
    assert set(errors_of({**FLOWN, **ENVELOPE, "FlightNum": "1545", "DepDelay": "2"}, envelope=True)) == {
        "FlightNum", "DepDelay"}


def test_the_flight_key_is_the_same_from_a_request_a_prediction_and_an_outcome():
    request = {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-11-01", "CRSDepTime": 529,
               "CRSArrTime": 830, "DepDelay": 2.0, "FlightNum": "1545"}
    assert flight_key(request) == flight_key(FLOWN) == "2013-11-01/UA1545/EWR-IAH/0529"
    assert flight_key({**request, "FlightNum": None}) is None


def test_the_scored_record_schema_names_every_field_once():
    assert len(set(schema.SCORED_FIELDS)) == len(schema.SCORED_FIELDS)
    assert schema.SCORED_DDL.count(",") == len(schema.SCORED_FIELDS) - 1


@pytest.mark.parametrize("raw, reason", [
    (None, "empty message"),
    ("{nope", "message is not a JSON object"),
    ('"text"', "message is not a JSON object"),
    ("x" * (MAX_MESSAGE_BYTES + 1), "larger than"),
    (json.dumps({**FLOWN, **ENVELOPE, "Cancelled": True}),
     "invalid outcome: DepDelay: must be empty for a cancelled flight; ArrDelay: must be empty"),
])
def test_the_job_rejects_messages_with_the_reason(raw, reason):
    with pytest.raises(Rejected, match=reason.replace("(", r"\(")):
        validate_message(raw, None)


def test_the_job_accepts_what_the_web_app_produces():
    clean = validate_outcome(FLOWN)
    clean.update(outcome_id="6f9619ff-8b86-4d01-b42d-00cf4fc964ff", reported_at=1_800_000_000_000)
    assert validate_message(json.dumps(clean), None) == clean
