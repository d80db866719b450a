"""What the web app's one event loop does per submission, kept small (docs/decisions.md, the
browser path on gevent): the rate limit's moving window without timer threads, the session
cookie opened once per Socket.IO connection, the CSRF token checked once per connection, the
response consumer handing the loop a batch of records at a time."""
import re
import threading

import pytest
from flask.sessions import SecureCookieSessionInterface

from flightdelay.config import load_settings
from tests.unit.test_webapp import VALID, make_app, prediction_for
from webapp import events, limits, parts, socketio
from webapp.bridge import KafkaBridge, OsThreads
from webapp.predictions import answer_is_awaited, deliver_prediction


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(limits.time, "monotonic", clock)
    return clock


def test_the_rate_limit_is_a_moving_window_per_client(clock):
    limit = limits.SubmissionLimit("3 per minute")
    for _ in range(3):
        assert limit.retry_after("a") is None
        clock.now += 10
    assert limit.retry_after("a") == 30  # the first of the three leaves the window 60 s after it came
    assert limit.retry_after("b") is None  # another client has a window of its own
    clock.now += 30
    assert limit.retry_after("a") is None  # one slot free again, not the whole window
    assert limit.retry_after("a") == 10


def test_clients_whose_window_emptied_are_forgotten(clock, monkeypatch):
    monkeypatch.setattr(limits, "SWEEP_EVERY", 5)
    limit = limits.SubmissionLimit("600 per minute")
    for client in ("a", "b", "c"):
        limit.retry_after(client)
    clock.now += 61
    limit.retry_after("d")
    limit.retry_after("d")  # the fifth hit since the last sweep: a, b and c are gone
    assert set(limit._hits) == {"d"}


@pytest.fixture
def page_client(monkeypatch):
    """An app checking CSRF tokens, a browser that loaded the page (cookie + token), and a count
    of the times a session cookie was verified."""
    opened = []
    verify = SecureCookieSessionInterface.open_session

    def counting(self, app, request):
        opened.append(request.path)
        return verify(self, app, request)

    monkeypatch.setattr(SecureCookieSessionInterface, "open_session", counting)
    app = make_app(WTF_CSRF_ENABLED=True)
    http = app.test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/").get_data(as_text=True)).group(1)
    return app, http, token, opened


def test_a_socket_connection_opens_its_session_cookie_once(page_client):
    app, http, token, opened = page_client
    socket = socketio.test_client(app, flask_test_client=http)
    opened.clear()
    for _ in range(3):
        assert "uuid" in socket.emit("predict", dict(VALID, csrf_token=token), callback=True)
    assert len(opened) <= 1  # the connection's environ keeps the session it opened
    http.get("/")
    http.get("/")
    assert len(opened) == 3  # every HTTP request still opens its own cookie


def test_the_csrf_token_is_checked_once_per_connection_and_a_wrong_one_is_still_refused(page_client, monkeypatch):
    app, http, token, _ = page_client
    checked = []
    check = events.validate_csrf
    monkeypatch.setattr(events, "validate_csrf", lambda t: (checked.append(t), check(t))[1])
    socket = socketio.test_client(app, flask_test_client=http)
    for _ in range(3):
        assert "uuid" in socket.emit("predict", dict(VALID, csrf_token=token), callback=True)
    assert checked == [token]
    for wrong in ("forged", None, token + "x"):
        answer = socket.emit("predict", dict(VALID, csrf_token=wrong), callback=True)
        assert "expired" in answer["error"] and "uuid" not in answer
    other = socketio.test_client(make_app(WTF_CSRF_ENABLED=True))  # another browser, without the page's cookie
    assert "expired" in other.emit("predict", dict(VALID, csrf_token=token), callback=True)["error"]


class Message:
    def __init__(self, topic, value, key=b"k", error=None):
        self._topic, self._value, self._key, self._error = topic, value, key, error

    def topic(self):
        return self._topic

    def value(self):
        return self._value

    def key(self):
        return self._key

    def offset(self):
        return 7

    def error(self):
        return self._error


class BatchConsumer:
    """Hands out its batches as librdkafka would once each is fetched: ``poll`` the first
    message, ``consume`` what is left of the batch; then stops the bridge."""

    def __init__(self, bridge, batches):
        self.bridge, self.batches, self.calls, self.waits = bridge, list(batches), [], []

    def poll(self, timeout):
        if not self.batches:
            self.bridge.stop()
            return None
        return self.batches[0].pop(0)

    def consume(self, num_messages, timeout):
        self.calls.append(num_messages)
        self.waits.append(timeout)
        rest = self.batches.pop(0)
        return rest[:num_messages]


def test_the_response_consumer_hands_over_what_each_poll_got_at_once():
    s = load_settings()
    bridge = KafkaBridge(s, producer=object(), threads=OsThreads())
    uuid = "0b1c9f2e-0000-4000-8000-000000000001"
    batch = [Message(s.response_topic, b'{"UUID": "a"}'), Message(s.response_topic, b"not json"),
             Message(s.response_topic, b"[1]"), Message(s.response_topic, None, error="broker says no"),
             Message(s.dlq_topic, b'{"reason": "unknown route", "fields": {"Dest": "no"}}', key=uuid.encode()),
             Message(s.response_topic, b'{"UUID": "b"}')]
    consumer = BatchConsumer(bridge, [batch, [Message(s.response_topic, b'{"UUID": "c"}')]])
    handed = []
    bridge._poll_loop(consumer, handed.append)
    assert handed == [[("prediction", {"UUID": "a"}),
                       ("rejection", {"uuid": uuid, "reason": "unknown route", "fields": {"Dest": "no"}}),
                       ("prediction", {"UUID": "b"})],
                      [("prediction", {"UUID": "c"})]]
    assert consumer.calls[0] > 1  # many messages a call, not one
    # consume(n, timeout) waits for n messages or the timeout: only poll may wait for the first
    assert consumer.waits == [0, 0]


def test_answers_to_keys_nobody_here_wants_are_passed_over_undecoded():
    s = load_settings()
    bridge = KafkaBridge(s, producer=object(), threads=OsThreads())
    mine, theirs = "0b1c9f2e-0000-4000-8000-000000000002", "0b1c9f2e-0000-4000-8000-000000000003"
    asked = []

    def wanted(uuid):
        asked.append(uuid)
        return uuid == mine

    batch = [Message(s.response_topic, b'{"UUID": "%s"}' % theirs.encode(), key=theirs.encode()),
             Message(s.response_topic, b'{"UUID": "%s"}' % mine.encode(), key=mine.encode()),
             Message(s.dlq_topic, b'{"reason": "not mine"}', key=theirs.encode()),
             Message(s.dlq_topic, b'{"reason": "unknown route"}', key=mine.encode()),
             Message(s.response_topic, b'{"UUID": "unkeyed"}', key=None)]  # no key: nothing to judge it by
    consumer = BatchConsumer(bridge, [batch])
    handed = []
    bridge._poll_loop(consumer, handed.append, wanted)
    assert handed == [[("prediction", {"UUID": mine}),
                       ("rejection", {"uuid": mine, "reason": "unknown route", "fields": {}}),
                       ("prediction", {"UUID": "unkeyed"})]]
    assert asked == [theirs, mine, theirs, mine]


def test_the_web_app_awaits_the_answers_it_produced_and_those_watched():
    app = make_app()
    results = parts.of(app).results
    socket = socketio.test_client(app)
    uuid = socket.emit("predict", VALID, callback=True)["uuid"]
    assert answer_is_awaited(results, uuid)  # produced here, pending
    assert not answer_is_awaited(results, "0b1c9f2e-0000-4000-8000-000000000004")  # another's, unwatched
    other = "0b1c9f2e-0000-4000-8000-000000000005"
    socketio.test_client(app).emit("watch", {"uuid": other}, callback=True)
    assert answer_is_awaited(results, other)  # produced elsewhere, watched by a client of this process


def test_a_record_that_fails_to_deliver_does_not_lose_the_rest_of_its_batch(monkeypatch):
    bridge = KafkaBridge(load_settings(), producer=object(), threads=OsThreads())
    done = threading.Event()
    monkeypatch.setattr(bridge, "consume_responses", lambda on_batch, rejections, wanted=None: (on_batch(
        [("prediction", {"UUID": "bad"}), ("prediction", {"UUID": "good"}), ("rejection", {"uuid": "r"})]),
        done.set()))
    delivered = []

    def on_prediction(record):
        if record["UUID"] == "bad":
            raise KeyError("model_version")
        delivered.append(record)

    bridge.start_consumer(on_prediction, delivered.append)
    assert done.wait(5)
    assert delivered == [{"UUID": "good"}, {"uuid": "r"}]


class InlineThreads(OsThreads):
    def start(self, target, name):
        target()


def test_a_prediction_reaches_its_room_through_a_batch():
    app = make_app()
    socket = socketio.test_client(app)
    uuid = socket.emit("predict", VALID, callback=True)["uuid"]
    bridge = KafkaBridge(parts.of(app).settings, producer=object(), threads=InlineThreads())
    bridge.consume_responses = lambda on_batch, rejections, wanted=None: on_batch([("prediction", prediction_for(uuid))])
    delivered = []
    bridge.start_consumer(lambda p: delivered.append(deliver_prediction(app, p)))
    assert delivered == [True]
    assert [m["args"][0]["UUID"] for m in socket.get_received() if m["name"] == "prediction"] == [uuid]
