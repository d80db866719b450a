"""PostgreSQL (Debian's package) as FerretDB's storage, on ``Settings.host:postgres_port``.

Why PostgreSQL under FerretDB: on SQLite, FerretDB 1.24 pushes no filter down but ``{_id: <string>}``,
so every history query decodes the whole collection; on PostgreSQL it pushes top-level
equality filters down as ``_jsonb->'field' @> value``, which GIN expression indexes serve
(``flightdelay.stores.mongo.POSTGRES_INDEXES``; docs/stores-and-querying.md).

The cluster lives in the workdir (``<state>/postgres/data``; under /var/tmp/flightdelay-postgres when
the server user cannot reach the workdir, e.g. a clone under /root), is created by ``initdb`` on the first
start only, listens on TCP loopback only (no Unix socket) with trust authentication (a local
development stack: nothing but loopback can reach it). PostgreSQL refuses to run as root, so
when the launcher runs as root the server runs as ``FD_POSTGRES_USER`` (default ``postgres``,
the system user the Debian package creates) through ``setpriv``, which execs: the pid the
launcher tracks is the postmaster's own.
"""
from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from flightdelay.config import Settings
from infra.process import StackError
from infra.services.base import Service

# Statements are prepared by FerretDB's driver (pgx) with the field name as a parameter
# (``_jsonb->$1 @> $2``); only a custom plan, which sees the value, can match an expression
# index, and PostgreSQL may switch a prepared statement to a generic plan after five runs.
SERVER_OPTIONS = {
    "listen_addresses": None,  # filled with Settings.host
    "unix_socket_directories": "",
    "plan_cache_mode": "force_custom_plan",
    "shared_buffers": "128MB",
    "max_connections": "100",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
}


def bin_dir() -> Path | None:
    """Newest PostgreSQL of the Debian layout (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def tool(name: str) -> str:
    found = bin_dir()
    if found is None or not (found / name).exists():
        raise StackError(f"postgres: {name} not found; install Debian's PostgreSQL "
                         "(apt-get install -y postgresql; `make up` does this when it is missing)")
    return str(found / name)


def as_server_user(s: Settings, cmd: list[str]) -> list[str]:
    """``cmd`` run as the PostgreSQL user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(s.postgres_user)
    except KeyError:
        raise StackError(f"postgres: system user {s.postgres_user!r} does not exist (the Debian "
                         "package creates `postgres`; or set FD_POSTGRES_USER)") from None
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, f"--reuid={s.postgres_user}", f"--regid={s.postgres_user}", "--init-groups", "--", *cmd]


def reachable_by_server_user(s: Settings, path: Path) -> bool:
    """Can the server user traverse to ``path``? (Not under a root-only home such as /root.)"""
    if os.geteuid() != 0:
        return True
    probe = subprocess.run(as_server_user(s, ["test", "-x", str(path)]), capture_output=True)
    return probe.returncode == 0


def data_dir(s: Settings, workdir: Path) -> Path:
    """The cluster's directory: ``<workdir>/data``, or, when the server user cannot reach the
    workdir (a clone under /root), a directory of its own under /var/tmp named after it."""
    if reachable_by_server_user(s, workdir):
        return workdir / "data"
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp/flightdelay-postgres") / digest


def server_env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    if os.geteuid() == 0:
        env["HOME"] = pwd.getpwnam(s.postgres_user).pw_dir
    return env


def psql(s: Settings, sql: str, database: str = "ferretdb", timeout: float = 30.0) -> str:
    """Run ``sql`` with psql over TCP as the superuser; returns unaligned, tuples-only output."""
    cmd = [tool("psql"), "-h", s.host, "-p", str(s.postgres_port), "-U", s.postgres_user, "-d", database,
           "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = str(max(1, int(timeout)))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


class Postgres(Service):
    name = "postgres"
    archive_store = True
    start_timeout = 60.0
    stop_grace = 30.0

    def port(self, s: Settings) -> int:
        return s.postgres_port

    def install(self, s: Settings) -> None:
        tool("postgres")  # the Makefile's `postgresql` target installs the Debian package

    def prepare(self, s: Settings, workdir: Path) -> None:
        data = data_dir(s, workdir)
        if data.parent != workdir:
            data.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            (workdir / "data-location.txt").write_text(f"{data}\n")
            print(f"[postgres] {s.postgres_user} cannot reach {workdir}: data in {data}", flush=True)
        if (data / "PG_VERSION").exists():
            return
        if data.exists():  # a half-finished initdb: start over
            shutil.rmtree(data)
        data.mkdir(parents=True, mode=0o700)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(s.postgres_user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        print(f"[postgres] initdb {data} (first start only)", flush=True)
        cmd = as_server_user(s, [tool("initdb"), "-D", str(data), "-U", s.postgres_user, "--auth=trust",
                                 "--encoding=UTF8", "--locale=C", "--no-instructions"])
        result = subprocess.run(cmd, capture_output=True, text=True, env=server_env(s))
        if result.returncode != 0:
            raise StackError(f"postgres: initdb failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def command(self, s: Settings, workdir: Path) -> list[str]:
        options = dict(SERVER_OPTIONS, listen_addresses=s.host)
        cmd = [tool("postgres"), "-D", str(data_dir(s, workdir)), "-p", str(s.postgres_port)]
        for key, value in options.items():
            cmd += ["-c", f"{key}={value}"]
        return as_server_user(s, cmd)

    def env(self, s: Settings) -> dict[str, str]:
        return server_env(s)

    def probe(self, s: Settings) -> None:
        psql(s, "SELECT 1", database="postgres", timeout=3.0)

    def bootstrap(self, s: Settings) -> None:
        """FerretDB's database (it creates its schemas and tables itself)."""
        if psql(s, "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'", database="postgres") != "1":
            psql(s, "CREATE DATABASE ferretdb", database="postgres")
            print("[postgres] created database ferretdb", flush=True)
