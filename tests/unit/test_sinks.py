"""Pure logic of the store writers, the archive queries' retries and the job's status (no servers)."""
import datetime as dt
import re
import time
import uuid

import pytest
from cassandra.query import SimpleStatement

from flightdelay import status as job_status
from flightdelay.config import load_settings
from flightdelay.schema import OPTIONAL_RESPONSE_FIELDS
from flightdelay.stores.cassandra import COLUMNS as CASSANDRA_COLUMNS
from flightdelay.stores.cassandra import TABLES as CASSANDRA_TABLES
from flightdelay.stores.cassandra import CassandraWriter
from spark_jobs.sinks import missing_fields, retry_forever
from spark_jobs.supervisor import offset_total, query_progress


def row(route: str, day: int) -> tuple:
    values = dict.fromkeys(CASSANDRA_COLUMNS)
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
    assert query_progress(FakeQuery(progress)) == {"batch": 7, "rows_per_s": 2451, "offset": 2200, "backlog": 7900}
    assert query_progress(FakeQuery(None)) == {}
    assert query_progress(FakeQuery({"sources": []})) == {}  # malformed: nothing, never an error
    assert offset_total({"a": {"0": 3}, "b": {"0": 4, "1": 5}}) == 12


def test_status_file_round_trip_and_readers(tmp_path):
    s = load_settings({}, state_dir=str(tmp_path))
    assert job_status.read(s) is None  # not written yet
    queries = {"predict": job_status.QueryStatus(True, "a"),
               "archive-mongo": job_status.QueryStatus(False, "b", batch=3, offset=1200, backlog=5)}
    job_status.write(s, job_status.JobStatus(job_status.ModelStatus("m", "2", "mlflow"), queries))
    status = job_status.read(s)
    assert status.model.version == "2" and status.queries == queries and status.updated_at > 0
    assert status.inactive_queries() == ["archive-mongo"]
    assert not status.all_running(2)
    assert status.archived_up_to("archive-mongo") == 1200
    assert status.archived_up_to("predict") == 0  # no progress yet
    assert status.batch("archive-mongo") == 3 and status.batch("predict") is None
    s.streaming_status_file.write_text('{"model": {"name": "m"}, "queries": {}}')  # not a status
    assert job_status.read(s) is None
    s.streaming_status_file.write_text("{half a file")
    assert job_status.read(s) is None
    job_status.clear(s)
    assert not s.streaming_status_file.exists()


def test_retry_forever_backs_off_until_the_action_succeeds(caplog):
    outcomes = [ConnectionError("down"), ConnectionError("still down"), 7]

    def action():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry_forever("store batch 1", action, first_wait=0.01, max_wait=0.02) == 7
    retries = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(retries) == 2 and "attempt 2: ConnectionError: still down" in retries[1]


def test_retry_forever_gives_up_when_the_job_stops():
    def action():
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        retry_forever("store batch 1", action, first_wait=0.01, stop=lambda: True)


def test_missing_fields_ignores_the_optional_and_provenance_fields():
    assert OPTIONAL_RESPONSE_FIELDS == ("FlightNum",)
    record = {"UUID": "u", "FlightNum": None, "label": None, "_raw": None, "prediction": 2}
    assert missing_fields(record) == ["label"]


class StubQuery:
    """Just what the supervisor reads of a StreamingQuery."""

    def __init__(self, active: bool, error: str | None = None):
        self.isActive = active
        self._error = error

    def exception(self):
        return self._error


def test_a_query_that_cannot_restart_never_ends_the_job_and_is_retried_with_a_pause():
    """An HDFS outage: the parquet query died and cannot even start again (the file sink asks
    HDFS as it starts). The supervisor must keep the job (and the predict query) alive and try
    again after a pause, not at every check and not by raising."""
    from spark_jobs.supervisor import PredictionJob

    attempts = []

    def start_archive():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("Call to localhost:8020 failed on connection exception: Connection refused")
        return StubQuery(active=True)

    job = PredictionJob(spark=None, settings=load_settings({}))
    predict = StubQuery(active=True)
    job.queries = {"predict": predict, "archive-hdfs": StubQuery(active=False, error="TASK_WRITE_FAILED\n...")}
    job.factories = {"predict": lambda: pytest.fail("a running query is never restarted"),
                     "archive-hdfs": start_archive}

    job.check_queries()  # first failure: restarted at once, which fails
    assert len(attempts) == 1 and job.queries["predict"] is predict
    job.check_queries()  # within the pause: no new attempt
    assert len(attempts) == 1
    first_pause = job.retry_at["archive-hdfs"] - attempts[0]
    job.retry_at["archive-hdfs"] = 0.0  # the pause is over
    job.check_queries()
    assert len(attempts) == 2
    assert job.retry_at["archive-hdfs"] - attempts[1] > first_pause  # it grows
    job.retry_at["archive-hdfs"] = 0.0
    job.check_queries()  # HDFS is back
    assert len(attempts) == 3 and job.queries["archive-hdfs"].isActive
    job.check_queries()  # seen running: the count of failed restarts starts over
    assert "archive-hdfs" not in job.failures and len(attempts) == 3
