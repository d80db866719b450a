"""Pure logic of the history walk and the archive table (flightdelay.stores.mongo, webapp.pages)."""
from flightdelay.stores import mongo
from webapp.pages import ARCHIVE_DAYS_PER_PAGE, archive_table


def doc(day_hour: str, route="JFK-LAX", carrier="AA", cls=1) -> dict:
    return {"requested_day": day_hour[:10], "requested_hour": day_hour, "requested_slot": f"{day_hour}:3",
            "Route": route, "Carrier": carrier, "prediction": cls}


def test_documents_carry_their_request_day_and_hour_in_utc():
    stored = mongo.document({"UUID": "u1", "requested_at": 1_795_823_999_000, "_raw": "x", "prediction": 0})
    assert (stored["_id"], stored["requested_day"], stored["requested_hour"], stored["requested_slot"]) == (
        "u1", "2026-11-27", "2026-11-27T23", "2026-11-27T23:5")
    assert "_raw" not in stored
    assert mongo.response_fields(stored) == {"UUID": "u1", "requested_at": 1_795_823_999_000, "prediction": 0}


def test_summary_increments_count_per_day_hour_and_dimension():
    incs = mongo.summary_increments([doc("2026-11-27T10"), doc("2026-11-27T10", cls=3), doc("2026-11-28T00", "LGA-ORD")])
    assert incs["2026-11-27"] == {"n": 2, "hours.10": 2, "slots.103": 2, "Route.JFK-LAX": 2, "Carrier.AA": 2,
                                  "prediction.1": 1, "prediction.3": 1}
    assert incs["2026-11-28"]["Route.LGA-ORD"] == 1 and incs["2026-11-28"]["hours.00"] == 1


def test_candidates_is_the_smallest_count_among_summarised_filters():
    day = {"n": 10, "hours": {"09": 4, "10": 6}, "Route": {"JFK-LAX": 5}, "Carrier": {"AA": 3},
           "prediction": {"2": 7}}
    assert mongo.candidates(day, {}) == 10
    assert mongo.candidates(day, {"Route": "JFK-LAX", "prediction": 2}) == 5
    assert mongo.candidates(day, {"Route": "JFK-LAX", "Carrier": "AA"}) == 3
    assert mongo.candidates(day, {"Route": "EWR-IAH"}) == 0
    assert mongo.candidates(day, {"FlightDate": "2013-11-01"}) == 10  # not summarised: no bound
    assert mongo.candidates(day, {}, hour="09") == 4 and mongo.candidates(day, {}, hour="23") == 0
    assert mongo.candidates(None, {}) == 0


def cursor_in(slot: str, second: str = "9:59", cs: str = "99") -> dict:
    """The bucket keys of a cursor at ``second`` (minute unit:seconds) of ``slot``."""
    sec = f"{slot}{second}"
    return {"requested_day": slot[:10], "requested_hour": slot[:13], "requested_slot": slot,
            "requested_sec": sec, "requested_cs": f"{sec}.{cs}"}


def test_documents_carry_their_second_and_hundredth():
    stored = mongo.document({"UUID": "u1", "requested_at": 1_795_823_999_123})
    assert (stored["requested_sec"], stored["requested_cs"]) == ("2026-11-27T23:59:59", "2026-11-27T23:59:59.12")
    assert mongo.bucket_keys(1_795_823_999_123) == {k: stored[k] for k in mongo.BUCKET_FIELDS}
    assert set(mongo.response_fields(stored)) == {"UUID", "requested_at"}


def test_a_busy_slot_is_walked_by_second_and_a_busy_second_by_hundredth(monkeypatch):
    """A burst: one slot holds 300 predictions; second 7:42 holds 200 of them, counted by
    hundredth; 7:41 holds 90, read whole; a cursor inside 7:42 skips what is newer."""
    monkeypatch.setattr(mongo, "BUCKET_ROWS", 100)
    slot = "2026-11-27T10:2"
    docs = {mongo.slot_id(slot): {"n": 300, "s": {"742": 200, "741": 90, "700": 10},
                                  "Route": {"JFK-LAX": 300}, "Carrier": {"AA": 150, "B6": 150}},
            mongo.second_id(f"{slot}7:42"): {"n": 200, "c": {"00": 50, "10": 50, "55": 100}}}
    lookup = docs.get
    walk = list(mongo.slot_buckets(slot, {}, None, lookup))
    assert walk == [("requested_cs", f"{slot}7:42.55"), ("requested_cs", f"{slot}7:42.10"),
                    ("requested_cs", f"{slot}7:42.00"), ("requested_sec", f"{slot}7:41"),
                    ("requested_sec", f"{slot}7:00")]
    # half match: 7:42 expects 100 (read whole); the slot expects 150
    assert list(mongo.slot_buckets(slot, {"Carrier": "AA"}, None, lookup))[0] == ("requested_sec", f"{slot}7:42")
    assert list(mongo.slot_buckets(slot, {"Carrier": "UA"}, None, lookup)) == []  # none in this slot
    assert list(mongo.slot_buckets(slot, {}, cursor_in(slot, "7:42", "10"), lookup))[:2] == [
        ("requested_cs", f"{slot}7:42.10"), ("requested_cs", f"{slot}7:42.00")]
    # hundredths not all counted (a second summarised before): the whole second, not a partial walk
    docs[mongo.second_id(f"{slot}7:42")] = {"n": 150, "c": {"00": 50, "55": 100}}
    assert list(mongo.slot_buckets(slot, {}, None, lookup))[0] == ("requested_sec", f"{slot}7:42")
    # a slot summarised before slot documents existed: read whole, as before
    assert list(mongo.slot_buckets("2026-11-27T09:0", {}, None, lookup)) == [("requested_slot", "2026-11-27T09:0")]


def test_buckets_are_the_coarsest_expected_to_hold_few_matches(monkeypatch):
    monkeypatch.setattr(mongo, "BUCKET_ROWS", 10)
    day = {"n": 60, "hours": {"09": 20, "10": 40}, "slots": {"090": 20, "100": 15, "105": 25},
           "Route": {"JFK-LAX": 6, "LGA-ORD": 54}, "Carrier": {"AA": 30}, "prediction": {"1": 60}}
    d = "2026-11-27"
    assert list(mongo.buckets(d, day, {"Route": "JFK-LAX"}, None)) == [("requested_day", d)]
    assert list(mongo.buckets(d, day, {"Route": "EWR-IAH"}, None)) == []
    # 54 of 60 match: an hour of 20 is expected to hold 18 (> 10), so its slots are read
    assert list(mongo.buckets(d, day, {"Route": "LGA-ORD"}, None)) == [
        ("requested_slot", f"{d}T10:5"), ("requested_slot", f"{d}T10:0"), ("requested_slot", f"{d}T09:0")]
    # a quarter matches (AA: 30 of 60 ... min with class 1: 30): hour 09 expects 10, hour 10 expects 20
    assert list(mongo.buckets(d, day, {"Carrier": "AA"}, None)) == [
        ("requested_slot", f"{d}T10:5"), ("requested_slot", f"{d}T10:0"), ("requested_hour", f"{d}T09")]
    # after a cursor in slot 10:0, newer slots are skipped; an older day is not touched
    assert list(mongo.buckets(d, day, {}, cursor_in(f"{d}T10:0"))) == [
        ("requested_slot", f"{d}T10:0"), ("requested_slot", f"{d}T09:0")]
    assert list(mongo.buckets(d, day, {}, cursor_in("2026-11-26T23:5"))) == []
    # a summary without slots (written before they existed) falls back to hours
    assert list(mongo.buckets(d, {**day, "slots": {}}, {}, None)) == [
        ("requested_hour", f"{d}T10"), ("requested_hour", f"{d}T09")]


def test_days_back_walks_newest_first_inclusive():
    assert list(mongo.days_back("2026-03-01", "2026-02-27")) == ["2026-03-01", "2026-02-28", "2026-02-27"]
    assert list(mongo.days_back("2026-02-27", "2026-03-01")) == []


def test_history_filters_drop_unknown_and_empty_and_parse_the_class():
    assert mongo.history_filters({"Route": "JFK-LAX", "Carrier": "", "x": "1", "prediction": "2"}) == {
        "Route": "JFK-LAX", "prediction": 2}
    assert mongo.history_filters({"prediction": "two"}) == {}


def test_the_archive_table_pages_newest_date_first():
    per_day = {f"2013-{m:02d}-{d:02d}": {0: d} for m in (1, 2, 3) for d in range(1, 29)}
    first = archive_table(per_day, None)
    assert first["pages"] == -(-84 // ARCHIVE_DAYS_PER_PAGE) and first["page"] == 1
    assert first["rows"][0][0] == "2013-03-28" and len(first["rows"]) == ARCHIVE_DAYS_PER_PAGE
    last = archive_table(per_day, "99")
    assert last["page"] == first["pages"] and last["rows"][-1][0] == "2013-01-01"
    assert archive_table(per_day, "x")["page"] == 1 and archive_table({}, "2") == {"rows": [], "page": 1, "pages": 1}
