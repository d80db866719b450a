"""MongoDB wire protocol server: FerretDB v1.24.2 embedded in a small Go wrapper, storing in
PostgreSQL (``FD_MONGO_BACKEND=postgresql``, the default: infra/services/postgres.py) or SQLite.

The wrapper's source is ``infra/mongo`` (main.go, go.mod, go.sum); the binary is built with the
local Go toolchain into ``<cache>/bin/ferretdb-<source fingerprint>``, so worktrees of different
wrapper sources never rebuild each other's binary. Data: PostgreSQL's schema ``<database>``
in its database ``ferretdb``; on SQLite one ``<database>.sqlite`` file per database in
``<state>/mongo/data``.

On PostgreSQL FerretDB pushes top-level equality filters down as ``_jsonb->'field' @> value``;
the btree indexes FerretDB itself creates (``_jsonb->'field'``) cannot serve ``@>``, so bootstrap()
adds GIN expression indexes on the history page's equality keys straight onto FerretDB's
table (``ensure_postgres_indexes``, checked with EXPLAIN in tests/integration/test_mongo.py).

FerretDB v1 on SQLite only pushes a filter down to SQL when it is exactly ``{_id: <string>}``;
every other find (and every sort but ``$natural``) decodes the whole collection and filters/sorts
in memory, so secondary indexes cost write time but do not speed queries up. Keep history
queries bounded and the collection modest. Even the ``_id`` pushdown misses FerretDB's own
unique index (the SQL says ``_ferretdb_sjson->'$._id'``, the index ``_ferretdb_sjson->"_id"``),
which makes every find / update / delete by ``_id`` a full table scan; bootstrap() therefore
adds one SQLite expression index matching the query to the prediction collection's table
(invisible to MongoDB clients, dropped with the collection).
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import check_mongo
from flightdelay.stores import mongo as mongo_store
from infra.process import StackError
from infra.services.base import Service, fingerprint

log = logging.getLogger(__name__)

# SQLite's default page cache (2 MiB) makes inserts slow down as the _id indexes (random
# UUIDs) outgrow it; 64 MiB keeps the insert rate steady (docs/decisions.md).
# Durability settings stay FerretDB's own.
SQLITE_PRAGMAS = ("cache_size(-65536)",)

SRC = REPO_ROOT / "infra" / "mongo"
SOURCES = ("go.mod", "go.sum", "main.go")
GO_FALLBACK = Path("/usr/local/go/bin/go")


def go_binary() -> str:
    found = shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.exists() else None)
    if found is None:
        raise StackError("mongo: the Go toolchain (>= 1.24) is needed to build FerretDB; "
                         "put `go` on PATH (e.g. /usr/local/go/bin)")
    return found


def binary(s: Settings) -> Path:
    return s.cache / "bin" / f"ferretdb-{fingerprint(*(SRC / name for name in SOURCES))}"


def build(s: Settings) -> Path:
    """Build the wrapper into the cache unless a binary of the same source is already there."""
    target = binary(s)
    if target.exists():
        return target
    go = go_binary()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".ferretdb.{os.getpid()}.tmp")
    env = dict(os.environ, CGO_ENABLED="0")  # modernc.org/sqlite is pure Go: static binary, no gcc
    cmd = [go, "build", "-v", "-mod=readonly", "-trimpath", "-buildvcs=false", "-o", str(tmp), "."]
    print(f"[mongo] building FerretDB wrapper {SRC} -> {target} "
          "(a cold build compiles ~540 packages: 1.5-3 min on 2 cores)...", flush=True)
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=SRC, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    packages, lines, next_note = 0, [], began + 10
    assert proc.stdout is not None
    for line in proc.stdout:  # `go build -v` names each package as it is compiled
        line = line.rstrip()
        lines.append(line)
        if line.startswith("go: downloading"):
            print(f"[mongo]   {line}", flush=True)
        elif line and not line.startswith(("go:", "#", " ")):
            packages += 1
        if time.monotonic() > next_note:
            print(f"[mongo]   {packages} packages compiled, {time.monotonic() - began:.0f} s (last: {line})",
                  flush=True)
            next_note = time.monotonic() + 10
    if proc.wait() != 0:
        tmp.unlink(missing_ok=True)
        raise StackError(f"mongo: `{' '.join(cmd)}` failed in {SRC}:\n" + "\n".join(lines[-40:]))
    tmp.replace(target)  # atomic: a concurrent build of the same source just wins or loses
    print(f"[mongo] built {target} ({target.stat().st_size / 1e6:.0f} MB, {packages} packages) "
          f"in {time.monotonic() - began:.0f} s", flush=True)
    return target


def data_dir(workdir: Path) -> Path:
    return workdir / "data"


def sqlite_file(s: Settings) -> Path:
    """FerretDB's file of the platform database (the launcher's workdir is <state>/<name>)."""
    return data_dir(s.state / Mongo.name) / f"{s.mongo_database}.sqlite"


def ensure_id_lookup_index(s: Settings) -> None:
    """Index the expression FerretDB's ``_id`` pushdown queries with (see module docstring).

    Written straight into the SQLite file while the server runs (WAL mode allows a second
    connection; FerretDB re-prepares its statements after the schema change). An optimisation
    only: on failure it logs a warning and the server keeps working, just slower.
    """
    path = sqlite_file(s)
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=10, isolation_level=None)
    except sqlite3.Error as exc:
        log.warning("mongo: cannot open %s to add the _id lookup index: %s", path, exc)
        return
    try:
        row = con.execute("SELECT table_name FROM _ferretdb_collections WHERE name = ?",
                          (s.mongo_collection,)).fetchone()
        if row is None:
            log.warning("mongo: no table for collection %s in %s", s.mongo_collection, path)
            return
        table = row[0].replace('"', '""')
        con.execute(f'CREATE INDEX IF NOT EXISTS "{table}__flightdelay_id_lookup" '
                    f"ON \"{table}\" (_ferretdb_sjson->'$._id')")
    except sqlite3.Error as exc:
        log.warning("mongo: could not add the _id lookup index to %s: %s", path, exc)
    finally:
        con.close()


def postgres_table(s: Settings, collection: str) -> str | None:
    """FerretDB's PostgreSQL table of ``collection`` (schema = the MongoDB database), or None."""
    from infra.services.postgres import psql

    meta = f'"{s.mongo_database}"._ferretdb_database_metadata'
    name = collection.replace("'", "''")
    return psql(s, f"SELECT _jsonb->>'table' FROM {meta} WHERE _jsonb->>'_id' = '{name}'") or None


def ensure_postgres_indexes(s: Settings, collection: str) -> list[str]:
    """One GIN index per equality key of the history queries (mongo_store.postgres_gin_fields:
    the prediction collection's keys, its summary's ``_id``) on FerretDB's tables of
    ``collection`` and its summary: what its pushed-down ``_jsonb->'f' @> v`` can use.
    Invisible to MongoDB clients, dropped with the collection; idempotent.

    ``fastupdate = off``: with GIN's pending list (the default) every query also scans the
    list of recent inserts, up to 4 MB: 27 ms of a 28 ms hour lookup at a million predictions,
    against 1 ms once the list is merged (EXPLAIN ANALYZE, bench_queries)."""
    changes = []
    for name, fields in mongo_store.postgres_gin_fields(collection).items():
        changes += ensure_gin_indexes(s, name, fields)
    return changes


def ensure_gin_indexes(s: Settings, collection: str, fields: tuple[str, ...]) -> list[str]:
    from infra.services.postgres import psql

    table = postgres_table(s, collection)
    if table is None:
        return [f"no PostgreSQL table for {collection} yet"]
    qualified = f'"{s.mongo_database}"."{table}"'
    have = set(psql(s, f"SELECT indexname FROM pg_indexes WHERE schemaname = '{s.mongo_database}' "
                       f"AND tablename = '{table}'").split())
    changes = []
    for field in fields:
        index = f"{table}_fd_gin_{field.lower()}"
        if index not in have:
            psql(s, f"CREATE INDEX IF NOT EXISTS \"{index}\" ON {qualified} USING gin ((_jsonb->'{field}')) "
                    "WITH (fastupdate = off)", timeout=600)
            changes.append(f"created PostgreSQL GIN index {index} on {collection}.{field}")
        elif psql(s, f"SELECT 1 FROM pg_class WHERE relname = '{index}' AND 'fastupdate=off' = ANY(reloptions)") != "1":
            psql(s, f"ALTER INDEX \"{s.mongo_database}\".\"{index}\" SET (fastupdate = off); "
                    f"SELECT gin_clean_pending_list('\"{s.mongo_database}\".\"{index}\"')", timeout=600)
            changes.append(f"turned off the pending list of PostgreSQL GIN index {index}")
    return changes


class Mongo(Service):
    name = "mongo"
    archive_store = True
    start_timeout = 30.0
    stop_grace = 15.0

    def port(self, s: Settings) -> int:
        return s.mongo_port

    def install(self, s: Settings) -> None:
        build(s)

    def prepare(self, s: Settings, workdir: Path) -> None:
        data_dir(workdir).mkdir(parents=True, exist_ok=True)

    def command(self, s: Settings, workdir: Path) -> list[str]:
        host = f"[{s.host}]" if ":" in s.host else s.host
        cmd = [str(binary(s)), "-listen-addr", f"{host}:{s.mongo_port}"]
        if s.mongo_backend == "postgresql":
            return cmd + ["-postgresql-url", s.postgres_url]
        if s.mongo_backend != "sqlite":
            raise StackError(f"mongo: FD_MONGO_BACKEND must be postgresql or sqlite, not {s.mongo_backend!r}")
        return cmd + ["-sqlite-dir", str(data_dir(workdir)), "-sqlite-pragmas", ",".join(SQLITE_PRAGMAS)]

    def probe(self, s: Settings) -> None:
        check_mongo(s, timeout=1.0)

    def bootstrap(self, s: Settings) -> None:
        """The prediction collections (flightdelay.stores.mongo), then the indexes FerretDB's
        backend can use: GIN expression indexes on PostgreSQL, the _id lookup index on SQLite."""
        real_mongodb = s.mongo_backend == "mongodb"  # docker-compose: MongoDB's own indexes
        for change in mongo_store.ensure_collection(s, mongo_indexes=real_mongodb):
            print(f"[mongo] {change}", flush=True)
        if s.mongo_backend == "postgresql":
            for change in ensure_postgres_indexes(s, s.mongo_collection):
                print(f"[mongo] {change}", flush=True)
        elif s.mongo_backend == "sqlite":
            ensure_id_lookup_index(s)
