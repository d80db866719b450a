"""The original platform's clients, unchanged, against the whole running stack: its page's form
post + one-second polling, and its curl API test (synchronous route). Through Kafka and the
streaming job like every other request."""
import json
import subprocess

import requests

from harness.wait import wait_for

# Byte for byte what the original page's jQuery sends ($.post(url, $(form).serialize())).
ORIGINAL_FORM = "DepDelay=5&Carrier=AA&FlightDate=2016-12-25&Origin=JFK&Dest=ATL"
ORIGINAL_HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
                    "X-Requested-With": "XMLHttpRequest", "Accept": "*/*"}
# The original page's texts for the four classes of its renderPage().
RENDERED = {0: "Early (15+ Minutes Early)", 1: "Slightly Early (0-15 Minute Early)",
            2: "Slightly Late (0-30 Minute Delay)", 3: "Very Late (30+ Minutes Late)"}


def base(platform):
    return f"http://{platform.host}:{platform.webapp_port}"


def test_original_page_post_and_poll_render_a_class(platform):
    session = requests.Session()
    session.trust_env = False
    posted = session.post(base(platform) + "/flights/delays/predict/classify_realtime", data=ORIGINAL_FORM,
                          headers=ORIGINAL_HEADERS, timeout=15)
    assert posted.headers["Content-Type"].startswith("text/plain")  # JSON.parse(data) needs text
    response = json.loads(posted.text)
    assert response["status"] == "OK"

    def answered():  # the original polls every second until status is no longer WAIT
        polled = json.loads(session.get(base(platform) + "/flights/delays/predict/classify_realtime/response/"
                                        + response["id"], timeout=15).text)
        return polled if polled["status"] != "WAIT" else None

    polled = wait_for(answered, 60, f"the original page's poll of {response['id']}", interval=1)
    assert polled["status"] == "OK", polled
    assert RENDERED[int(polled["prediction"]["Prediction"])]
    assert polled["prediction"]["Route"] == "JFK-ATL"


def test_original_curl_test_gets_the_prediction_in_the_response(platform):
    out = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-XPOST", base(platform) + "/flights/delays/predict/classify",
         "-F", "DepDelay=5.0", "-F", "Carrier=AA", "-F", "FlightDate=2016-12-23", "-F", "Dest=ATL",
         "-F", "FlightNum=1519", "-F", "Origin=JFK"], capture_output=True, text=True, timeout=60, check=True)
    answer = json.loads(out.stdout)
    assert answer["status"] == "OK", answer
    assert answer["prediction"]["Prediction"] in RENDERED
    assert answer["prediction"]["FlightNum"] == 1519
    assert set(answer["filled"]) == {"CRSDepTime", "CRSArrTime"}


def test_json_client_of_todays_api_sees_no_change(platform):
    session = requests.Session()
    session.trust_env = False
    flight = {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-12-24",
              "CRSDepTime": 529, "CRSArrTime": 830, "DepDelay": 45}
    created = session.post(base(platform) + "/api/v1/predictions", json=flight, timeout=15)
    assert created.status_code == 202 and created.headers["Content-Type"] == "application/json"
    assert set(created.json()) == {"uuid", "status", "result_url"}
    result_url = base(platform) + created.json()["result_url"]
    got = wait_for(lambda: (r := session.get(result_url, timeout=15)).status_code != 202 and r, 60,
                   f"the prediction at {result_url}", interval=0.5)
    assert got.status_code == 200 and got.json()["status"] == "done"
    assert "Prediction" not in got.json()["prediction"] and got.json()["prediction"]["prediction"] in RENDERED
