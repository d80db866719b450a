"""Pure logic of the store writers and of the job's progress report (no servers)."""
import datetime as dt
import re
import uuid

from cassandra.query import SimpleStatement

from flightdelay.config import load_settings
from spark_jobs.predict_stream import offset_total, query_progress
from spark_jobs.sinks import CASSANDRA_COLUMNS, CASSANDRA_TABLES, CassandraWriter


def row(route: str, day: int) -> tuple:
    values = {c: None for c in CASSANDRA_COLUMNS}
    values.update(uuid=str(uuid.uuid4()), route=route, flight_date=dt.date(2013, 1, day))
    return tuple(values[c] for c in CASSANDRA_COLUMNS)


def writer(batch_rows: int) -> CassandraWriter:
    w = CassandraWriter(load_settings({}, cassandra_batch_rows=batch_rows))
    marks = ", ".join("%s" for _ in CASSANDRA_COLUMNS)
    w._statements = {t: SimpleStatement(f"INSERT INTO {t} ({', '.join(CASSANDRA_COLUMNS)}) VALUES ({marks})")
                     for t in CASSANDRA_TABLES}
    return w


def test_cassandra_rows_go_in_bounded_unlogged_batches_for_both_tables():
    rows = [row(r, d) for r in ("JFK-LAX", "EWR-IAH", "LGA-ORD") for d in (3, 1, 2)] * 5  # 45 rows
    batches = [b for b, _ in writer(batch_rows=20).batches(rows)]
    sizes = [len(b._statements_and_parameters) for b in batches]
    assert sizes == [20, 20, 5, 20, 20, 5]  # predictions_by_uuid, then predictions_by_route_day
    assert all(b.batch_type.name == "UNLOGGED" for b in batches)
    assert sum(sizes) == 2 * len(rows)


def test_route_table_batches_follow_its_partition_key():
    rows = [row(r, d) for r in ("JFK-LAX", "EWR-IAH") for d in (2, 1)] * 3  # 12 rows, 4 partitions
    batches = [b for b, _ in writer(batch_rows=3).batches(rows)]
    route_batches = [b for b in batches if "predictions_by_route_day" in b._statements_and_parameters[0][1]]
    assert len(route_batches) == 4
    keys = [{route_and_date(text) for _, text, _ in b._statements_and_parameters} for b in route_batches]
    assert keys == [{("EWR-IAH", "2013-01-01")}, {("EWR-IAH", "2013-01-02")},
                    {("JFK-LAX", "2013-01-01")}, {("JFK-LAX", "2013-01-02")}]


def route_and_date(bound_insert: str) -> tuple[str, str]:
    quoted = re.findall(r"'([^']*)'", bound_insert)  # uuid, route, flight_date (other columns NULL)
    return quoted[1], quoted[2]


class FakeQuery:
    name = "archive-mongo"

    def __init__(self, progress):
        self.lastProgress = progress


def test_query_progress_reports_the_backlog_beyond_the_last_batch():
    progress = {"batchId": 7, "processedRowsPerSecond": 2450.6, "sources": [{
        "endOffset": {"resp": {"0": 1000, "1": 1200}}, "latestOffset": '{"resp": {"0": 5000, "1": 5100}}'}]}
    assert query_progress(FakeQuery(progress)) == {"batch": 7, "rows_per_s": 2451, "backlog": 7900}
    assert query_progress(FakeQuery(None)) == {}
    assert query_progress(FakeQuery({"sources": []})) == {}  # malformed: nothing, never an error
    assert offset_total({"a": {"0": 3}, "b": {"0": 4, "1": 5}}) == 12
