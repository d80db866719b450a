"""The original platform's clients against the classic routes, without servers (a recording
bridge instead of Kafka); the same sequences run against the real stack in tests/e2e."""
import json
import threading
import uuid as uuidlib

import pytest

from flightdelay.reference import load_reference
from tests.unit.test_webapp import VALID, make_app, prediction_for
from webapp import parts
from webapp.classic import fill_missing_schedule
from webapp.predictions import deliver_prediction

# What the original page's jQuery sends: $("#flight_delay_classification").serialize()
ORIGINAL_FORM = "DepDelay=5&Carrier=AA&FlightDate=2016-12-25&Origin=JFK&Dest=ATL"
FORM = "application/x-www-form-urlencoded"
ORIGINAL_POST_HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
                         "X-Requested-With": "XMLHttpRequest", "Accept": "*/*"}


@pytest.fixture
def app():
    return make_app(WTF_CSRF_ENABLED=True, SYNC_WAIT_MAX_S=2.0)


@pytest.fixture
def client(app):
    return app.test_client()


def test_fill_missing_schedule_takes_the_routes_most_common_times():
    ref = load_reference()
    schedule = ref.typical_schedule("JFK", "ATL")
    filled_request, filled = fill_missing_schedule({"Origin": "jfk", "Dest": "ATL", "CRSArrTime": ""}, ref)
    assert (filled_request["CRSDepTime"], filled_request["CRSArrTime"]) == (schedule["CRSDepTime"],
                                                                            schedule["CRSArrTime"])
    assert set(filled) == {"CRSDepTime", "CRSArrTime"}
    assert "JFK-ATL" in filled["CRSDepTime"]["source"] and filled["CRSDepTime"]["value"] == schedule["CRSDepTime"]


def test_fill_missing_schedule_keeps_what_the_client_sent_and_skips_unknown_routes():
    ref = load_reference()
    kept, filled = fill_missing_schedule({"Origin": "JFK", "Dest": "ATL", "CRSDepTime": "0700"}, ref)
    assert kept["CRSDepTime"] == "0700" and set(filled) == {"CRSArrTime"}
    unknown, filled = fill_missing_schedule({"Origin": "SFO", "Dest": "ATL"}, ref)
    assert filled == {} and "CRSDepTime" not in unknown


def test_original_page_post_and_poll_render_a_class(app, client):
    answer = client.post("/flights/delays/predict/classify_realtime", data=ORIGINAL_FORM,
                         headers=ORIGINAL_POST_HEADERS)
    assert answer.status_code == 202
    # The page runs JSON.parse on the response text: it must be JSON typed as text, not JSON.
    assert answer.mimetype == "text/plain"
    body = json.loads(answer.get_data(as_text=True))
    assert body["status"] == "OK" and str(uuidlib.UUID(body["id"])) == body["id"]
    [produced] = parts.of(app).bridge.published
    schedule = load_reference().typical_schedule("JFK", "ATL")
    assert (produced["CRSDepTime"], produced["CRSArrTime"]) == (schedule["CRSDepTime"], schedule["CRSArrTime"])
    assert set(body["filled"]) == {"CRSDepTime", "CRSArrTime"}

    poll = f"/flights/delays/predict/classify_realtime/response/{body['id']}"
    waiting = json.loads(client.get(poll).get_data(as_text=True))
    assert waiting == {"status": "WAIT", "id": body["id"]}
    deliver_prediction(app, prediction_for(body["id"], cls=3))
    done = json.loads(client.get(poll).get_data(as_text=True))
    assert done["status"] == "OK" and done["id"] == body["id"]
    assert done["prediction"]["Prediction"] == 3 and done["prediction"]["prediction"] == 3


def test_json_clients_of_the_classic_route_still_get_json(client):
    answer = client.post("/flights/delays/predict/classify_realtime", json=VALID)
    assert answer.status_code == 202 and answer.is_json and answer.get_json()["status"] == "OK"
    asked = client.post("/flights/delays/predict/classify_realtime", data=VALID, headers={"Accept": "application/json"})
    assert asked.is_json


def test_original_curl_test_gets_the_prediction_in_the_response(app, client):
    """curl -F (multipart) to the synchronous route, answered when the prediction arrives."""
    def answer_soon():
        for _ in range(200):
            published = parts.of(app).bridge.published
            if published:
                deliver_prediction(app, prediction_for(published[0]["UUID"], cls=1))
                return
            threading.Event().wait(0.01)

    responder = threading.Thread(target=answer_soon)
    responder.start()
    answer = client.post("/flights/delays/predict/classify", content_type="multipart/form-data",
                         data={"DepDelay": "5.0", "Carrier": "AA", "FlightDate": "2016-12-23", "Dest": "ATL",
                               "FlightNum": "1519", "Origin": "JFK"})
    responder.join()
    assert answer.status_code == 200
    body = json.loads(answer.get_data(as_text=True))
    assert body["status"] == "OK" and body["prediction"]["Prediction"] == 1


def test_synchronous_routes_answer_202_when_the_prediction_is_late(client):
    late = client.post("/flights/delays/predict/classify?wait=0.2", data=ORIGINAL_FORM, content_type=FORM)
    assert late.status_code == 202 and json.loads(late.get_data(as_text=True))["status"] == "WAIT"
    api = client.post("/api/v1/predictions?wait=0.2", json=VALID)
    assert api.status_code == 202 and api.get_json()["status"] == "pending"


def test_api_wait_returns_the_prediction_and_is_bounded(app, client):
    def answer_soon():
        for _ in range(200):
            published = parts.of(app).bridge.published
            if published:
                deliver_prediction(app, prediction_for(published[-1]["UUID"], cls=0))
                return
            threading.Event().wait(0.01)

    responder = threading.Thread(target=answer_soon)
    responder.start()
    answer = client.post("/api/v1/predictions?wait=1000", json=VALID)  # bounded to SYNC_WAIT_MAX_S
    responder.join()
    assert answer.status_code == 200 and answer.get_json()["prediction"]["prediction"] == 0
    assert "Prediction" not in answer.get_json()["prediction"]  # today's API is unchanged


def test_unknown_route_without_times_is_a_clear_400(client):
    answer = client.post("/flights/delays/predict/classify", data="DepDelay=5&Carrier=AA&FlightDate=2016-12-23"
                         "&Origin=SFO&Dest=ATL", content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400
    body = json.loads(answer.get_data(as_text=True))
    assert body["status"] == "ERROR" and "unknown route SFO-ATL" in body["fields"]["Dest"]
    assert "CRSDepTime" in body["fields"]  # nothing to fill it from


def test_every_submission_route_shares_one_rate_limit():
    client = make_app(RATELIMIT_DEFAULT="3 per minute", SYNC_WAIT_MAX_S=0.0).test_client()
    codes = [client.post("/api/v1/predictions", json=VALID).status_code,
             client.post("/flights/delays/predict/classify_realtime", data=ORIGINAL_FORM, content_type=FORM).status_code,
             client.post("/flights/delays/predict/classify", data=ORIGINAL_FORM, content_type=FORM).status_code,
             client.post("/flights/delays/predict/classify_realtime", json=VALID).status_code]
    assert codes == [202, 202, 202, 429]


def test_upper_case_uuid_finds_the_request(app, client):
    uuid = client.post("/api/v1/predictions", json=VALID).get_json()["uuid"]
    deliver_prediction(app, prediction_for(uuid))
    assert client.get(f"/api/v1/predictions/{uuid.upper()}").status_code == 200
    poll = client.get(f"/flights/delays/predict/classify_realtime/response/{uuid.upper()}")
    assert json.loads(poll.get_data(as_text=True))["status"] == "OK"
