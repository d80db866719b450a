"""The MongoDB wire server of the local stack (FerretDB v1, SQLite): prediction documents keyed by
the request UUID, idempotent upserts, and the indexes and query shape of the history page."""
import dataclasses
import datetime as dt
import uuid

import pytest
from pymongo import MongoClient, ReplaceOne, UpdateOne

from infra.services.mongo import INDEXES, Mongo, ensure_collection


@pytest.fixture(scope="module")
def mongo(stack):
    return stack.require("mongo")


@pytest.fixture(scope="module")
def client(mongo):
    with MongoClient(mongo.mongo_uri, serverSelectionTimeoutMS=5000) as c:
        yield c


@pytest.fixture
def fresh(mongo, client):
    """A collection of its own for one test, with the platform's indexes, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    ensure_collection(dataclasses.replace(mongo, mongo_collection=name))
    yield client[mongo.mongo_database][name]
    client[mongo.mongo_database].drop_collection(name)


def prediction(request_id=None, **fields):
    doc = {"_id": request_id or str(uuid.uuid4()), "Carrier": "AA", "Origin": "JFK", "Dest": "LAX",
           "Route": "JFK-LAX", "FlightDate": "2013-11-05", "DepDelay": -3.0, "prediction": 1,
           "label": "slightly early", "probabilities": [0.1, 0.5, 0.3, 0.1],
           "model_name": "flight_delay_rf", "model_version": "3", "requested_at": 1_700_000_000_000,
           "predicted_at": dt.datetime(2026, 1, 2, 3, 4, 5, 678000)}
    doc.update(fields)
    return doc


def test_insert_and_find(fresh):
    doc = prediction()
    fresh.insert_one(doc)
    assert fresh.find_one({"_id": doc["_id"]}) == doc
    assert [d["_id"] for d in fresh.find({"Carrier": "AA", "prediction": 1})] == [doc["_id"]]


def test_upsert_by_id_twice_keeps_one_document_with_the_last_values(fresh):
    request_id = str(uuid.uuid4())
    first = prediction(request_id, prediction=3, label="very late", model_version="1")
    last = prediction(request_id, prediction=0, label="early", model_version="2")
    for doc in (first, last):
        result = fresh.replace_one({"_id": request_id}, doc, upsert=True)
        assert result.acknowledged
    assert fresh.count_documents({}) == 1
    assert fresh.find_one({"_id": request_id}) == last

    # What a streaming sink does with a redelivered micro-batch: unordered bulk upserts,
    # the same UUIDs twice ($set form and replace form).
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for attempt in (1, 2):
        fresh.bulk_write([UpdateOne({"_id": i}, {"$set": prediction(i, attempt=attempt) | {"_id": i}},
                                    upsert=True) for i in ids], ordered=False)
        fresh.bulk_write([ReplaceOne({"_id": i}, prediction(i, attempt=attempt), upsert=True) for i in ids],
                         ordered=False)
    assert fresh.count_documents({}) == 4
    assert {d["attempt"] for d in fresh.find({"_id": {"$in": ids}})} == {2}


def test_platform_collection_has_the_history_indexes(mongo, client):
    Mongo().bootstrap(mongo)  # a second bootstrap is a no-op
    info = client[mongo.mongo_database][mongo.mongo_collection].index_information()
    for keys, name in INDEXES:
        assert name in info, f"missing index {name}; have {sorted(info)}"
        assert [tuple(k) for k in info[name]["key"]] == list(keys)
    assert {"_id_"} | {name for _, name in INDEXES} == set(info)


def test_history_query_filters_and_sorts_newest_first(fresh):
    base = 1_700_000_000_000
    docs = [prediction(Route=route, Origin=route[:3], Dest=route[4:], FlightDate=f"2013-11-0{day}",
                       requested_at=base + 1000 * i)
            for i, (route, day) in enumerate([(r, d) for d in (1, 2, 3) for r in ("JFK-LAX", "LGA-ORD")])]
    fresh.insert_many(docs)

    got = list(fresh.find({"Route": "JFK-LAX"}, {"_id": 1, "requested_at": 1, "FlightDate": 1})
               .sort("requested_at", -1).limit(2))
    assert [d["FlightDate"] for d in got] == ["2013-11-03", "2013-11-02"]
    assert got[0]["requested_at"] > got[1]["requested_at"]

    window = fresh.find({"Route": "LGA-ORD", "FlightDate": {"$gte": "2013-11-02", "$lte": "2013-11-03"}}) \
        .sort([("requested_at", -1)])
    assert [d["FlightDate"] for d in window] == ["2013-11-03", "2013-11-02"]
    assert fresh.count_documents({"Route": "LGA-ORD"}) == 3
