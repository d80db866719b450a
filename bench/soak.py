"""Soak: the platform as `make up` runs it, under a steady load for a long time; flat memory and
nothing lost.

Usage:
    python -m bench.soak [--minutes 10] [--rate 200] [--warmup 60] [--settle 900]

Starts what is not running (like `make up`), then produces valid requests to the request topic
at --rate per second for --minutes (after --warmup seconds at the same rate, which are part of
the run: JVM heaps and caches fill up first), and finally waits (bounded, --settle) until every
output holds every accepted request. The accounting is the fault suite's (harness.ledger): one
response on the response topic and one record in MongoDB, both Cassandra tables, the HDFS
parquet archive and NiFi's text archive per request. The resident memory (RSS) of every
platform process is taken at the start of the timed part, every minute, and at the end.
The soak's requests stay in the platform's stores, like any other traffic.
Prints one progress line per step and, as its last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import time

from flightdelay import status as job_status
from flightdelay.config import Settings, load_settings
from flightdelay.reference import load_reference
from harness.ledger import OUTPUTS, Ledger, Load, Topics
from harness.machine import command_name, process_tree, rss_mb
from harness.progress import printer
from harness.results import publish
from infra import launcher
from infra.process import alive, read_tracked
from infra.services import all_services

log = logging.getLogger("bench.soak")
say = printer("soak")


# -- resident memory of the platform's processes -----------------------------------------------
def platform_rss(s: Settings) -> dict[str, float]:
    """RSS in MB per platform process, by the launcher's pid files: each server with its child
    processes (gunicorn's worker, Airflow's workers); the streaming job split into its Python
    driver and Spark's JVM. HDFS runs its NameNode and DataNode in one MiniDFSCluster JVM."""
    out = {}
    for svc in all_services():
        tracked = read_tracked(launcher.pid_file(s, svc))
        if not alive(tracked):
            continue
        procs = process_tree(tracked.pid)
        if svc.name == "streaming":
            jvm = [p for p in procs if command_name(p) == "java"]
            out["streaming (Python driver)"] = round(rss_mb([p for p in procs if p not in jvm]), 1)
            out["streaming (Spark driver JVM)"] = round(rss_mb(jvm), 1)
            continue
        name = {"hdfs": "hdfs (NameNode + DataNode JVM)", "mongo": "mongo (FerretDB)"}.get(svc.name, svc.name)
        out[name] = round(rss_mb(procs), 1)
    return out


# -- the run -----------------------------------------------------------------------------------
ARCHIVE_QUERIES = ("archive-mongo", "archive-cassandra", "archive-hdfs")


def archive_backlog(s: Settings) -> dict[str, int | None]:
    """Records still to archive per store query, from the job's status (None: not known)."""
    status = job_status.read(s)
    queries = status.queries if status else {}
    return {q: queries[q].backlog if q in queries else None for q in ARCHIVE_QUERIES}


def describe_backlog(backlog: dict[str, int | None]) -> str:
    return ", ".join(f"{q.removeprefix('archive-')} backlog {'?' if n is None else n}" for q, n in backlog.items())


def run(s: Settings, args) -> dict:
    topics = Topics(s)
    topics.start()
    if not topics.ready.wait(60):
        raise RuntimeError("the response topic reader was never assigned its partitions")
    ledger = Ledger(s, topics)
    load = Load(s, load_reference(), args.rate, seed=int(time.time()) % 1000, name="soak")
    say(f"warm-up: {args.rate:g} requests/s for {args.warmup:g} s")
    load.start()
    samples = []
    try:
        load.run_for(args.warmup)
        rss_start = platform_rss(s)
        samples.append({"minute": 0, "rss_mb": rss_start})
        say(f"RSS at the start (MB): {json.dumps(rss_start)}")
        began, sent_at_start = time.monotonic(), load.sent
        end, minute = began + args.minutes * 60, 0
        while time.monotonic() < end:
            load.run_for(min(began + (minute + 1) * 60, end) - time.monotonic())
            minute += 1
            rss, backlog = platform_rss(s), archive_backlog(s)
            samples.append({"minute": round((time.monotonic() - began) / 60, 1), "rss_mb": rss, "backlog": backlog})
            answered = topics.answered(list(load.snapshot()))
            say(f"minute {minute}: sent {load.sent}, accepted {len(load.accepted)}, answered {answered}, "
                f"not accepted {load.failed}; {describe_backlog(backlog)}; total RSS {sum(rss.values()):.0f} MB")
        timed_s = time.monotonic() - began
        sent_timed = load.sent - sent_at_start
    finally:
        load.stop()
    accepted = list(load.snapshot())
    unanswered_at_end = len(accepted) - topics.answered(accepted)
    say(f"load stopped: {len(accepted)} accepted; {unanswered_at_end} not answered yet; waiting up to "
        f"{args.settle:g} s for every output")
    figures = ledger.settle(accepted, args.settle, outputs=OUTPUTS, progress=lambda m: say(m.strip()))
    rss_end = platform_rss(s)
    topics.stop()
    outputs = {o: figures[o] for o in OUTPUTS}
    return {
        "minutes": args.minutes, "rate_per_s": args.rate, "warmup_s": args.warmup,
        "achieved_rate_per_s": round(sent_timed / timed_s, 1), "sent": load.sent, "accepted": len(accepted),
        "not_accepted": load.failed, "unanswered_when_load_stopped": unanswered_at_end,
        "settled_after_s": figures["settled_after_s"],
        "lost": sum(v["lost"] for v in outputs.values()),
        "duplicated_in_stores": sum(v["duplicated"] for o, v in outputs.items() if o != "responses"),
        "duplicate_responses": outputs["responses"]["duplicated"], "outputs": outputs,
        "rss_mb": {p: {"start": rss_start.get(p), "end": rss_end.get(p),
                       "growth": None if p not in rss_start or p not in rss_end else round(rss_end[p] - rss_start[p], 1)}
                   for p in sorted(set(rss_start) | set(rss_end))},
        "rss_samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="timed length of the soak")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="requests per second (default 200: what a shared 2-core machine holds with every "
                             "store and NiFi on; raise it on a quiet machine)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of load before the timed part")
    parser.add_argument("--settle", type=float, default=900.0, help="max seconds to wait for every output")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    s = load_settings()
    say("starting what is not running yet (as make up)")
    launcher.up(s, all_services(s))  # what `make up` starts: the Spark cluster only with FD_SPARK_CLUSTER=1
    figures = run(s, args)
    say("RSS per process, start -> end (MB): " + ", ".join(
        f"{p} {v['start']} -> {v['end']}" for p, v in figures["rss_mb"].items()))
    publish("soak", figures, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
