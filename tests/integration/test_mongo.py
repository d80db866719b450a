"""The MongoDB wire server of the local stack (FerretDB v1 on PostgreSQL) as the platform uses it,
through flightdelay.stores.mongo: prediction documents keyed by the request UUID, written
insert-if-absent by the job's writer, and the indexes and queries of the history page."""
import dataclasses
import uuid

import pytest

from flightdelay.stores import Refused, mongo
from flightdelay.stores.mongo import MongoWriter
from infra.services.mongo import Mongo
from spark_jobs.sinks import write_batch


@pytest.fixture
def fresh(mongo_settings, client):
    """Settings naming a collection of its own for one test, created with the platform's
    indexes, dropped afterwards."""
    s = dataclasses.replace(mongo_settings, mongo_collection=f"test_{uuid.uuid4().hex[:12]}")
    assert mongo.ensure_collection(s)  # it reports what it created
    yield s
    client[s.mongo_database].drop_collection(s.mongo_collection)


def prediction(request_id=None, **fields):
    """A prediction as the job's archive query hands it to the writer."""
    p = {"UUID": request_id or str(uuid.uuid4()), "Carrier": "AA", "Origin": "JFK", "Dest": "LAX",
         "Route": "JFK-LAX", "FlightDate": "2013-11-05", "DepDelay": -3.0, "prediction": 1,
         "label": "slightly early (0-15 min)", "probabilities": [0.1, 0.5, 0.3, 0.1],
         "model_name": "flight_delay_rf", "model_version": "3", "requested_at": 1_700_000_000_000,
         "predicted_at": 1_700_000_000_050, "_raw": "{...}", "_topic": "resp", "_partition": 0, "_offset": 7}
    p.update(fields)
    return p


def write(s, *predictions) -> int:
    writer = MongoWriter(s)
    try:
        return writer.write([writer.convert(p) for p in predictions])
    finally:
        writer.reset()


def test_the_writer_stores_the_response_fields_keyed_by_uuid(fresh, client):
    p = prediction()
    assert write(fresh, p) == 1
    coll = mongo.collection(client, fresh)
    doc = coll.find_one({"_id": p["UUID"]})
    assert doc == {"_id": p["UUID"], **{k: v for k, v in p.items() if not k.startswith("_")},
                   "requested_day": "2023-11-14", "requested_hour": "2023-11-14T22",
                   "requested_slot": "2023-11-14T22:1", "requested_sec": "2023-11-14T22:13:20",
                   "requested_cs": "2023-11-14T22:13:20.00"}
    assert mongo.find_prediction(coll, p["UUID"]) == {k: v for k, v in p.items() if not k.startswith("_")}
    assert mongo.find_prediction(coll, str(uuid.uuid4())) is None


def test_a_replayed_batch_keeps_the_first_prediction_of_each_uuid(fresh, client):
    first = [prediction(model_version="1") for _ in range(3)]
    replay = [dict(p, model_version="2", prediction=3) for p in first] + [prediction(model_version="2")]
    assert write(fresh, *first) == 3
    assert write(fresh, *replay) == 4  # duplicate keys are not errors: the batch is done
    coll = mongo.collection(client, fresh)
    assert coll.count_documents({}) == 4
    assert {d["_id"]: d["model_version"] for d in coll.find()} == {
        **{p["UUID"]: "1" for p in first}, replay[-1]["UUID"]: "2"}


def test_the_writer_inserts_more_than_one_chunk(fresh, client, monkeypatch):
    monkeypatch.setattr(MongoWriter, "CHUNK", 7)
    predictions = [prediction() for _ in range(30)]
    assert write(fresh, *predictions) == 30
    assert sorted(mongo.stored_uuids(mongo.collection(client, fresh))) == sorted(p["UUID"] for p in predictions)


def test_documents_ferretdb_refuses_become_dead_letters_and_the_rest_is_written(fresh, client):
    """NaN (on which FerretDB drops the connection), infinity, a key starting with $, an array
    inside an array: each is rejected with its reason, once, and never blocks the batch."""
    good = [prediction() for _ in range(3)]
    bad = {"nan": prediction(probabilities=[float("nan"), 0.5, 0.3, 0.2]),
           "inf": prediction(DepDelay=float("inf")),
           "dollar": prediction(**{"$where": "1"}),
           "nested": prediction(probabilities=[[0.1, 0.9], [0.5]])}
    rejected = []
    written = write_batch(MongoWriter(fresh), "archive-mongo", 1, [good[0], *bad.values(), *good[1:]],
                          stop=lambda: True,  # a retryable failure would raise here, not loop
                          reject=lambda record, reason: rejected.append((record["UUID"], reason)))
    assert written == 3
    reasons = dict(rejected)
    assert len(rejected) == len(reasons) == 4
    assert "finite numbers" in reasons[bad["nan"]["UUID"]] and "probabilities[0]" in reasons[bad["nan"]["UUID"]]
    assert "DepDelay is inf" in reasons[bad["inf"]["UUID"]]
    assert "$where" in reasons[bad["dollar"]["UUID"]]
    assert "array inside an array" in reasons[bad["nested"]["UUID"]]
    assert sorted(mongo.stored_uuids(mongo.collection(client, fresh))) == sorted(p["UUID"] for p in good)


def test_a_document_the_server_itself_refuses_is_reported_and_the_rest_written(fresh, client):
    """Past the writer's own check (a rule it does not know), the server's per-document
    refusal is reported as Refused with the row's index, not raised for a retry."""
    dotted = {**mongo.document(prediction()), "a.b": 1}  # a stored document in every other way
    docs = [mongo.document(prediction()), dotted, mongo.document(prediction())]
    writer = MongoWriter(fresh)
    try:
        with pytest.raises(Refused) as refused:
            writer.write(docs)
    finally:
        writer.reset()
    assert refused.value.written == 2 and list(refused.value.reasons) == [1]
    assert "code 2" in refused.value.reasons[1]
    assert sorted(mongo.stored_uuids(mongo.collection(client, fresh))) == sorted([docs[0]["_id"], docs[2]["_id"]])


class CountingWriter(MongoWriter):
    """The production writer, counting its attempts and resets."""

    attempts = resets = 0

    def write(self, docs):
        self.attempts += 1
        return super().write(docs)

    def reset(self):
        self.resets += 1
        super().reset()


def test_write_batch_retries_while_the_store_is_unreachable(mongo_settings):
    """write_batch, retry_forever and the writer's reset against a real refused connection:
    nothing listens on the port, so every attempt fails until the job stops."""
    from pymongo.errors import ServerSelectionTimeoutError

    writer = CountingWriter(dataclasses.replace(mongo_settings, mongo_port=1))
    with pytest.raises(ServerSelectionTimeoutError):
        write_batch(writer, "archive-mongo", 9, [prediction()], stop=lambda: writer.attempts >= 2)
    assert writer.attempts == 2 and writer.resets == 2  # reconnects on every attempt
    assert writer._client is None


def test_platform_collection_has_only_the_indexes_its_server_uses(mongo_settings, client):
    """FerretDB gets no MongoDB secondary index (none could serve its pushed-down queries);
    PostgreSQL gets one GIN index per equality key of the history walk, and uses them for
    the SQL FerretDB sends (``_jsonb->$1 @> $2``, prepared)."""
    from infra.services.mongo import postgres_table
    from infra.services.postgres import psql

    Mongo().bootstrap(mongo_settings)  # a second bootstrap is a no-op
    assert mongo.ensure_collection(mongo_settings, mongo_indexes=False) == []
    assert set(mongo.collection(client, mongo_settings).index_information()) == {"_id_"}
    table = postgres_table(mongo_settings, mongo_settings.mongo_collection)
    indexes = psql(mongo_settings, f"SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE tablename = '{table}'")
    for field in mongo.POSTGRES_GIN_FIELDS:
        assert f"USING gin (((_jsonb -> '{field}'::text)))" in indexes, indexes
    plan = psql(mongo_settings, f"""SET enable_seqscan = off;
        PREPARE q(text, jsonb, text, jsonb) AS SELECT _jsonb FROM "{mongo_settings.mongo_database}"."{table}"
          WHERE _jsonb->$1 @> $2 AND _jsonb->$3 @> $4;
        EXPLAIN EXECUTE q('requested_day', '"2013-11-05"', 'Route', '"JFK-LAX"')""")
    assert "Bitmap Index Scan on " + f"{table}_fd_gin_" in plan and "Seq Scan" not in plan, plan
