"""Cassandra integration: the launcher's schema exists and the prediction tables behave as the
streaming job needs (a row per request UUID, rewritten in place when a batch is replayed).

Each test writes to its own route (a fresh partition), so tests never see each other's rows; the
rows are deleted again at the end of the module. On one node a write at consistency ONE is
readable at once, so there is nothing to wait for.
"""
import datetime as dt
import uuid

import pytest

from flightdelay.clients import cassandra_session
from infra.services.cassandra import Cassandra

TABLES = ("predictions_by_uuid", "predictions_by_route_day")
COLUMNS = ("uuid", "carrier", "origin", "dest", "route", "flight_date", "flight_num", "crs_dep_time",
           "crs_arr_time", "dep_delay", "prediction", "label", "probabilities", "model_name",
           "model_version", "requested_at", "predicted_at")


@pytest.fixture(scope="module")
def cassandra(stack):
    settings = stack.require("cassandra")
    cluster, session = cassandra_session(settings, keyspace=settings.cassandra_keyspace)
    yield settings, session
    cluster.shutdown()


class Writer:
    """Inserts prediction rows and remembers their keys, to delete them afterwards."""

    def __init__(self, session):
        self.session = session
        placeholders = ", ".join("?" for _ in COLUMNS)
        self.inserts = {t: session.prepare(f"INSERT INTO {t} ({', '.join(COLUMNS)}) VALUES ({placeholders})")
                        for t in TABLES}
        self.written = []

    def __call__(self, table: str, row: dict) -> None:
        self.session.execute(self.inserts[table], [row[c] for c in COLUMNS])
        self.written.append((table, row))

    def delete_all(self) -> None:
        for table, row in self.written:
            if table == "predictions_by_uuid":
                self.session.execute("DELETE FROM predictions_by_uuid WHERE uuid = %s", [row["uuid"]])
            else:
                self.session.execute("DELETE FROM predictions_by_route_day WHERE route = %s AND flight_date = %s",
                                     [row["route"], row["flight_date"]])


@pytest.fixture(scope="module")
def write(cassandra):
    writer = Writer(cassandra[1])
    yield writer
    writer.delete_all()


def prediction(route: str, **overrides) -> dict:
    origin, dest = route.split("-")
    row = {
        "uuid": str(uuid.uuid4()), "carrier": "AA", "origin": origin, "dest": dest, "route": route,
        "flight_date": dt.date(2013, 6, 14), "flight_num": 1141, "crs_dep_time": 1730,
        "crs_arr_time": 2045, "dep_delay": -4.0, "prediction": 2, "label": "slightly late",
        "probabilities": [0.1, 0.2, 0.6, 0.1], "model_name": "flight_delay_rf", "model_version": "3",
        # timestamp columns keep milliseconds, so compare values built with millisecond precision
        "requested_at": dt.datetime(2026, 1, 2, 3, 4, 5, 123000),
        "predicted_at": dt.datetime(2026, 1, 2, 3, 4, 5, 456000),
    }
    row.update(overrides)
    return row


def fresh_route() -> str:
    return f"T{uuid.uuid4().hex[:6].upper()}-JFK"


def as_dict(row) -> dict:
    values = row._asdict()
    values["flight_date"] = values["flight_date"].date()  # cassandra.util.Date -> datetime.date
    return values


def test_keyspace_is_simple_strategy_rf1(cassandra):
    settings, session = cassandra
    ks = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                         [settings.cassandra_keyspace]).one()
    assert ks is not None, f"keyspace {settings.cassandra_keyspace} missing"
    assert ks.replication["class"].endswith("SimpleStrategy")
    assert ks.replication["replication_factor"] == "1"


def test_both_tables_exist_with_the_uuid_in_the_primary_key(cassandra):
    settings, session = cassandra
    rows = session.execute("SELECT table_name, column_name, kind, clustering_order FROM system_schema.columns "
                           "WHERE keyspace_name = %s", [settings.cassandra_keyspace])
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


def test_bootstrap_is_idempotent(cassandra):
    settings, _ = cassandra
    Cassandra().bootstrap(settings)  # the launcher ran it once already; IF NOT EXISTS everywhere


def test_insert_and_select_by_uuid(cassandra, write):
    _, session = cassandra
    row = prediction(fresh_route())
    write("predictions_by_uuid", row)
    got = session.execute("SELECT * FROM predictions_by_uuid WHERE uuid = %s", [row["uuid"]]).one()
    assert got is not None
    assert as_dict(got) == row


def test_insert_and_select_by_route_day_newest_first(cassandra, write):
    _, session = cassandra
    route = fresh_route()
    older = prediction(route, requested_at=dt.datetime(2026, 1, 2, 3, 0, 0, 1000))
    newer = prediction(route, requested_at=dt.datetime(2026, 1, 2, 4, 0, 0, 2000), prediction=0,
                       label="early", probabilities=[0.7, 0.1, 0.1, 0.1])
    other_day = prediction(route, flight_date=dt.date(2013, 6, 15))
    for row in (older, newer, other_day):
        write("predictions_by_route_day", row)
    got = session.execute("SELECT * FROM predictions_by_route_day WHERE route = %s AND flight_date = %s",
                          [route, dt.date(2013, 6, 14)])
    assert [as_dict(r) for r in got] == [newer, older]


@pytest.mark.parametrize("table", TABLES)
def test_writing_the_same_uuid_twice_leaves_one_row(cassandra, write, table):
    _, session = cassandra
    row = prediction(fresh_route())
    replay = dict(row, predicted_at=dt.datetime(2026, 1, 2, 3, 4, 9, 0))  # same request, re-predicted
    write(table, row)
    write(table, replay)
    if table == "predictions_by_uuid":
        got = session.execute("SELECT * FROM predictions_by_uuid WHERE uuid = %s", [row["uuid"]]).all()
    else:
        got = session.execute("SELECT * FROM predictions_by_route_day WHERE route = %s AND flight_date = %s",
                              [row["route"], row["flight_date"]]).all()
    assert [as_dict(r) for r in got] == [replay]
