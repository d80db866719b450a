"""The history walk (flightdelay.stores.mongo.history) against the real MongoDB-wire server:
newest first across days, hours and 10-minute slots, filters, keyset pages, the count estimate, date ranges."""
import dataclasses
import uuid

import pytest

from flightdelay.stores import mongo
from flightdelay.stores.mongo import HistoryQuery, MongoWriter

HOUR = 3_600_000
START = 1_763_251_200_000  # 2025-11-16T00:00Z


def prediction(i: int, route: str, cls: int, at: int) -> dict:
    return {"UUID": str(uuid.UUID(int=i + 1, version=4)), "Carrier": "AA" if i % 2 else "B6",
            "Origin": route[:3], "Dest": route[4:], "Route": route, "FlightDate": "2013-11-05",
            "CRSDepTime": 900, "CRSArrTime": 1200, "DepDelay": 0.0, "prediction": cls, "label": str(cls),
            "probabilities": [0.25] * 4, "model_name": "m", "model_version": "1", "requested_at": at,
            "predicted_at": at + 5}


@pytest.fixture(scope="module")
def stored(mongo_settings, client):
    """60 predictions: every 2 hours over 5 days, two routes alternating, classes cycling."""
    s = dataclasses.replace(mongo_settings, mongo_collection=f"test_history_{uuid.uuid4().hex[:8]}")
    mongo.ensure_collection(s, mongo_indexes=False)
    predictions = [prediction(i, ("JFK-LAX", "LGA-ORD")[i % 2], i % 4, START + 2 * HOUR * i) for i in range(60)]
    writer = MongoWriter(s)
    writer.write([writer.convert(p) for p in reversed(predictions)])  # arrival order must not matter
    writer.reset()
    yield s, predictions
    mongo.drop_collection(s)


def walk(client, s, query: HistoryQuery) -> list[list[dict]]:
    """Every page of ``query``, following the "older" cursor."""
    coll, summary = mongo.collection(client, s), mongo.summary_collection(client, s)
    pages = []
    while True:
        page = mongo.history(coll, summary, query)
        pages.append(page)
        if page.next_before is None or len(pages) > 50:
            return pages
        query = dataclasses.replace(query, before=page.next_before)


def uuids(pages) -> list[str]:
    return [row["UUID"] for page in pages for row in page.rows]


def newest_first(predictions) -> list[str]:
    return [p["UUID"] for p in sorted(predictions, key=lambda p: p["requested_at"], reverse=True)]


def test_pages_walk_every_prediction_newest_first_once(stored, client):
    s, predictions = stored
    pages = walk(client, s, HistoryQuery(page_size=7))
    assert uuids(pages) == newest_first(predictions)
    assert [len(p.rows) for p in pages[:-1]] == [7] * (len(pages) - 1)
    assert (pages[0].count, pages[0].count_kind) == (60, "about")
    assert "_id" not in pages[0].rows[0] and "requested_day" not in pages[0].rows[0]


def test_busy_days_are_read_hour_by_hour_with_the_same_result(stored, client, monkeypatch):
    s, predictions = stored
    monkeypatch.setattr(mongo, "BUCKET_ROWS", 0)  # every day and hour is "busy": read by 10-minute slot
    pages = walk(client, s, HistoryQuery(page_size=5))
    assert uuids(pages) == newest_first(predictions)
    assert pages[0].buckets_read == 5  # one query per slot holding a prediction (one each here)
    monkeypatch.setattr(mongo, "BUCKET_ROWS", 1)  # hours expected to hold one match: read by hour
    assert uuids(walk(client, s, HistoryQuery(filters={"Carrier": "AA"}, page_size=4))) == newest_first(
        p for p in predictions if p["Carrier"] == "AA")


def test_filters_are_combined_and_counted(stored, client):
    s, predictions = stored
    query = HistoryQuery(filters={"Route": "JFK-LAX", "prediction": 2}, page_size=4)
    pages = walk(client, s, query)
    expected = [p for p in predictions if p["Route"] == "JFK-LAX" and p["prediction"] == 2]
    assert uuids(pages) == newest_first(expected) and len(expected) == 15
    # two summarised filters: the count is an upper bound (min of their counts), and says so
    assert (pages[0].count, pages[0].count_kind) == (15, "at most")
    carrier = walk(client, s, HistoryQuery(filters={"Carrier": "B6"}, page_size=10))
    assert uuids(carrier) == newest_first(p for p in predictions if p["Carrier"] == "B6")
    assert (carrier[0].count, carrier[0].count_kind) == (30, "about")
    assert walk(client, s, HistoryQuery(filters={"Route": "EWR-IAH"}))[0].rows == []


def test_a_request_date_range_bounds_the_walk_and_the_count(stored, client):
    s, predictions = stored
    pages = walk(client, s, HistoryQuery(date_from="2025-11-17", date_to="2025-11-18", page_size=10))
    expected = [p for p in predictions if mongo.request_hour(p["requested_at"])[:10] in ("2025-11-17", "2025-11-18")]
    assert uuids(pages) == newest_first(expected) and len(expected) == 24
    assert pages[0].count == 24
    assert walk(client, s, HistoryQuery(date_from="2030-01-01"))[0].rows == []


def test_a_deep_page_is_one_cursor_away(stored, client):
    s, predictions = stored
    ordered = sorted(predictions, key=lambda p: p["requested_at"], reverse=True)
    cursor = ordered[40]
    page = mongo.history(mongo.collection(client, s), mongo.summary_collection(client, s),
                         HistoryQuery(before=(cursor["requested_at"], cursor["UUID"]), page_size=5))
    assert [r["UUID"] for r in page.rows] == [p["UUID"] for p in ordered[41:46]]


def test_a_replayed_batch_is_stored_once_but_counted_twice(stored, client):
    """The summary is written before the insert (so no stored row is invisible to the walk):
    a replay over-counts, which is why the page calls its count an estimate."""
    s, predictions = stored
    s2 = dataclasses.replace(s, mongo_collection=f"{s.mongo_collection}_replay")
    writer = MongoWriter(s2)
    try:
        docs = [writer.convert(p) for p in predictions[:3]]
        writer.write(docs)
        writer.write(docs)
        assert mongo.collection(client, s2).count_documents({}) == 3
        assert mongo.summary_collection(client, s2).find_one({"_id": mongo.ALL_DAYS})["n"] == 6
        assert uuids(walk(client, s2, HistoryQuery())) == newest_first(predictions[:3])
    finally:
        writer.reset()
        mongo.drop_collection(s2)


class CountingCollection:
    """The prediction collection, counting the documents its finds return (what FerretDB decodes)."""

    def __init__(self, coll):
        self.coll, self.returned = coll, 0

    def find(self, *args, **kwargs):
        for doc in self.coll.find(*args, **kwargs):
            self.returned += 1
            yield doc


@pytest.fixture(scope="module")
def burst(mongo_settings, client):
    """2,000 predictions: 1,800 in 1.8 s (1,000/s) inside one 10-minute slot, 200 spread over the
    hour before; written in chunks of 50, so busy seconds become busy across chunks."""
    s = dataclasses.replace(mongo_settings, mongo_collection=f"test_burst_{uuid.uuid4().hex[:8]}")
    mongo.ensure_collection(s, mongo_indexes=False)
    peak = START + 10 * HOUR + 25 * 60_000
    spread = [prediction(i, ("JFK-LAX", "LGA-ORD")[i % 2], i % 4, START + 9 * HOUR + i * 18_000) for i in range(200)]
    dense = [prediction(200 + i, ("JFK-LAX", "LGA-ORD")[i % 2], i % 4, peak + i) for i in range(1800)]
    writer = MongoWriter(s)
    writer.CHUNK = 50
    writer.write([writer.convert(p) for p in spread + dense])
    writer.reset()
    yield s, spread + dense
    mongo.drop_collection(s)


def test_a_burst_is_walked_a_hundredth_of_a_second_at_a_time(burst, client):
    s, predictions = burst
    coll = CountingCollection(mongo.collection(client, s))
    summary = mongo.summary_collection(client, s)
    first = mongo.history(coll, summary, HistoryQuery())
    assert [r["UUID"] for r in first.rows] == newest_first(predictions)[:25]
    assert coll.returned <= 150  # not the slot's 1,800 (nor a whole second's 1,000)
    slot = summary.find_one({"_id": mongo.slot_id(mongo.request_slot(predictions[-1]["requested_at"]))})
    assert slot["n"] == 1800 and sum(slot["s"].values()) == 1800
    seconds = {d["_id"]: d for d in summary.find({"_id": {"$in": [mongo.second_id(mongo.request_second(
        predictions[-1]["requested_at"] - k * 1000)) for k in range(2)]}})}
    assert sorted(d["n"] for d in seconds.values()) == [800, 1000]  # counted whole though written 50 at a time
    pages = walk(client, s, HistoryQuery(page_size=100))
    assert uuids(pages) == newest_first(predictions) and len(pages) <= 21  # 20 full pages (+ an empty last)
    for filters in ({"Carrier": "AA"}, {"Route": "LGA-ORD", "prediction": 1}):
        expected = [p for p in predictions if all(p[k] == v for k, v in filters.items())]
        assert uuids(walk(client, s, HistoryQuery(filters=filters, page_size=100))) == newest_first(expected)
    deep = newest_first(predictions)[1234]
    cursor = next(p for p in predictions if p["UUID"] == deep)
    coll.returned = 0
    page = mongo.history(coll, summary, HistoryQuery(before=(cursor["requested_at"], deep)))
    assert [r["UUID"] for r in page.rows] == newest_first(predictions)[1235:1260] and coll.returned <= 150
