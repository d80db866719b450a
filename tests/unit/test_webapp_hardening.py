"""Hostile and broken input over every path of the web app: always a clear 4xx or an error
ack, never a 500 or silence; security headers; one rate limit across HTTP and Socket.IO; a
request the streaming job dead-letters is reported instead of staying pending."""
import json

import pytest

from tests.unit.test_webapp import VALID, make_app, prediction_for
from webapp import parts, socketio
from webapp.pages import day_or_none, history_cursor, history_query
from webapp.predictions import deliver_prediction, deliver_rejection

HOSTILE_BODIES = {
    "deeply nested JSON": "[" * 6000 + "]" * 6000,
    "digit string past the int conversion limit": json.dumps(dict(VALID, CRSDepTime="9" * 5000)),
    "optional field past the limit": json.dumps(dict(VALID, FlightNum="9" * 5000)),
    "huge JSON integer": '{"Carrier": "UA", "CRSDepTime": ' + "9" * 5000 + "}",
    "NaN": '{"DepDelay": NaN}',
    "Arabic-Indic digits": json.dumps(dict(VALID, DepDelay="\u0661\u0662")),
    "full-width date": json.dumps(dict(VALID, FlightDate="\uff12\uff10\uff11\uff13-01-03")),
    "underscore number": json.dumps(dict(VALID, DepDelay="1_0")),
    "list": "[1, 2]",
    "string": '"UA"',
    "binary garbage": b"\xff\xfe\x00\x81garbage",
    "huge integer DepDelay": json.dumps(dict(VALID, DepDelay=10 ** 400)),
}


@pytest.fixture
def app():
    return make_app(RATELIMIT_DEFAULT="1000 per minute")


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
@pytest.mark.parametrize("path", ["/api/v1/predictions", "/flights/delays/predict/classify_realtime",
                                  "/flights/delays/predict/classify?wait=0"])
def test_hostile_bodies_get_a_clear_400_over_http(app, path, name):
    answer = app.test_client().post(path, data=HOSTILE_BODIES[name], content_type="application/json")
    assert answer.status_code == 400, answer.data[:300]
    assert "error" in json.loads(answer.data)
    assert parts.of(app).bridge.published == []


# Over the socket the browser sends parsed JSON; these cannot be a JS value (or not an object).
NOT_SOCKET_PAYLOADS = {"deeply nested JSON", "binary garbage", "huge JSON integer", "NaN", "list", "string",
                       "huge integer DepDelay"}


@pytest.mark.parametrize("name", sorted(set(HOSTILE_BODIES) - NOT_SOCKET_PAYLOADS))
def test_hostile_fields_get_field_errors_over_the_socket(app, name):
    ack = socketio.test_client(app).emit("predict", json.loads(HOSTILE_BODIES[name]), callback=True)
    assert ack["fields"], ack
    assert parts.of(app).bridge.published == []


@pytest.mark.parametrize("payload", [None, 42, "x", [1], {"uuid": {"a": 1}}, {"uuid": ["x"]}, {"uuid": "nope"}])
def test_socket_events_always_answer(app, payload):
    client = socketio.test_client(app)
    assert "error" in client.emit("watch", payload, callback=True)
    if not isinstance(payload, dict):
        assert "error" in client.emit("predict", payload, callback=True)


def test_a_large_body_is_413_and_never_echoed(app):
    answer = app.test_client().post("/api/v1/predictions", data=json.dumps(dict(VALID, Carrier="X" * 10_000_000)),
                                    content_type="application/json")
    assert answer.status_code == 413 and len(answer.data) < 300


def test_error_messages_quote_only_a_prefix_of_a_bad_value(app):
    answer = app.test_client().post("/api/v1/predictions", json=dict(VALID, Carrier="X" * 15_000))
    assert answer.status_code == 400
    assert len(answer.data) < 500 and "15002 characters" in answer.get_json()["fields"]["Carrier"]


def test_security_headers_and_cookie(app):
    client = app.test_client()
    page = client.get("/")
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert header in page.headers, header
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.get_data(as_text=True)  # no inline script for the CSP to block
    assert client.post("/api/v1/predictions", json=VALID).headers["X-Content-Type-Options"] == "nosniff"
    cookie = page.headers.get("Set-Cookie", "")
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie


def test_socket_and_http_share_one_rate_limit():
    app = make_app(RATELIMIT_DEFAULT="2 per minute")
    http = app.test_client()  # the socket shares its environ: the same client address
    socket = socketio.test_client(app, flask_test_client=http)
    assert "uuid" in socket.emit("predict", VALID, callback=True)
    assert http.post("/api/v1/predictions", json=VALID).status_code == 202
    over = socket.emit("predict", VALID, callback=True)
    assert "too many requests" in over["error"] and over["retry_after"] >= 1
    refused = http.post("/api/v1/predictions", json=VALID)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_a_dead_lettered_request_is_reported_not_left_pending(app):
    socket = socketio.test_client(app)
    uuid = socket.emit("predict", VALID, callback=True)["uuid"]
    client = app.test_client()
    assert client.get(f"/api/v1/predictions/{uuid}").status_code == 202
    assert deliver_rejection(app, {"uuid": uuid, "reason": "Dest: unknown route", "fields": {"Dest": "unknown"}})
    answer = client.get(f"/api/v1/predictions/{uuid}")
    assert answer.status_code == 422 and answer.get_json()["error"] == "Dest: unknown route"
    [event] = [m for m in socket.get_received() if m["name"] == "rejected"]
    assert event["args"][0]["reason"] == "Dest: unknown route"
    # Dead letters of requests this process never produced are not its business.
    assert not deliver_rejection(app, {"uuid": "0" * 8 + "-0000-0000-0000-" + "0" * 12, "reason": "x"})


def test_a_late_prediction_after_a_rejection_is_still_ignored_by_the_lookup(app):
    uuid = app.test_client().post("/api/v1/predictions", json=VALID).get_json()["uuid"]
    deliver_rejection(app, {"uuid": uuid, "reason": "no", "fields": {}})
    deliver_prediction(app, prediction_for(uuid))
    assert app.test_client().get(f"/api/v1/predictions/{uuid}").status_code == 422


@pytest.mark.parametrize("raw, cursor", [
    (None, None), ("", None), ("x", None), ("1700000000000_", (1700000000000, "")),
    ("1700000000000_0b1c-9f", (1700000000000, "0b1c-9f")), ("\u0663_ab", None), ("-5_ab", None),
    ("9" * 30 + "_ab", None), ("17_ab'; drop", None)])
def test_history_cursors_are_parsed_or_ignored(raw, cursor):
    assert history_cursor(raw) == cursor


@pytest.mark.parametrize("raw, day", [("2026-11-28", "2026-11-28"), ("2026-02-30", None), ("28/11/2026", None),
                                      ("", None), ("\u0662026-11-28", None)])
def test_history_date_bounds_are_days_or_nothing(raw, day):
    assert day_or_none(raw) == day


def test_history_query_keeps_known_filters_and_a_numeric_class():
    query = history_query({"Route": "JFK-LAX", "Carrier": "", "prediction": "3", "from": "2026-11-01",
                           "to": "nope", "unknown": "x"}, "1700000000000_ab")
    assert query.filters == {"Route": "JFK-LAX", "prediction": 3}
    assert (query.date_from, query.date_to, query.before) == ("2026-11-01", None, (1700000000000, "ab"))
    assert history_query({"prediction": "three"}, None).filters == {}


# -- duplicate keys, malformed Socket.IO frames, the server's admission (webapp/frames.py, server.py)
def test_a_json_body_with_a_repeated_key_is_refused_naming_it(app):
    for path in ("/api/v1/predictions", "/flights/delays/predict/classify_realtime"):
        body = json.dumps(VALID)[:-1] + ', "Carrier": "AA"}'
        answer = app.test_client().post(path, data=body, content_type="application/json")
        assert answer.status_code == 400, answer.data
        assert 'duplicate key "Carrier"' in answer.get_json()["error"]
    assert parts.of(app).bridge.published == []


# Socket.IO packets as the server decodes them (the websocket frame adds Engine.IO's "4" before):
# type 2 (event), the ack id, the JSON.
MALFORMED_FRAMES = {
    "truncated JSON": ('21["predict",{"Carrier":', "not valid Socket.IO JSON"),
    "deep nesting": ("22" + "[" * 3000 + "]" * 3000, "nests too deeply"),
    "an event that is not a list": ('23{"a": 1}', "a list starting with its name"),
    "a repeated key": ('24["predict",{"Carrier":"AA","Carrier":"UA"}]', 'duplicate key "Carrier"'),
    "over the message limit": ('25["predict",{"x":"' + "a" * 17000 + '"}]', "larger than 16384 bytes"),
    "an unknown packet type": ('9["x"]', "unknown packet type"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_FRAMES))
def test_malformed_frames_decode_to_an_error_event_keeping_the_ack_id(name):
    from socketio import packet

    from webapp.frames import MALFORMED, packet_class

    frame, reason = MALFORMED_FRAMES[name]
    decoded = packet_class(16384)(encoded_packet=frame)
    assert decoded.packet_type == packet.EVENT and decoded.data[0] == MALFORMED
    assert reason in decoded.data[1]
    assert decoded.id == (int(frame[1]) if frame[0] == "2" else None)


def test_malformed_and_unknown_events_get_an_error_ack_over_the_socket(app):
    from webapp.frames import MALFORMED

    client = socketio.test_client(app)
    ack = client.emit(MALFORMED, "the message nests too deeply", callback=True)
    assert ack == {"error": "the message nests too deeply", "fields": {}}
    assert "unknown event" in client.emit("nope", {}, callback=True)["error"]
    assert "uuid" in client.emit("predict", VALID, "extra", callback=True)  # a stray argument is not a crash


def test_repeated_client_errors_are_summed_up_not_logged_one_by_one(caplog):
    from webapp.client_errors import ClientErrors

    now = [0.0]
    errors = ClientErrors(window_s=60, clock=lambda: now[0])
    written = [errors.note("1.2.3.4", "malformed Socket.IO message", "x") for _ in range(50)]
    assert written == [True] + [False] * 49
    assert errors.note("5.6.7.8", "malformed Socket.IO message", "x")  # another client: its own line
    now[0] = 61
    assert errors.note("1.2.3.4", "malformed Socket.IO message", "x")
    assert "49 more like it" in caplog.records[-1].getMessage()


def test_admission_caps_connections_per_address_and_in_all():
    from webapp.server import Admission, refusal

    admission = Admission(per_client=2, total=3)
    assert [admission.enter("a"), admission.enter("a"), admission.enter("a")] == [None, None, "client"]
    assert admission.enter("b") is None and admission.enter("c") == "full"
    admission.leave("a")
    assert admission.enter("c") is None and admission.open == {"a": 1, "b": 1, "c": 1}
    answer = refusal("client", admission, "a")
    assert answer.startswith(b"HTTP/1.1 429 ") and b"at most 2 at once" in answer
    assert refusal("full", admission, "a").startswith(b"HTTP/1.1 503 ")


def test_bodies_are_read_whole_before_the_app_and_bounded():
    import io

    from webapp.server import BodyDeadline

    seen = {}

    def app(environ, start_response):
        seen["body"] = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"ok"]

    def call(body: bytes, **headers):
        status = []
        environ = {"wsgi.input": io.BytesIO(body), "REQUEST_METHOD": "POST", **headers}
        out = b"".join(BodyDeadline(app, limit=10, timeout_s=1)(environ, lambda s, h: status.append(s)))
        return status[0], out

    assert call(b"12345", CONTENT_LENGTH="5") == ("200 OK", b"ok") and seen["body"] == b"12345"
    assert call(b"x" * 50, CONTENT_LENGTH="50")[0].startswith("413")
    assert call(b"x" * 50, HTTP_TRANSFER_ENCODING="chunked")[0].startswith("413")
    assert call(b"abc", HTTP_TRANSFER_ENCODING="chunked") == ("200 OK", b"ok") and seen["body"] == b"abc"


GEVENT_BRIDGE = """
from gevent import monkey; monkey.patch_all()
import json, time, gevent, confluent_kafka
from webapp.bridge import GeventThreads
threads, got, ticks = GeventThreads(), [], []

def blocking():  # what the Kafka loops do: block in C (no broker at port 1)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "t", "log_level": 0})
    consumer.poll(1.5)
    threads.to_server(got.append, "handed to the loop")

def ticker():
    for _ in range(40):
        ticks.append(time.monotonic())
        gevent.sleep(0.05)

ticking = gevent.spawn(ticker)
gevent.sleep(0.2)  # ticking
threads.start(blocking, "kafka")
ticking.join()
while not got:
    gevent.sleep(0.05)
print(json.dumps({"gap": max(b - a for a, b in zip(ticks, ticks[1:])), "got": got}))
"""


def test_the_kafka_bridge_blocks_in_a_real_thread_not_the_gevent_loop():
    """Under gevent, a Kafka poll run on the server's loop would stop every connection for its
    whole timeout; in gevent's thread pool the loop keeps serving and gets the result handed over."""
    import subprocess
    import sys

    from flightdelay.config import REPO_ROOT

    out = subprocess.run([sys.executable, "-c", GEVENT_BRIDGE], capture_output=True, text=True, cwd=REPO_ROOT,
                         timeout=60, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["got"] == ["handed to the loop"]
    assert figures["gap"] < 0.5, figures  # the loop never stopped for the 1.5 s poll
