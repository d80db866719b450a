"""Cassandra integration: the launcher's schema exists and the prediction tables behave as the
streaming job needs, written through the job's own writer (flightdelay.stores.cassandra): one
row per request UUID in each table, rewritten in place when a batch is replayed.

Each test writes to its own route (a fresh partition), so tests never see each other's rows; the
rows are deleted again at the end of the module. A write at QUORUM (on one node: that node) is
readable at once by a read at QUORUM, so there is nothing to wait for.
"""
import dataclasses
import datetime as dt
import uuid

import pytest

from flightdelay.stores import cassandra
from flightdelay.stores.cassandra import COLUMNS, TABLES, CassandraWriter
from infra.services.cassandra import Cassandra
from spark_jobs.sinks import write_batch


@pytest.fixture(scope="module")
def cassandra_settings(stack):
    return stack.require("cassandra")


@pytest.fixture(scope="module")
def session(cassandra_settings):
    cluster, sess = cassandra.session(cassandra_settings, keyspace=cassandra_settings.cassandra_keyspace)
    yield sess
    cluster.shutdown()


@pytest.fixture(scope="module")
def written(session):
    """Predictions the tests stored, deleted at the end of the module."""
    predictions = []
    yield predictions
    for p in predictions:
        session.execute("DELETE FROM predictions_by_uuid WHERE uuid = %s", [p["UUID"]])
        session.execute("DELETE FROM predictions_by_route_day WHERE route = %s AND flight_date = %s",
                        [p["Route"], dt.date.fromisoformat(p["FlightDate"])])


@pytest.fixture
def store(cassandra_settings, written):
    """Write predictions with the production writer (small batches, to exercise batching)."""
    writer = CassandraWriter(dataclasses.replace(cassandra_settings, cassandra_batch_rows=4))

    def write(*predictions):
        written.extend(predictions)
        return writer.write([writer.convert(p) for p in predictions])

    yield write
    writer.reset()


def prediction(route: str, **overrides) -> dict:
    """A prediction as the job's archive query hands it to the writer (response fields)."""
    origin, dest = route.split("-")
    p = {"UUID": str(uuid.uuid4()), "Carrier": "AA", "Origin": origin, "Dest": dest, "Route": route,
         "FlightDate": "2013-06-14", "FlightNum": 1141, "CRSDepTime": 1730, "CRSArrTime": 2045,
         "DepDelay": -4.0, "Distance": 2475.0, "prediction": 2, "label": "slightly late (0-30 min)",
         "probabilities": [0.1, 0.2, 0.6, 0.1], "model_name": "flight_delay_rf", "model_version": "3",
         "requested_at": 1_767_323_045_123, "predicted_at": 1_767_323_045_456, "_raw": "{}", "_topic": "t"}
    p.update(overrides)
    return p


def fresh_route() -> str:
    return f"T{uuid.uuid4().hex[:6].upper()}-JFK"


def stored(row) -> dict:
    values = row._asdict()
    values["flight_date"] = values["flight_date"].date()  # cassandra.util.Date -> datetime.date
    return values


def expected(p: dict) -> dict:
    """What the row of ``p`` reads back as (the driver returns timestamps as naive UTC)."""
    values = dict(zip(COLUMNS, cassandra.row(p)))
    for name in ("requested_at", "predicted_at"):
        values[name] = values[name].replace(tzinfo=None)
    return values


def schema_of(session, keyspace):
    tables = {r.table_name: r.id for r in session.execute(
        "SELECT table_name, id FROM system_schema.tables WHERE keyspace_name = %s", [keyspace])}
    columns = {(r.table_name, r.column_name, r.kind, r.type) for r in session.execute(
        "SELECT table_name, column_name, kind, type FROM system_schema.columns WHERE keyspace_name = %s",
        [keyspace])}
    return tables, columns


def test_the_keyspace_has_one_copy_per_node_in_the_datacenter(cassandra_settings, session):
    """One node: one copy (FD_CLUSTER=1: three nodes, three copies; test_cluster_faults)."""
    s = cassandra_settings
    ks = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                         [s.cassandra_keyspace]).one()
    assert ks is not None, f"keyspace {s.cassandra_keyspace} missing"
    assert ks.replication["class"].endswith("NetworkTopologyStrategy")
    assert ks.replication[s.cassandra_datacenter] == str(s.keyspace_replication) == str(len(s.cassandra_nodes))


def test_both_tables_exist_with_the_uuid_in_the_primary_key(cassandra_settings, session):
    rows = session.execute("SELECT table_name, column_name, kind, clustering_order FROM system_schema.columns "
                           "WHERE keyspace_name = %s", [cassandra_settings.cassandra_keyspace])
    keys, columns = {}, {}
    for r in rows:
        columns.setdefault(r.table_name, set()).add(r.column_name)
        if r.kind != "regular":
            keys.setdefault(r.table_name, {})[r.column_name] = (r.kind, r.clustering_order)
    for table in TABLES:
        assert columns.get(table) == set(COLUMNS), table
    assert keys["predictions_by_uuid"] == {"uuid": ("partition_key", "none")}
    assert keys["predictions_by_route_day"] == {
        "route": ("partition_key", "none"), "flight_date": ("partition_key", "none"),
        "requested_at": ("clustering", "desc"), "uuid": ("clustering", "asc")}


def test_applying_the_schema_again_changes_nothing_and_keeps_the_rows(cassandra_settings, session, store):
    p = prediction(fresh_route())
    store(p)
    before = schema_of(session, cassandra_settings.cassandra_keyspace)
    Cassandra().bootstrap(cassandra_settings)  # the launcher ran it once already; IF NOT EXISTS everywhere
    assert schema_of(session, cassandra_settings.cassandra_keyspace) == before  # same table ids: nothing recreated
    assert stored(cassandra.by_uuid(session, p["UUID"])) == expected(p)


def test_the_writer_stores_a_prediction_in_both_tables(session, store):
    p = prediction(fresh_route())
    assert store(p) == 1
    assert stored(cassandra.by_uuid(session, p["UUID"])) == expected(p)
    [row] = cassandra.route_day(session, p["Route"], dt.date(2013, 6, 14))
    assert stored(row) == expected(p)


def test_route_day_reads_newest_request_first(session, store):
    route = fresh_route()
    older = prediction(route, requested_at=1_767_322_800_001)
    newer = prediction(route, requested_at=1_767_326_400_002, prediction=0, label="early (15+ min)",
                       probabilities=[0.7, 0.1, 0.1, 0.1])
    other_day = prediction(route, FlightDate="2013-06-15")
    store(older, newer, other_day)
    got = cassandra.route_day(session, route, dt.date(2013, 6, 14))
    assert [stored(r) for r in got] == [expected(newer), expected(older)]


def test_a_replayed_prediction_leaves_one_row_in_each_table(session, store):
    p = prediction(fresh_route())
    replay = dict(p, predicted_at=p["predicted_at"] + 4000, model_version="4")  # same request, re-predicted
    store(p)
    store(replay)
    assert stored(cassandra.by_uuid(session, p["UUID"])) == expected(replay)
    assert [stored(r) for r in cassandra.route_day(session, p["Route"], dt.date(2013, 6, 14))] == [expected(replay)]


def test_many_batches_land_complete(session, store):
    route = fresh_route()
    predictions = [prediction(route, FlightDate=f"2013-06-{day:02d}", requested_at=1_767_322_800_000 + i)
                   for i, day in enumerate([14, 15, 16] * 15)]  # 45 rows: 12 batches per table
    assert store(*predictions) == 45
    uuids = [p["UUID"] for p in predictions]
    assert cassandra.uuids_by_uuid(session, uuids) == set(uuids)
    partitions = {(route, dt.date.fromisoformat(p["FlightDate"])) for p in predictions}
    assert cassandra.route_day_rows_per_uuid(session, uuids, partitions) == dict.fromkeys(uuids, 1)


def test_write_batch_rejects_what_the_store_cannot_take_and_writes_the_rest(cassandra_settings, session, written):
    good, bad = prediction(fresh_route()), prediction(fresh_route(), FlightDate="2013-02-30")
    written.append(good)  # bad has no valid partition and is never stored
    rejected = []
    writer = CassandraWriter(cassandra_settings)
    try:
        count = write_batch(writer, "archive-cassandra", 1, [good, bad],
                            reject=lambda record, reason: rejected.append((record["UUID"], reason)))
    finally:
        writer.reset()
    assert count == 1
    assert [u for u, _ in rejected] == [bad["UUID"]] and "ValueError" in rejected[0][1]
    assert cassandra.uuids_by_uuid(session, [good["UUID"], bad["UUID"]]) == {good["UUID"]}
