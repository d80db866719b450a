"""The web app without servers: a recording bridge instead of Kafka, a dict instead of MongoDB."""
import json
import threading
import time
import uuid as uuidlib

import pytest

from flightdelay.config import load_settings
from webapp import create_app, parts, socketio
from webapp.predictions import deliver_prediction, deliver_rejection

VALID = {"Carrier": "UA", "Origin": "EWR", "Dest": "IAH", "FlightDate": "2013-01-03",
         "CRSDepTime": "0529", "CRSArrTime": "830", "DepDelay": "-3", "FlightNum": ""}


class RecordingBridge:
    def __init__(self, fail=False):
        self.published = []
        self.fail = fail

    def publish_request(self, request):
        if self.fail:
            raise RuntimeError("broker down")
        self.published.append(request)

    def consume_responses(self, on_prediction):  # not started in unit tests
        raise AssertionError("no consumer in unit tests")


class DictStores:
    def __init__(self):
        self.docs = {}

    def prediction(self, uuid):
        return self.docs.get(uuid)


def make_app(bridge=None, **config):
    cfg = {"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"}
    cfg.update(config)
    return create_app(cfg, bridge=bridge or RecordingBridge(), stores=DictStores(), start_consumer=False)


def prediction_for(uuid, cls=2):
    return {"UUID": uuid, "prediction": cls, "label": "slightly late (0-30 min)",
            "probabilities": [0.1, 0.2, 0.6, 0.1], "model_name": "flight_delay_rf", "model_version": "3"}


@pytest.fixture
def app():
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def test_api_accepts_a_valid_request_and_produces_it_typed(app, client):
    answer = client.post("/api/v1/predictions", json=VALID)
    assert answer.status_code == 202
    body = answer.get_json()
    uuid = body["uuid"]
    assert str(uuidlib.UUID(uuid)) == uuid
    [request] = parts.of(app).bridge.published
    assert request["UUID"] == uuid and isinstance(request["requested_at"], int)
    assert (request["CRSDepTime"], request["CRSArrTime"], request["DepDelay"]) == (529, 830, -3.0)
    assert request["FlightNum"] is None


def test_api_rejects_bad_fields_with_messages_and_produces_nothing(app, client):
    bad = dict(VALID, Carrier="", CRSDepTime="2561", Dest="LAX", Origin="LGA")
    answer = client.post("/api/v1/predictions", json=dict(bad, Dest="HNL"))
    assert answer.status_code == 400
    body = answer.get_json()
    assert set(body["fields"]) == {"Carrier", "CRSDepTime", "Dest"}
    assert "unknown route" in body["fields"]["Dest"]
    assert parts.of(app).bridge.published == []


@pytest.mark.parametrize("kwargs", [{"data": "not json", "content_type": "application/json"},
                                    {"json": [1, 2]}, {}])
def test_api_rejects_non_objects(client, kwargs):
    answer = client.post("/api/v1/predictions", **kwargs)
    assert answer.status_code == 400
    assert "error" in answer.get_json()


def test_kafka_down_is_a_503_not_a_crash():
    client = make_app(bridge=RecordingBridge(fail=True)).test_client()
    answer = client.post("/api/v1/predictions", json=VALID)
    assert answer.status_code == 503
    assert "unavailable" in answer.get_json()["error"]


def test_result_lookup_pending_done_unknown(app, client):
    uuid = client.post("/api/v1/predictions", json=VALID).get_json()["uuid"]
    assert client.get(f"/api/v1/predictions/{uuid}").status_code == 202
    deliver_prediction(app, prediction_for(uuid))
    done = client.get(f"/api/v1/predictions/{uuid}")
    assert done.status_code == 200 and done.get_json()["prediction"]["prediction"] == 2
    assert client.get(f"/api/v1/predictions/{uuidlib.uuid4()}").status_code == 404
    assert client.get("/api/v1/predictions/not-a-uuid").status_code == 404


def test_an_answer_faster_than_the_post_still_gets_202_without_wait():
    """A warm pipeline can answer before the POST returns (CI, 2026-12-07: the replay got a 200
    and stopped); without ?wait the contract is 202 whatever the race."""
    app = None

    class InstantBridge(RecordingBridge):
        def publish_request(self, request):
            super().publish_request(request)
            deliver_prediction(app, prediction_for(request["UUID"]))

    app = make_app(bridge=InstantBridge())
    client = app.test_client()
    answer = client.post("/api/v1/predictions", json=VALID)
    assert answer.status_code == 202 and answer.get_json()["status"] == "pending"
    uuid = answer.get_json()["uuid"]
    assert client.get(f"/api/v1/predictions/{uuid}").status_code == 200
    assert client.post("/api/v1/predictions?wait=1", json=VALID).status_code == 200


def test_result_found_in_mongo_after_a_restart(app, client):
    uuid = str(uuidlib.uuid4())
    parts.of(app).stores.docs[uuid] = prediction_for(uuid, cls=0)
    assert client.get(f"/api/v1/predictions/{uuid}").get_json()["prediction"]["prediction"] == 0


def test_each_socket_gets_only_its_own_prediction(app):
    first = socketio.test_client(app)
    second = socketio.test_client(app)
    ack1 = first.emit("predict", VALID, callback=True)
    ack2 = second.emit("predict", dict(VALID, DepDelay="90"), callback=True)
    assert "uuid" in ack1 and "uuid" in ack2 and ack1["uuid"] != ack2["uuid"]
    deliver_prediction(app, prediction_for(ack1["uuid"], cls=0))
    deliver_prediction(app, prediction_for(ack2["uuid"], cls=3))
    got1 = [m["args"][0] for m in first.get_received() if m["name"] == "prediction"]
    got2 = [m["args"][0] for m in second.get_received() if m["name"] == "prediction"]
    assert [p["UUID"] for p in got1] == [ack1["uuid"]]
    assert [p["UUID"] for p in got2] == [ack2["uuid"]]
    # A duplicate delivery (at-least-once Kafka sink) is not pushed again.
    assert deliver_prediction(app, prediction_for(ack1["uuid"], cls=0)) is False
    assert not [m for m in first.get_received() if m["name"] == "prediction"]


def request_rooms():
    """The Socket.IO rooms named by a request UUID (not the room every client has of its own sid)."""
    manager = socketio.server.manager
    return {room for room in manager.rooms.get("/", {}) if room is not None and not manager.is_sid_room("/", room)}


def test_a_room_is_closed_once_its_answer_is_delivered(app):
    first, second = socketio.test_client(app), socketio.test_client(app)
    done = first.emit("predict", VALID, callback=True)["uuid"]
    refused = second.emit("predict", VALID, callback=True)["uuid"]
    assert request_rooms() == {done, refused}
    deliver_prediction(app, prediction_for(done))
    assert request_rooms() == {refused}
    assert deliver_rejection(app, {"uuid": refused, "reason": "Dest: unknown route", "fields": {}})
    assert request_rooms() == set()
    assert [m["name"] for m in first.get_received()] == ["prediction"]  # the answer went out before
    assert [m["name"] for m in second.get_received()] == ["rejected"]


def test_a_client_that_goes_away_leaves_its_rooms(app):
    leaving, staying = socketio.test_client(app), socketio.test_client(app)
    pending = leaving.emit("predict", VALID, callback=True)["uuid"]
    unknown = str(uuidlib.uuid4())                       # watched, never answered here
    assert leaving.emit("watch", {"uuid": unknown}, callback=True)["status"] == "unknown"
    kept = staying.emit("predict", VALID, callback=True)["uuid"]
    assert request_rooms() == {pending, unknown, kept}
    leaving.disconnect()
    assert request_rooms() == {kept}
    # A connection lost without a goodbye (closed tab, network): the transport's disconnect.
    socketio.server._handle_eio_disconnect(staying.eio_sid, "transport close")
    assert request_rooms() == set()


def test_watching_an_answered_request_holds_no_room(app):
    uuid = app.test_client().post("/api/v1/predictions", json=VALID).get_json()["uuid"]
    watcher = socketio.test_client(app)
    assert watcher.emit("watch", {"uuid": uuid}, callback=True)["status"] == "pending"
    assert request_rooms() == {uuid}                    # waiting: it stays until the answer
    deliver_prediction(app, prediction_for(uuid))
    assert request_rooms() == set()
    late = socketio.test_client(app)                    # e.g. a page reloaded after the answer
    ack = late.emit("watch", {"uuid": uuid}, callback=True)
    assert ack["status"] == "done" and ack["prediction"]["UUID"] == uuid
    assert request_rooms() == set()
    stored = str(uuidlib.uuid4())                       # answered before a restart: found in MongoDB
    parts.of(app).stores.docs[stored] = prediction_for(stored)
    assert late.emit("watch", {"uuid": stored}, callback=True)["status"] == "done"
    refused = app.test_client().post("/api/v1/predictions", json=VALID).get_json()["uuid"]
    deliver_rejection(app, {"uuid": refused, "reason": "Dest: unknown route", "fields": {}})
    assert late.emit("watch", {"uuid": refused}, callback=True)["status"] == "rejected"
    assert request_rooms() == set()


def test_a_request_kafka_did_not_take_holds_no_room():
    app = make_app(bridge=RecordingBridge(fail=True))
    ack = socketio.test_client(app).emit("predict", VALID, callback=True)
    assert "unavailable" in ack["error"]
    assert request_rooms() == set()


def test_socket_validation_errors_come_back_in_the_ack(app):
    client = socketio.test_client(app)
    ack = client.emit("predict", dict(VALID, FlightDate="2013-02-30"), callback=True)
    assert "FlightDate" in ack["fields"]
    assert parts.of(app).bridge.published == []


def test_socket_needs_the_csrf_token_when_csrf_is_on():
    app = make_app(WTF_CSRF_ENABLED=True)
    client = socketio.test_client(app)
    ack = client.emit("predict", VALID, callback=True)
    assert "expired" in ack["error"]
    assert parts.of(app).bridge.published == []


def test_http_api_is_stateless_and_needs_no_csrf_token_but_the_socket_does():
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    assert client.post("/api/v1/predictions", json=VALID).status_code == 202
    assert client.post("/api/v1/predictions", data=VALID).status_code == 202
    assert client.post("/flights/delays/predict/classify_realtime", data=VALID).status_code == 202
    ack = socketio.test_client(app).emit("predict", VALID, callback=True)
    assert "expired" in ack["error"]


def test_rate_limit_on_the_api():
    client = make_app(RATELIMIT_DEFAULT="3 per minute").test_client()
    codes = [client.post("/api/v1/predictions", json=VALID).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]


def test_prediction_page_lists_carriers_airports_and_known_routes(client):
    page = client.get("/").get_data(as_text=True)
    assert 'value="UA"' in page and "United Air Lines" in page
    assert 'value="EWR"' in page and "Newark" in page
    assert '"EWR": [' in page  # the route table the page filters destinations with
    assert 'name="csrf_token"' in page


def test_the_page_waits_for_the_acknowledgement_as_long_as_the_server_does(client):
    """The browser's Socket.IO acknowledgement timeout follows FD_WEBAPP_PUBLISH_TIMEOUT_S: a
    fixed 10 s told the user "no answer" while the server still rode out a broker failover."""
    page = client.get("/").get_data(as_text=True)
    data = json.loads(page.split('<script id="fd-data" type="application/json">')[1].split("</script>")[0])
    assert data["publish_timeout_s"] == load_settings().webapp_publish_timeout_s
    script = client.get("/static/predict.js").get_data(as_text=True)
    assert "socket.timeout((data.publish_timeout_s + 5) * 1000)" in script


def test_a_produced_request_is_never_unknown_while_its_answer_arrives():
    from webapp.results import ResultStore

    store = ResultStore()
    uuids = [f"u{i}" for i in range(2000)]
    for u in uuids:
        store.mark_pending(u)
    assert store.outcome("u0") == ("pending", None) and store.outcome("other") == ("unknown", None)
    answering = threading.Thread(target=lambda: [store.record(u, {"UUID": u}) for u in uuids])
    answering.start()
    seen = {store.outcome(u)[0] for _ in range(3) for u in uuids}
    answering.join()
    assert "unknown" not in seen
    assert store.outcome("u1999") == ("done", {"UUID": "u1999"})
    store.reject("u5", {"reason": "bad"})
    assert store.outcome("u5") == ("rejected", {"reason": "bad"})


def test_model_page_formats_figures_and_says_when_mlflow_is_not_answering():
    class ModelStores(DictStores):
        def champion(self):
            return {"source": "shipped", "name": "flight_delay_rf", "version": "1", "run_id": None,
                    "metrics": {"holdout_rows": 8255.0, "holdout_accuracy": 0.61234567},
                    "params": {"inputCols": ",".join(f"feature_{i}" for i in range(60))}, "plots": [],
                    "registry_error": "MLflow is not answering (ConnectionRefusedError)"}

    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"}, bridge=RecordingBridge(),
                     stores=ModelStores(), start_consumer=False)
    page = app.test_client().get("/model").get_data(as_text=True)
    assert "8,255" in page and "8255.0000" not in page and "0.6123" in page
    assert "MLflow is not answering" in page
    assert 'class="data narrow wrap"' in page  # long values wrap on a phone (app.css)


def test_favicon_is_served(client):
    assert client.get("/favicon.ico").status_code == 200
    assert 'rel="icon"' in client.get("/").get_data(as_text=True)


def test_the_openapi_document_names_every_api_route_and_method(app):
    """Every route under /api/ and /flights/ (the original platform's), as the app registers it,
    is an operation of GET /api/v1/openapi.json (schemathesis then fuzzes all of them live)."""
    documented = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/flights/")):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in documented, path
        assert set(documented[path]) >= {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}, path


def test_openapi_bounds_and_enums_are_schema_keywords(client):
    import re

    flight = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/predictions"]["post"]["requestBody"]
    fields = flight["content"]["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert re.match(fields["Carrier"]["pattern"], "ua") and re.match(fields["Carrier"]["pattern"], "UA")
    assert not re.match(fields["Carrier"]["pattern"], "ZZ")
    number, text = fields["CRSDepTime"]["anyOf"]
    assert (number["minimum"], number["maximum"]) == (0, 2359)
    assert re.match(text["pattern"], "0529") and not re.match(text["pattern"], "0560")
    assert fields["DepDelay"]["anyOf"][0]["minimum"] == -120


def test_the_archive_page_never_counts_it_reads_what_the_background_counted(monkeypatch, tmp_path):
    """The archive's new files are counted by a background task (Stores.follow_archive); a page
    view reads its last figures and says how old they are, or that the first count is not done."""
    from flightdelay.config import load_settings
    from flightdelay.stores import parquet
    from webapp import stores as stores_module

    counted = []

    def summary(hdfs, s, budget_s=None, background_save=False):
        counted.append(budget_s)
        return {"per_day": {"2013-11-01": {0: 1, 1: 0, 2: 0, 3: 2}}, "per_class": {0: 1, 1: 0, 2: 0, 3: 2},
                "total": 3, "files": 1, "pending_files": 0, "path": "hdfs://x/archive", "saving": None}

    monkeypatch.setattr(parquet, "summary", summary)
    monkeypatch.setattr(parquet, "hdfs_client", lambda s, timeout=30.0: object())
    real = stores_module.Stores(load_settings(state_dir=str(tmp_path)))
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"}, bridge=RecordingBridge(),
                     stores=real, start_consumer=False)
    assert "counted for the first time" in app.test_client().get("/archive").get_data(as_text=True)
    real.refresh_archive()
    assert counted == [None]  # the background counts every new file, however many
    page = app.test_client().get("/archive").get_data(as_text=True)
    assert "3 predictions in 1 parquet file" in page and "counted 0 s ago" in page
    assert counted == [None]  # the page view counted nothing
    def hdfs_down(*args, **kwargs):
        raise ConnectionError("HDFS down")

    class OneRound(Exception):
        pass

    def sleep(seconds):
        raise OneRound

    monkeypatch.setattr(parquet, "summary", hdfs_down)
    with pytest.raises(OneRound):
        real.follow_archive(sleep)
    page = app.test_client().get("/archive").get_data(as_text=True)
    assert "3 predictions" in page and "HDFS archive could not be read (ConnectionError" in page


def test_work_handed_to_the_gevent_loop_may_wait():
    """What the Kafka threads hand to the server's loop runs where it may wait (a contended
    lock): in the loop's own callback, waiting raised BlockingSwitchOutError and the
    prediction's delivery was lost."""
    import gevent
    import gevent.lock

    from webapp.bridge import GeventThreads

    threads = GeventThreads()
    lock = gevent.lock.Semaphore()
    done, failed = [], []

    def deliver(value):
        try:
            with lock:  # held by the greenlet below when this runs
                done.append(value)
        except Exception as exc:
            failed.append(type(exc).__name__)

    def holder():
        with lock:
            threads.start(lambda: threads.to_server(deliver, 1), "kafka-like-thread")
            gevent.sleep(0.2)

    gevent.spawn(holder).join()
    deadline = time.monotonic() + 5
    while not (done or failed) and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert failed == [] and done == [1]


def test_answers_nobody_here_waits_for_are_skipped(app):
    """Every web process reads every answer; one to another producer's request (a bench, another
    web process) is neither kept nor emitted unless a client of this process watches it."""
    foreign, watched = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    watcher = socketio.test_client(app)
    assert watcher.emit("watch", {"uuid": watched}, callback=True)["status"] == "unknown"
    assert deliver_prediction(app, prediction_for(foreign)) is False
    assert parts.of(app).results.outcome(foreign) == ("unknown", None)
    assert deliver_prediction(app, prediction_for(watched)) is True
    assert [m["name"] for m in watcher.get_received()] == ["prediction"]
    mine = app.test_client().post("/api/v1/predictions", json=VALID).get_json()["uuid"]
    assert deliver_prediction(app, prediction_for(mine)) is True
    assert deliver_prediction(app, prediction_for(mine)) is False  # a repeat: recognised, not pushed again
