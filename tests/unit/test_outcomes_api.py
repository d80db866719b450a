"""POST /api/v1/outcomes without servers: a producer that records instead of Kafka. Valid
outcomes are produced keyed by their flight with an id and a report time; a batch with any bad
item gets every item's field messages and produces nothing; the OpenAPI document describes it."""
import json
import uuid as uuidlib

import pytest

from webapp import create_app
from webapp.bridge import OsThreads

GOOD = {"Carrier": "UA", "FlightNum": 1545, "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-11-01",
        "CRSDepTime": 529, "DepDelay": 2.0, "ArrDelay": -10.0}


class RecordingProducer:
    def __init__(self, fail=False):
        self.produced = []
        self.fail = fail

    def produce(self, topic, key, value, on_delivery):
        self.produced.append((topic, key.decode(), json.loads(value)))
        on_delivery("broker down" if self.fail else None, None)


class Bridge:
    """What the outcome route uses of the Kafka bridge: its producer and where callbacks run."""

    def __init__(self, fail=False):
        self.producer = RecordingProducer(fail)
        self.threads = OsThreads()

    def publish_request(self, request):
        raise AssertionError("no prediction requests here")


@pytest.fixture
def bridge():
    return Bridge()


@pytest.fixture
def client(bridge):
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"}, bridge=bridge,
                     stores=object(), start_consumer=False)
    return app.test_client()


def test_one_outcome_is_produced_keyed_by_its_flight(client, bridge):
    answer = client.post("/api/v1/outcomes", json=GOOD)
    assert answer.status_code == 202
    [accepted] = answer.get_json()["accepted"]
    assert accepted["flight_key"] == "2013-11-01/UA1545/EWR-IAH/0529"
    [(topic, key, value)] = bridge.producer.produced
    assert topic == "flight-delay-ml-outcome" and key == accepted["flight_key"]
    assert value["outcome_id"] == accepted["outcome_id"] and str(uuidlib.UUID(value["outcome_id"])) == value["outcome_id"]
    assert isinstance(value["reported_at"], int)
    assert (value["Cancelled"], value["Diverted"], value["ArrDelay"]) == (False, False, -10.0)


def test_a_batch_keeps_given_ids_and_takes_cancellations_and_diversions(client, bridge):
    given = str(uuidlib.uuid4())
    batch = [dict(GOOD, outcome_id=given),
             {**GOOD, "FlightNum": 1, "DepDelay": None, "ArrDelay": None, "Cancelled": True},
             {**GOOD, "FlightNum": 2, "ArrDelay": None, "Diverted": True}]
    answer = client.post("/api/v1/outcomes", json=batch)
    assert answer.status_code == 202 and answer.get_json()["count"] == 3
    assert [v["outcome_id"] for _, _, v in bridge.producer.produced][0] == given


def test_a_batch_with_bad_items_names_every_field_and_produces_nothing(client, bridge):
    batch = [GOOD, {**GOOD, "ArrDelay": None}, {**GOOD, "Cancelled": True, "Origin": "EWR", "Dest": "EWR"},
             {**GOOD, "FlightNum": None, "CRSDepTime": 2460, "Cancelled": "yes"}, "not an object"]
    answer = client.post("/api/v1/outcomes", json=batch)
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["error"] == "4 of 5 outcomes invalid; none accepted"
    items = {item["index"]: item["fields"] for item in body["items"]}
    assert set(items) == {1, 2, 3, 4}
    assert "required for a flight that arrived" in items[1]["ArrDelay"]
    assert items[2]["Dest"] == "must differ from Origin" and "cancelled" in items[2]["DepDelay"]
    assert set(items[3]) == {"FlightNum", "CRSDepTime", "Cancelled"} and "JSON boolean" in items[3]["Cancelled"]
    assert "JSON object" in items[4]["outcome"]
    assert bridge.producer.produced == []


@pytest.mark.parametrize("outcome, field, words", [
    ({**GOOD, "Dest": "HNL", "Origin": "LGA"}, "Dest", "unknown route"),
    ({**GOOD, "Carrier": "ZZ"}, "Carrier", "unknown airline"),
    ({**GOOD, "ArrDelay": 9999}, "ArrDelay", "between -120 and 1440"),
    ({**GOOD, "Diverted": True}, "ArrDelay", "diverted"),
    ({**GOOD, "Cancelled": True, "Diverted": True, "DepDelay": None, "ArrDelay": None}, "Diverted", "cancelled"),
    ({**GOOD, "outcome_id": "42"}, "outcome_id", "not a UUID"),
])
def test_one_bad_outcome_gets_its_field_messages(client, bridge, outcome, field, words):
    answer = client.post("/api/v1/outcomes", json=outcome)
    assert answer.status_code == 400
    assert words in answer.get_json()["fields"][field]
    assert bridge.producer.produced == []


@pytest.mark.parametrize("kwargs", [{"data": "not json", "content_type": "application/json"},
                                    {"json": []}, {"json": 7}, {"json": [GOOD] * 101},
                                    {"data": "Carrier=UA", "content_type": "application/x-www-form-urlencoded"}])
def test_what_is_no_outcome_at_all_is_refused(client, bridge, kwargs):
    answer = client.post("/api/v1/outcomes", **kwargs)
    assert answer.status_code == 400 and answer.get_json()["error"]
    assert bridge.producer.produced == []


def test_kafka_not_acknowledging_is_a_503():
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"}, bridge=Bridge(fail=True),
                     stores=object(), start_consumer=False)
    answer = app.test_client().post("/api/v1/outcomes", json=GOOD)
    assert answer.status_code == 503 and "unavailable" in answer.get_json()["error"]


def test_the_openapi_document_describes_the_route_from_the_contract(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    post = spec["paths"]["/api/v1/outcomes"]["post"]
    one = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert set(one["required"]) == {"Carrier", "FlightNum", "Origin", "Dest", "FlightDate", "CRSDepTime"}
    assert {"DepDelay", "ArrDelay", "Cancelled", "Diverted", "outcome_id"} <= set(one["properties"])
    assert "IAH" in one["properties"]["Dest"]["enum"]
    assert {"202", "400", "503", "429"} <= set(post["responses"])
