"""Query benchmark: the history pages (MongoDB wire, FerretDB) and the archive page (HDFS
parquet) at a given number of stored predictions.

Usage:
    python -m bench.queries [--n 1000000] [--days 90] [--repeat 20] [--keep] [--reuse]
                            [--only history|archive] [--legacy] [--bursts RATE:SECONDS,...]

Starts the servers it needs (like `make up`), then loads --n synthetic predictions (real
routes and carriers of the served model's reference data, requests spread over the last
--days days, in request order) straight into the stores through the platform's own writers,
into bench-only places: the collection ``bench_queries`` (and its summary) and the archive
path ``<FD_PREDICTION_ARCHIVE_PATH>_bench``. Then times each page/query --repeat times (p50/p95):
history first and deep pages (40 pages down, by keyset cursor), per filter; the archive
summary cold (a new client, nothing cached in this process) and warm. --legacy also times
the query shape the history page used before (count + sort + skip) on the same data.
--reuse skips the load when the bench collection already holds --n predictions; --keep
leaves the bench data in place. --bursts gives the history data a bursty shape: each
RATE:SECONDS is a burst of that many predictions a second, starting on a 10-minute slot's
boundary, one burst a day from 3 days ago, taken out of --n (the rest still spread over --days,
so newer traffic follows the bursts); e.g. 1000:600 (600,000 in one slot) and 10000:30. The
history is then also timed on each burst's day: page 1 lands at the burst's end, the deeper
page inside it. Prints progress, then as its last line one JSON object.
"""
from __future__ import annotations

import argparse
import dataclasses
import heapq
import os
import subprocess
import time
from pathlib import Path

from bench import archive_load
from flightdelay.config import Settings, load_settings
from flightdelay.reference import load_reference
from flightdelay.stores import mongo
from harness.machine import process_tree, rss_mb
from harness.progress import say
from harness.results import publish
from harness.stats import percentiles_ms
from harness.traffic import synthetic_predictions
from infra import launcher
from infra.services import by_name, with_needs

BENCH_COLLECTION = "bench_queries"
DEEP_PAGE = 40


def bench_settings(s: Settings) -> Settings:
    return dataclasses.replace(s, mongo_collection=BENCH_COLLECTION,
                               prediction_archive_path=f"{s.prediction_archive_path}_bench")


# -- process figures ----------------------------------------------------------------------------
def server_pids(s: Settings, names: list[str]) -> list[int]:
    pids = []
    for svc in by_name(names):
        tracked = launcher.read_tracked(launcher.pid_file(s, svc))
        if tracked is not None:
            pids.append(tracked.pid)
    return pids


def du_mb(path: Path) -> float | None:
    result = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True)
    return float(result.stdout.split()[0]) if result.returncode == 0 else None


def postgres_mb(s: Settings, collection: str) -> float | None:
    """On-disk size of FerretDB's tables (with indexes and TOAST) of ``collection`` and its summary."""
    if s.mongo_backend != "postgresql":
        return None
    from infra.services.mongo import postgres_table
    from infra.services.postgres import psql

    total = 0
    for name in (collection, f"{collection}_days"):
        table = postgres_table(s, name)
        if table:
            total += int(psql(s, f"SELECT pg_total_relation_size('\"{s.mongo_database}\".\"{table}\"')"))
    return total / 1e6


# -- loading ------------------------------------------------------------------------------------
def parse_bursts(text: str | None) -> list[tuple[int, int]]:
    """``RATE:SECONDS,...`` -> [(rate, seconds), ...]."""
    if not text:
        return []
    return [(int(rate), int(seconds)) for rate, seconds in (part.split(":") for part in text.split(","))]


def burst_starts(bursts: list[tuple[int, int]], now_s: float) -> list[int]:
    """Epoch ms each burst starts: a slot boundary at 10:00 UTC, one day apart, from 3 days ago."""
    day0 = int(now_s // 86400) * 86400 - 3 * 86400
    return [(day0 - i * 86400 + 10 * 3600) * 1000 for i in range(len(bursts))]


def bursty_predictions(n: int, days: int, bursts: list[tuple[int, int]]):
    """``n`` predictions in request order: each burst at its rate, the rest spread over ``days``."""
    in_bursts = sum(rate * seconds for rate, seconds in bursts)
    if in_bursts > n:
        raise SystemExit(f"--bursts hold {in_bursts:,} predictions, more than --n {n:,}")
    streams = [synthetic_predictions(n - in_bursts, days)]
    for i, ((rate, seconds), start) in enumerate(zip(bursts, burst_starts(bursts, time.time()))):
        def burst(rate=rate, seconds=seconds, start=start, seed=100 + i):
            for j, p in enumerate(synthetic_predictions(rate * seconds, 1, seed=seed)):
                yield {**p, "requested_at": start + j * 1000 // rate, "predicted_at": start + j * 1000 // rate + 40}
        streams.append(burst())
    return heapq.merge(*streams, key=lambda p: p["requested_at"])


def load_mongo(s: Settings, n: int, days: int, chunk: int = 5000, bursts: list[tuple[int, int]] | None = None) -> float:
    mongo.drop_collection(s)
    mongo.ensure_collection(s, mongo_indexes=s.mongo_backend not in ("postgresql", "sqlite"))
    if s.mongo_backend == "postgresql":
        from infra.services.mongo import ensure_postgres_indexes

        ensure_postgres_indexes(s, s.mongo_collection)
    writer = mongo.MongoWriter(s)
    began = last_note = time.monotonic()
    batch: list[dict] = []
    done = 0
    for p in bursty_predictions(n, days, bursts or []):
        batch.append(writer.convert(p))
        if len(batch) == chunk:
            done += writer.write(batch)
            batch = []
            if time.monotonic() - last_note > 10:
                rate = done / (time.monotonic() - began)
                say(f"mongo: {done:,}/{n:,} loaded, {rate:,.0f}/s, ~{(n - done) / rate:,.0f} s left")
                last_note = time.monotonic()
    done += writer.write(batch)
    writer.reset()
    took = time.monotonic() - began
    say(f"mongo: {done:,} predictions loaded in {took:,.0f} s ({done / took:,.0f}/s)")
    return took


def mongo_holds(s: Settings, n: int) -> bool:
    with mongo.client(s) as c:
        everything = mongo.summary_collection(c, s).find_one({"_id": mongo.ALL_DAYS})
    return bool(everything) and everything.get("n") == n


# -- timing -------------------------------------------------------------------------------------
def timed(action, repeat: int) -> dict:
    times = []
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        times.append((time.perf_counter() - began) * 1000)
    return {**percentiles_ms(times, (50, 95)), "max_ms": round(max(times), 1),
            "rows": len(result.rows) if hasattr(result, "rows") else None,
            "count": result.count if isinstance(result, mongo.HistoryPage) else None}


def history_cases(s: Settings, days: int) -> dict[str, mongo.HistoryQuery]:
    reference = load_reference()
    origin = reference.origins()[0]
    route = f"{origin}-{reference.destinations(origin)[0]}"
    carrier = sorted(reference.carriers)[0]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    week_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400))
    month_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - days // 3 * 86400))
    return {
        "all": mongo.HistoryQuery(),
        f"route {route}": mongo.HistoryQuery(filters={"Route": route}),
        f"carrier {carrier}": mongo.HistoryQuery(filters={"Carrier": carrier}),
        "class 3": mongo.HistoryQuery(filters={"prediction": 3}),
        f"route {route} + class 3": mongo.HistoryQuery(filters={"Route": route, "prediction": 3}),
        f"requests {week_ago}..{today}": mongo.HistoryQuery(date_from=week_ago, date_to=today),
        f"carrier {carrier}, requests {month_ago}..{week_ago}":
            mongo.HistoryQuery(filters={"Carrier": carrier}, date_from=month_ago, date_to=week_ago),
    }


def burst_cases(bursts: list[tuple[int, int]]) -> dict[str, mongo.HistoryQuery]:
    """Every filter the page offers, on each burst's day (page 1 lands at the burst's end)."""
    reference = load_reference()
    origin = reference.origins()[0]
    route = f"{origin}-{reference.destinations(origin)[0]}"
    carrier = sorted(reference.carriers)[0]
    cases = {}
    for (rate, seconds), start in zip(bursts, burst_starts(bursts, time.time())):
        day = time.strftime("%Y-%m-%d", time.gmtime(start / 1000))
        on = f"burst {rate:,}/s x {seconds} s, {day}"
        flight_day = time.strftime("%Y-%m-%d", time.gmtime(start / 1000 + 5 * 86400))
        for name, filters in (("", {}), (f"route {route}", {"Route": route}), (f"carrier {carrier}", {"Carrier": carrier}),
                              ("class 0", {"prediction": 0}), (f"route {route} + class 3", {"Route": route, "prediction": 3}),
                              (f"flight date {flight_day}", {"FlightDate": flight_day}), ("model 1", {"model_version": "1"})):
            cases[f"{on}{': ' + name if name else ''}"] = mongo.HistoryQuery(filters=filters, date_from=day, date_to=day)
    return cases


def time_history(s: Settings, days: int, repeat: int, bursts: list[tuple[int, int]] | None = None) -> dict:
    figures = {}
    with mongo.client(s) as c:
        coll, summary = mongo.collection(c, s), mongo.summary_collection(c, s)
        for name, query in {**history_cases(s, days), **burst_cases(bursts or [])}.items():
            first = timed(lambda q=query: mongo.history(coll, summary, q), repeat)
            deep_query, depth = query, 1
            while depth < DEEP_PAGE:  # follow the cursor down like a reader clicking "older"
                page = mongo.history(coll, summary, deep_query)
                if page.next_before is None:
                    break
                deep_query = dataclasses.replace(query, before=page.next_before)
                depth += 1
            deep = timed(lambda q=deep_query: mongo.history(coll, summary, q), repeat)
            figures[name] = {"first": first, f"page_{depth}": deep}
            say(f"history {name}: first page p50 {first['p50_ms']} ms p95 {first['p95_ms']} ms "
                f"({first['rows']} rows, count {first['count']}); page {depth} p50 {deep['p50_ms']} ms "
                f"p95 {deep['p95_ms']} ms")
    return figures


def time_legacy(s: Settings, repeat: int) -> dict:
    """The query shape of the history page before the bucketed walk: count + sort + skip."""
    figures = {}
    with mongo.client(s, timeout_ms=600_000) as c:
        coll = mongo.collection(c, s)
        for name, query, skip in (("all, page 1", {}, 0), ("all, page 40", {}, 25 * 39),
                                  ("route, page 1", {"Route": "EWR-IAH"}, 0)):
            def legacy(q=query, k=skip):
                coll.count_documents(q)
                return list(coll.find(q, {"_id": 0}).sort("requested_at", -1).skip(k).limit(25))

            figures[name] = timed(legacy, repeat)
            say(f"legacy history {name}: p50 {figures[name]['p50_ms']} ms p95 {figures[name]['p95_ms']} ms")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--only", choices=["history", "archive"])
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--legacy", action="store_true")
    parser.add_argument("--bursts", help="RATE:SECONDS,... bursts taken out of --n (see the module docstring)")
    args = parser.parse_args(argv)
    bursts = parse_bursts(args.bursts)
    base = load_settings()
    s = bench_settings(base)
    wanted = {"history": ["mongo"], "archive": ["hdfs"]}.get(args.only, ["mongo", "hdfs"])
    launcher.up(base, by_name(with_needs(wanted)))
    result: dict = {"n": args.n, "days": args.days, "repeat": args.repeat, "mongo_backend": s.mongo_backend}
    if "mongo" in wanted:
        # The servers with their children: PostgreSQL forks a backend per connection.
        store_pids = server_pids(base, with_needs(["mongo"]))
        rss_before = rss_mb(process_tree(*store_pids))
        if args.reuse and mongo_holds(s, args.n):
            say(f"mongo: reusing the {args.n:,} predictions of {BENCH_COLLECTION}")
        else:
            result["mongo_load_s"] = round(load_mongo(s, args.n, args.days, bursts=bursts), 1)
        result["mongo_rss_mb_after_load"] = round(rss_mb(process_tree(*store_pids)), 1)
        result["mongo_rss_mb_before_load"] = round(rss_before, 1)
        disk = postgres_mb(s, s.mongo_collection)
        result["mongo_disk_mb"] = None if disk is None else round(disk, 1)
        result["history"] = time_history(s, args.days, args.repeat, bursts)
        if bursts:
            result["bursts"] = [{"rate_per_s": r, "seconds": sec, "predictions": r * sec} for r, sec in bursts]
        if args.legacy:
            result["legacy_history"] = time_legacy(s, max(1, min(args.repeat, 3)))
        result["mongo_rss_mb_after_queries"] = round(rss_mb(process_tree(*store_pids)), 1)
        if not args.keep:
            mongo.drop_collection(s)
    if "hdfs" in wanted:
        result["archive"] = archive_load.run(s, args.n, args.days, args.repeat, reuse=args.reuse, keep=args.keep)
    say(f"done (pid {os.getpid()})")
    publish("queries", result, args, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
