"""The local stack launcher: install, start, probe, stop every server on loopback.

Usage:
    python -m infra up [SERVICE ...]      install what is missing, start servers, create topics etc.
    python -m infra down [SERVICE ...]    stop the servers this launcher started (by pid)
    python -m infra status                one line per service: up/down, port, pid, log
    python -m infra install [SERVICE ...] only fetch into the cache
    python -m infra bootstrap [SERVICE ...]  only create topics, keyspace and tables, indexes, the HDFS
                                          directory and the registry's first model version, on servers
                                          someone else started (e.g. containers); waits for each
    python -m infra nifi-flow FILE        write NiFi's flow file (flow.json.gz) for these settings

Without SERVICE names every server is meant (bootstrap: the stores, Kafka and MLflow; the Spark
cluster only with FD_SPARK_CLUSTER=1). With FD_CLUSTER=1, Kafka, Cassandra, HDFS and the Spark
workers run as several nodes (kafka-1, kafka-2, ...; the server's name means all of its nodes);
`down` stops the nodes and the single servers alike, `status` lists what the settings run and
whatever else runs. State (data, logs, pid files) lives in FD_STATE_DIR,
downloads in FD_CACHE_DIR; see ``python -m flightdelay.config``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flightdelay.config import Settings, load_settings
from infra.process import StackError, alive, read_tracked, spawn, tail, terminate
from infra.services import all_services, by_name, start_order, with_needs
from infra.services.base import Service
from infra.services.spark_connector import install_spark_connector

log = logging.getLogger(__name__)


def workdir(s: Settings, svc: Service) -> Path:
    return s.state / svc.name


def pid_file(s: Settings, svc: Service) -> Path:
    return workdir(s, svc) / "pid.json"


def log_file(s: Settings, svc: Service) -> Path:
    return s.state / "logs" / f"{svc.name}.log"


def is_up(s: Settings, svc: Service) -> bool:
    return alive(read_tracked(pid_file(s, svc)))


def probe_ok(s: Settings, svc: Service) -> bool:
    try:
        svc.probe(s)
        return True
    except Exception:  # any failure of a probe just means "not ready yet"
        return False


def start(s: Settings, svc: Service, *, wait: bool = True) -> bool:
    """Start ``svc`` unless it already runs; return True if this call started it. With
    ``wait=False`` a started server is left starting: call ``finish_start`` later."""
    wd = workdir(s, svc)
    wd.mkdir(parents=True, exist_ok=True)
    tracked = read_tracked(pid_file(s, svc))
    if alive(tracked):
        wait_ready(s, svc, tracked)
        svc.bootstrap(s)  # idempotent: a newer schema or topic list applies without a restart
        print(f"[{svc.name}] already up (pid {tracked.pid}) at {svc.url(s)}", flush=True)
        return False
    if probe_ok(s, svc):
        raise StackError(f"{svc.name}: something not started by this launcher already answers on "
                         f"{svc.url(s)}; stop it or choose another port (python -m flightdelay.config)")
    svc.install(s)
    svc.prepare(s, wd)
    began = time.monotonic()
    tracked = spawn(svc.command(s, wd), cwd=wd, log_file=log_file(s, svc), pid_file=pid_file(s, svc),
                    env=svc.env(s), nice=svc.nice(s))
    print(f"[{svc.name}] starting (pid {tracked.pid}), log {log_file(s, svc)}", flush=True)
    if wait:
        finish_start(s, svc, began)
    return True


def finish_start(s: Settings, svc: Service, began: float | None = None) -> None:
    began = time.monotonic() if began is None else began
    wait_ready(s, svc, read_tracked(pid_file(s, svc)))
    svc.bootstrap(s)
    print(f"[{svc.name}] up at {svc.url(s)} in {time.monotonic() - began:.1f} s", flush=True)


def wait_ready(s: Settings, svc: Service, tracked=None) -> None:
    """Probe ``svc`` until it answers, at most its start timeout. With ``tracked`` (a server this
    launcher started) an exit during start-up fails at once, errors quote its log, and a line
    every 15 s says it is still starting; without, the server is someone else's to watch."""
    began = time.monotonic()
    next_note = began + 15
    last_error = "no answer yet"
    while True:
        try:
            svc.probe(s)
            return
        except Exception as exc:  # the probe's failure is the information we report
            last_error = f"{type(exc).__name__}: {exc}"
        if tracked is not None and not alive(tracked):
            raise StackError(f"{svc.name} exited during start-up; see {log_file(s, svc)}\n"
                             f"--- last lines of the log ---\n{tail(log_file(s, svc))}")
        now = time.monotonic()
        if now - began > svc.start_timeout:
            where = (f"see {log_file(s, svc)}\n--- last lines of the log ---\n{tail(log_file(s, svc))}"
                     if tracked is not None else f"at {svc.url(s)}")
            raise StackError(f"{svc.name} not ready after {svc.start_timeout:.0f} s ({last_error}); {where}")
        if tracked is not None and now > next_note:
            print(f"[{svc.name}] still starting ({now - began:.0f} s)...", flush=True)
            next_note = now + 15
        time.sleep(0.5)


def stop(s: Settings, svc: Service) -> bool:
    tracked = read_tracked(pid_file(s, svc))
    if not alive(tracked):
        pid_file(s, svc).unlink(missing_ok=True)
        return False
    print(f"[{svc.name}] stopping pid {tracked.pid}", flush=True)
    terminate(tracked, grace=svc.stop_grace)
    pid_file(s, svc).unlink(missing_ok=True)
    return True


# What `bootstrap` does without names: the servers whose bootstrap creates what the platform
# writes to (the others' bootstrap only reports on, or waits for, a server the launcher started).
BOOTSTRAPPED = ("kafka", "mongo", "cassandra", "hdfs", "mlflow")


def bootstrap_only(s: Settings, services: list[Service]) -> None:
    """Each service's bootstrap against a server started elsewhere, once it answers: the same
    code `up` runs after starting a server, so there is one schema, one topic list."""
    for svc in services:
        began = time.monotonic()
        wait_ready(s, svc)  # a server this launcher did not start
        svc.bootstrap(s)
        print(f"[{svc.name}] bootstrapped at {svc.url(s)} in {time.monotonic() - began:.1f} s", flush=True)


def status_line(s: Settings, svc: Service) -> str:
    tracked = read_tracked(pid_file(s, svc))
    running = alive(tracked)
    state = "up" if running and probe_ok(s, svc) else ("starting" if running else "down")
    pid = str(tracked.pid) if running else "-"
    return f"{svc.name:<21} {state:<9} port {svc.port(s):<6} pid {pid:<8} log {log_file(s, svc)}"


def up(s: Settings, services: list[Service]) -> list[Service]:
    """Start ``services`` in order; return those this call started (for a matching teardown).
    A service with ``start_in_background`` starts while the ones after it start; it is waited
    for at the end. The nodes of a ``quorum`` cluster (Kafka's controllers) all start before
    any is waited for: none answers before a majority runs."""
    started, starting = [], []
    for batch in start_batches(services):
        spawned = []
        # A quorum's running nodes wait for the others to answer: start those first.
        for svc in sorted(batch, key=lambda svc: len(batch) > 1 and is_up(s, svc)):
            waits = not svc.start_in_background and len(batch) == 1
            began = time.monotonic()
            if start(s, svc, wait=waits):
                started.append(svc)
                if not waits:
                    (starting if svc.start_in_background else spawned).append((svc, began))
        for svc, began in spawned:
            finish_start(s, svc, began)
    for svc, began in starting:
        finish_start(s, svc, began)
    return started


def start_batches(services: list[Service]) -> list[list[Service]]:
    """``services`` in order, the consecutive nodes of one quorum cluster in one batch."""
    batches: list[list[Service]] = []
    for svc in services:
        if svc.quorum and batches and batches[-1][0].quorum and batches[-1][0].cluster == svc.cluster:
            batches[-1].append(svc)
        else:
            batches.append([svc])
    return batches


def down(s: Settings, services: list[Service]) -> None:
    """Stop ``services`` in reverse start order whatever order they were named in: a server
    stopped before a client of it (PostgreSQL before FerretDB) waits out its grace for the
    client's connections to close."""
    stopped = []
    for batch in start_batches(sorted(services, key=start_order, reverse=True)):
        # A quorum's nodes stop together: the last broker alone would wait for a controller
        # quorum that is gone to acknowledge its shutdown, until SIGKILLed.
        with ThreadPoolExecutor(len(batch)) as pool:
            stopped += [svc.name for svc, done in zip(batch, pool.map(lambda svc: stop(s, svc), batch)) if done]
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "install", "bootstrap", "nifi-flow"])
    parser.add_argument("services", nargs="*", help="service names (nifi-flow: the file to write)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    s = load_settings()
    if args.action == "nifi-flow":
        return write_nifi_flow(s, args.services)
    if args.services:  # `up mongo` also starts the PostgreSQL it stores in
        services = by_name(with_needs(args.services) if args.action in ("up", "install") else args.services, s)
    elif args.action == "bootstrap":
        services = by_name(list(BOOTSTRAPPED), s)
    elif args.action == "status":  # what these settings run, and whatever else runs (e.g. a cluster)
        services = [svc for svc in all_services() if svc.enabled(s) or is_up(s, svc)]
    else:  # down also covers what other settings enable (e.g. a cluster started earlier)
        services = all_services(s if args.action in ("up", "install") else None)
    try:
        if args.action == "bootstrap":
            bootstrap_only(s, services)
        elif args.action == "up":
            began = time.monotonic()
            install_spark_connector(s)
            up(s, services)
            print(f"stack up in {time.monotonic() - began:.1f} s", flush=True)
        elif args.action == "down":
            down(s, services)
        elif args.action == "install":
            install_spark_connector(s)
            for svc in services:
                svc.install(s)
        else:
            for svc in services:
                print(status_line(s, svc))
    except StackError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def write_nifi_flow(s: Settings, args: list[str]) -> int:
    """NiFi's flow file, rendered exactly as `up` renders it before starting NiFi (for a NiFi
    that someone else starts, e.g. the official container, which loads it at start)."""
    from nifi import deploy

    if len(args) != 1:
        print("usage: python -m infra nifi-flow FILE", file=sys.stderr)
        return 2
    deploy.write_flow(s, Path(args[0]))
    print(f"[nifi] flow written to {args[0]} (Kafka {s.kafka_bootstrap}, topic {s.response_topic})", flush=True)
    return 0
