"""The drift monitor without servers: parsing the response topic's messages (malformed ones are
counted, never fatal), when a window closes, and the loop through a Cassandra outage (rows kept
and stored once it answers) with stand-ins for the store and the references."""
import json
import random

import pytest

from flightdelay import drift
from flightdelay.config import load_settings
from monitor.service import Backoff, Monitor
from monitor.windows import Malformed, Window, parse_prediction

CARRIERS = ["UA", "AA", "DL", "B6"]
ROUTES = ["EWR-IAH", "JFK-LAX", "LGA-ORD", "EWR-SFO"]


def prediction(rng, version="default", shift=0.0) -> dict:
    return {"UUID": "x", "Carrier": rng.choice(CARRIERS), "Route": rng.choice(ROUTES),
            "CRSDepTime": rng.randrange(6, 22) * 100, "DepDelay": float(round(rng.gauss(5, 20) + shift)),
            "prediction": rng.choice(range(4)), "model_name": "flight_delay_rf", "model_version": version}


class Msg:
    def __init__(self, value):
        self._value = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()

    def error(self):
        return None

    def value(self):
        return self._value

    def topic(self):
        return "resp"

    def partition(self):
        return 0

    def offset(self):
        return 0


class Book:
    """The reference of version 'default' only."""

    def __init__(self, reference):
        self.reference = reference

    def get(self, name, version):
        return (self.reference, "test") if version == "default" else None


class NoMetrics:
    """A Cassandra session without live metrics."""

    def prepare(self, query):
        return query

    def execute(self, query, parameters=None):
        return []


class Writer:
    """The window store, up unless ``down``."""

    def __init__(self, down=False):
        self.down, self.rows, self.resets, self.tries = down, [], 0, 0

    def session(self):
        if self.down:
            raise ConnectionError("Cassandra down")
        return NoMetrics()

    def write(self, rows):
        self.tries += 1
        self.session()
        self.rows += list(rows)

    def reset(self):
        self.resets += 1


@pytest.fixture(scope="module")
def reference():
    rng = random.Random(1)
    return drift.build_reference([prediction(rng) for _ in range(5000)], holdout_accuracy=0.5)


def monitor(reference, writer, **settings):
    s = load_settings({}, monitor_window_n=400, monitor_window_s=60.0, monitor_min_window=100, **settings)
    return Monitor(s, references=Book(reference), writer=writer)


def test_a_prediction_parses_and_anything_else_is_malformed():
    good = parse_prediction(json.dumps({"model_name": "m", "model_version": 3, "prediction": 2.0,
                                        "DepDelay": 5, "Carrier": "UA"}).encode())
    assert good["model_version"] == "3" and good["prediction"] == 2
    for bad in (None, b"", b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"',
                b'{"model_version": "1", "prediction": 1}',                              # no model name
                b'{"model_name": "m", "prediction": 1}',                                 # no version
                b'{"model_name": "m", "model_version": "1", "prediction": 7}',           # not a class
                b'{"model_name": "m", "model_version": "1", "prediction": "2"}',
                b'{"model_name": "m", "model_version": "1", "prediction": true}',
                b'{"model_name": "m", "model_version": "1", "prediction": 1, "DepDelay": "late"}'):
        with pytest.raises(Malformed):
            parse_prediction(bad)


def test_a_window_closes_on_count_or_on_time_never_empty():
    w = Window(opened_ms=0, max_n=3, max_ms=10_000)
    assert not w.due(60_000)
    w.add({"model_name": "m", "model_version": "1"})
    assert not w.due(9_999) and w.due(10_000)
    w.add({"model_name": "m", "model_version": "2"})
    w.add({"model_name": "m", "model_version": "2"})
    assert w.due(1) and w.predictions == 3 and len(w.by_version) == 2


def test_windows_are_scored_per_version_and_malformed_messages_counted(reference):
    rng = random.Random(2)
    writer = Writer()
    m = monitor(reference, writer)
    messages = [Msg(prediction(rng, shift=90)) for _ in range(350)] + [Msg(prediction(rng, "7")) for _ in range(49)]
    m.turn(messages + [Msg(b"garbage"), Msg({"model_name": "m"})], now=1_000)
    assert m.window is not None and m.counts["malformed"] == 2  # 399 predictions: still open
    m.turn([Msg(prediction(rng, shift=90))], now=2_000)
    assert m.window is None and m.counts["windows"] == 1
    rows = {r["model_version"]: r for r in writer.rows}
    assert rows["default"]["drift"] == drift.SIGNIFICANT and rows["default"]["worst_feature"] == "DepDelay"
    assert rows["default"]["alert"] and rows["default"]["predictions"] == 351 and rows["default"]["malformed"] == 2
    assert rows["7"]["drift"] == drift.NO_REFERENCE and rows["7"]["psi"] == {}
    assert rows["default"]["accuracy"] == drift.INSUFFICIENT   # no live metrics
    assert (rows["default"]["window_start"], rows["default"]["window_end"]) == (1_000, 2_000)


def test_an_unshifted_window_raises_nothing(reference):
    rng = random.Random(3)
    writer = Writer()
    m = monitor(reference, writer)
    m.turn([Msg(prediction(rng)) for _ in range(400)], now=5_000)
    (row,) = writer.rows
    assert row["drift"] == drift.NONE and not row["alert"] and row["max_psi"] < 0.1


def test_a_time_window_below_the_minimum_gets_no_verdict(reference):
    rng = random.Random(4)
    writer = Writer()
    m = monitor(reference, writer)
    m.turn([Msg(prediction(rng, shift=90)) for _ in range(20)], now=0)
    m.turn([], now=60_000)
    (row,) = writer.rows
    assert row["drift"] == drift.INSUFFICIENT and not row["alert"] and row["predictions"] == 20


def test_cassandra_outage_keeps_the_rows_until_it_answers(reference, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("monitor.service.time.monotonic", lambda: clock[0])
    rng = random.Random(5)
    writer = Writer(down=True)
    m = monitor(reference, writer)
    m.turn([Msg(prediction(rng)) for _ in range(400)], now=1_000)
    assert writer.rows == [] and len(m.pending) == 1 and writer.resets >= 1
    tries = writer.tries
    m.turn([Msg(prediction(rng)) for _ in range(400)], now=2_000)  # backing off: kept, not tried
    assert len(m.pending) == 2 and writer.tries == tries
    clock[0] += 60
    m.turn([], now=3_000)                                         # tried again: still down
    assert len(m.pending) == 2 and writer.tries == tries + 1
    writer.down = False
    m.turn([], now=4_000)                                         # within the backoff: not yet
    assert len(m.pending) == 2
    clock[0] += 60
    m.turn([], now=5_000)
    assert [r["window_start"] for r in writer.rows] == [1_000, 2_000] and m.pending == []
    assert m.counts["stored"] == 2


def test_backoff_doubles_up_to_its_limit_and_resets():
    b = Backoff(max_s=5)
    assert b.ready(0)
    assert [b.failed(0) for _ in range(5)] == [1, 2, 4, 5, 5]
    assert not b.ready(4.9) and b.ready(5)
    b.succeeded()
    assert b.ready(0) and b.failed(0) == 1


def test_the_status_file_says_whether_the_monitor_runs_and_reads(tmp_path, monkeypatch):
    from monitor import status

    s = load_settings({}, state_dir=str(tmp_path))
    assert status.problem(s) == "no status written yet"
    status.write(s, {"assigned": []})
    assert "no partition" in status.problem(s)
    status.write(s, {"assigned": ["resp[0]"]})
    assert status.problem(s) is None
    monkeypatch.setattr(status.time, "time", lambda: 10**10)
    assert "not written for" in status.problem(s)
    monkeypatch.undo()
    status.path(s).write_text(json.dumps({"pid": 2**22 + 12345, "updated_at": 0, "assigned": ["x"]}))
    assert "gone" in status.problem(s)


def test_make_up_starts_the_monitor_after_the_web_app_at_low_priority():
    from infra.services import REGISTRY, by_name

    names = list(REGISTRY)
    assert names.index("monitor") > names.index("kafka") and names.index("monitor") > names.index("cassandra")
    (svc,) = by_name(["monitor"], load_settings({}))
    assert svc.command(load_settings({}), None)[-2:] == ["-m", "monitor"]
    assert svc.nice(load_settings({}, store_nice=10)) == 10
