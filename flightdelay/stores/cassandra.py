"""Cassandra: the keyspace FD_CASSANDRA_KEYSPACE with two prediction tables, each holding every
prediction once (``cassandra.cql`` next to this module):

* ``predictions_by_uuid``: PRIMARY KEY (uuid);
* ``predictions_by_route_day``: PRIMARY KEY ((route, flight_date), requested_at, uuid), newest first.

Applied by the launcher (``apply_schema``), written by the job's archive-cassandra query
(``CassandraWriter``), read by the bench and the tests.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from contextlib import contextmanager
from pathlib import Path
from string import Template

from flightdelay.config import Settings

log = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).with_name("cassandra.cql")
COLUMNS = ("uuid", "carrier", "origin", "dest", "route", "flight_date", "flight_num",
           "crs_dep_time", "crs_arr_time", "dep_delay", "prediction", "label", "probabilities",
           "model_name", "model_version", "requested_at", "predicted_at")
TABLES = ("predictions_by_uuid", "predictions_by_route_day")
# Unquoted CQL names are folded to lower case; accept only names that stay as they are written.
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,47}")


# The execution profile of every write (the default profile is the reads'): each runs at its
# consistency level setting (FD_CASSANDRA_WRITE_CONSISTENCY, FD_CASSANDRA_READ_CONSISTENCY).
WRITE = "write"


def consistency(name: str) -> int:
    """A consistency level setting (ONE, QUORUM, LOCAL_QUORUM, ALL, ...) as the driver's value."""
    from cassandra import ConsistencyLevel

    try:
        return ConsistencyLevel.name_to_value[name.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown Cassandra consistency level {name!r}; one of "
                         f"{', '.join(ConsistencyLevel.name_to_value)}") from None


def session(s: Settings, *, keyspace: str | None = None, timeout: float = 10.0, metadata: bool = True,
            node: str | None = None):
    """Return ``(cluster, session)``; the caller calls ``cluster.shutdown()``.

    Connects through every contact point (FD_CASSANDRA_HOSTS) and spreads requests over the
    nodes of FD_CASSANDRA_DATACENTER, so a node down costs nothing but its share; ``node``
    instead talks to that node alone (its health, or what it holds). Reads run at the read
    consistency level (the default profile), writes through the ``WRITE`` profile."""
    from cassandra import ProtocolVersion
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy, WhiteListRoundRobinPolicy

    hosts = [node] if node else s.cassandra_nodes

    def profile(level: str) -> ExecutionProfile:
        balancing = (WhiteListRoundRobinPolicy(hosts) if node
                     else TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=s.cassandra_datacenter)))
        return ExecutionProfile(load_balancing_policy=balancing, request_timeout=timeout,
                                consistency_level=consistency(level))

    # Protocol v5 is Cassandra 5.0's default; naming it avoids the driver's downgrade warnings.
    cluster = Cluster(contact_points=hosts, port=s.cassandra_port, protocol_version=ProtocolVersion.V5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile(s.cassandra_read_consistency),
                                          WRITE: profile(s.cassandra_write_consistency)},
                      connect_timeout=timeout, control_connection_timeout=timeout,
                      schema_metadata_enabled=metadata, token_metadata_enabled=metadata)
    try:
        return cluster, cluster.connect(keyspace)
    except Exception:
        cluster.shutdown()
        raise


@contextmanager
def quiet_driver():
    """Silence cassandra-driver's logging while probing a node that may still be starting
    (the driver logs every refused connection as a warning or error)."""
    driver_log = logging.getLogger("cassandra")
    previous = driver_log.level
    driver_log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        driver_log.setLevel(previous)


# -- schema ------------------------------------------------------------------------------------
def schema_statements(keyspace: str, replication: int = 1, datacenter: str = "datacenter1") -> list[str]:
    """The CQL statements of cassandra.cql for ``keyspace`` (``replication`` copies of each row
    in ``datacenter``), comments removed."""
    if not _IDENTIFIER.fullmatch(keyspace):
        raise ValueError(f"keyspace name {keyspace!r} is not a valid CQL identifier "
                         "(lower-case letters, digits, underscore; at most 48 characters)")
    text = Template(SCHEMA_FILE.read_text()).substitute(keyspace=keyspace, replication=replication,
                                                        datacenter=datacenter.replace("'", "''"))
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def apply_schema(s: Settings) -> None:
    """Create the keyspace and tables (every statement is IF NOT EXISTS: idempotent), and give
    an existing keyspace the replication the settings ask for."""
    statements = schema_statements(s.cassandra_keyspace, s.keyspace_replication, s.cassandra_datacenter)
    cluster, sess = session(s, timeout=10.0)
    try:
        for statement in statements:
            sess.execute(statement, timeout=60.0)
        ensure_replication(s, sess)
        if not cluster.control_connection.wait_for_schema_agreement():
            raise RuntimeError("schema did not reach agreement after applying cassandra.cql")
    finally:
        cluster.shutdown()


def replication_map(s: Settings) -> dict[str, str]:
    return {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
            s.cassandra_datacenter: str(s.keyspace_replication)}


def ensure_replication(s: Settings, sess) -> None:
    """ALTER the keyspace when its replication is not the settings' (CREATE ... IF NOT EXISTS
    leaves an existing one as it was). Rows written before have their old copies only until a
    repair (``nodetool repair``, docs/deployment.md)."""
    row = sess.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                       [s.cassandra_keyspace]).one()
    wanted = replication_map(s)
    if row is None or dict(row.replication) == wanted:
        return
    log.warning("keyspace %s replication %s -> %s; run `nodetool repair %s` on each node for the rows "
                "written before", s.cassandra_keyspace, dict(row.replication), wanted, s.cassandra_keyspace)
    sess.execute(f"ALTER KEYSPACE {s.cassandra_keyspace} WITH replication = "
                 f"{{'class': 'NetworkTopologyStrategy', '{s.cassandra_datacenter}': {s.keyspace_replication}}}",
                 timeout=60.0)


# -- writing -----------------------------------------------------------------------------------
def row(p: dict) -> tuple:
    """A prediction (response fields) as a row of COLUMNS."""
    flight_num = p.get("FlightNum")
    return (p["UUID"], p["Carrier"], p["Origin"], p["Dest"], p["Route"],
            dt.date.fromisoformat(p["FlightDate"]), None if flight_num is None else int(flight_num),
            int(p["CRSDepTime"]),
            int(p["CRSArrTime"]), float(p["DepDelay"]), int(p["prediction"]), p["label"],
            [float(x) for x in p["probabilities"]], p["model_name"], str(p["model_version"]),
            _timestamp(p["requested_at"]), _timestamp(p["predicted_at"]))


def _timestamp(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.timezone.utc)


def insert_cql(table: str) -> str:
    return f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


class CassandraWriter:
    """INSERTs are upserts in Cassandra and both tables have the UUID in their primary key
    (the route table also clusters on requested_at, which comes from the request, not from
    processing time), so a replayed batch rewrites the same rows.

    Rows go in UNLOGGED batches of ``FD_CASSANDRA_BATCH_ROWS``: per-request overhead, in the
    driver and in Cassandra, is most of the cost of a single-row insert (docs/decisions.md,
    "Measured on earlier code"). Unlogged batches give no atomicity, which idempotent upserts do not need. The
    route table's rows are sorted by its partition key first so a batch touches few partitions
    (on a multi-node cluster, batches per partition key would be the next step)."""

    def __init__(self, s: Settings, concurrency: int = 16):
        self.s = s
        self.concurrency = concurrency
        self._cluster = self._session = None
        self._statements = {}

    def session(self):
        if self._session is None:
            self._cluster, self._session = session(self.s, keyspace=self.s.cassandra_keyspace, metadata=False)
            self._statements = {t: self._session.prepare(insert_cql(t)) for t in TABLES}
        return self._session

    def convert(self, p: dict) -> tuple:
        return row(p)

    def batches(self, rows: list[tuple]):
        from cassandra.query import BatchStatement, BatchType

        size = max(1, self.s.cassandra_batch_rows)
        route, day = COLUMNS.index("route"), COLUMNS.index("flight_date")
        by_partition = sorted(rows, key=lambda r: (r[route], r[day]))
        for table, table_rows in zip(TABLES, (rows, by_partition)):
            for start in range(0, len(table_rows), size):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for values in table_rows[start:start + size]:
                    batch.add(self._statements[table], values)
                yield batch, ()

    def write(self, rows: list[tuple]) -> int:
        from cassandra.concurrent import execute_concurrent

        if not rows:
            return 0
        sess = self.session()
        results = execute_concurrent(sess, self.batches(rows), concurrency=self.concurrency,
                                     raise_on_first_error=True, execution_profile=WRITE)
        failed = [r for r in results if not r.success]
        if failed:
            raise RuntimeError(f"{len(failed)} Cassandra batches failed: {failed[0].result_or_exc}")
        return len(rows)

    def reset(self):
        """Drop the connection after a failure so the next attempt reconnects."""
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None


# -- reading -----------------------------------------------------------------------------------
def by_uuid(sess, uuid: str):
    return sess.execute("SELECT * FROM predictions_by_uuid WHERE uuid = %s", [uuid]).one()


def route_day(sess, route: str, flight_date: dt.date) -> list:
    """Predictions of one route on one flight date, newest request first."""
    return sess.execute("SELECT * FROM predictions_by_route_day WHERE route = %s AND flight_date = %s",
                        [route, flight_date]).all()


def uuids_by_uuid(sess, uuids: list[str], chunk: int = 100) -> set[str]:
    """Which of ``uuids`` predictions_by_uuid holds."""
    lookup = sess.prepare("SELECT uuid FROM predictions_by_uuid WHERE uuid IN ?")
    found = set()
    for start in range(0, len(uuids), chunk):
        found.update(r.uuid for r in sess.execute(lookup, (uuids[start:start + chunk],)))
    return found


def route_day_rows_per_uuid(sess, uuids, partitions=None) -> dict[str, int]:
    """Rows per UUID in predictions_by_route_day for the wanted ``uuids`` (every UUID should
    have exactly one row). Reads only ``partitions`` ((route, flight_date) pairs) when given,
    else scans the table (after a bench run, whose requests span every route and date)."""
    wanted = set(uuids)
    if partitions is None:
        results = [sess.execute("SELECT uuid FROM predictions_by_route_day")]
    else:
        query = sess.prepare("SELECT uuid FROM predictions_by_route_day WHERE route = ? AND flight_date = ?")
        results = [sess.execute(query, (route, day)) for route, day in sorted(set(partitions))]
    counts: dict[str, int] = {}
    for rows in results:
        for r in rows:
            if r.uuid in wanted:
                counts[r.uuid] = counts.get(r.uuid, 0) + 1
    return counts
