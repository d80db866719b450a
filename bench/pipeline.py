"""Latency and throughput of the prediction pipeline through Kafka, with all four sinks on.

Usage:
    python -m bench.pipeline [--seconds 60] [--rate 100] [--ramp 1000,2000,5000,10000] [--step-from RATE]
                             [--shadow | --platform]

Runs its own instance of the streaming job on bench-only topics, collection and archive path
(the platform's data stays clean), after starting the servers it needs (like `make up`). With
--platform it runs against the platform as `python -m infra up` / `make up` leaves it instead
(the platform's own streaming job and topics, with NiFi, Airflow, the web app and the monitor
on): it starts nothing, stops nothing, refuses to run when a service is not up, and its
requests stay in the platform's stores like any other traffic (no micro-batch step, no
--shadow: both need a job of the bench's own). The steps:
  1. names the machine (CPU model, cores) and says how busy it was before starting (another
     stack or test run on the same cores shows in every figure);
  2. warm-up, excluded from every figure: --warmup seconds at --warmup-rate requests/s, so the
     JVM has compiled the hot path before anything is measured; then it waits for those
     responses and for the archive queries to catch up (no step starts behind a backlog);
  3. steady: --rate requests/s for --seconds. Latency is measured two ways, each step with its
     p50/p95/p99: as the client sees it (request produced -> response consumed, both clocks in
     this process; ``p50_ms``...) and as Apache Spark's real-time-mode benchmark measures it:
     the response record's Kafka CreateTime (set by the job's Kafka producer) minus the request
     record's (set by this bench's producer), per UUID (``kafka_p50_ms``...; whole ms, Kafka's
     resolution). The difference is the response's way from the job's producer to a consumer;
  4. ramp: each rate of --ramp for --seconds. A step is *held* when every response arrived
     within --grace seconds of the step's end and its p99 is at most --held-p99-ms (1 s: a
     user waiting longer does not call it real time). The ramp stops at the first step not
     held. Between steps the bench waits (at most --settle s) for the archive queries.
     With --step-from RATE each ramp step is entered abruptly instead: after the stores caught
     up, a step at RATE/s for --seconds, then at once (the ramp step's requests made beforehand,
     no wait for the stores) the ramp rate; the record's ``step_from`` holds the RATE steps
     (counted in the totals), its args say ``ramp_mode``;
  5. drain: reads the response topic to its end until every request has a response or none
     came for --drain-quiet s. ``lost`` counts requests with no response after that;
     ``late`` counts responses that came after their step's grace (made, but not in time);
  6. stores: records per UUID in MongoDB and Cassandra once their archive queries caught up;
  7. micro-batch side by side (--microbatch-seconds, 0 turns it off): the same job with
     FD_PREDICT_TRIGGER=microbatch (the original platform's design), the same warm-up, then
     the steady step; its p50/p99 divided by real-time mode's.
With --jfr FILE, the job's JVM is recorded during the ramp (Java Flight Recorder) and the
JSON gains ``profile``: the predict query's share of each candidate operation and its top frames.
With --shadow, the shipped model is registered (under a bench-only model name) with the alias
``challenger`` before the bench jobs start, so every valid request is also scored in shadow
(docs/streaming-job.md); the JSON gains ``shadow`` (the version, and the records on the shadow
topic against the responses). Run once with and once without it to see what shadow scoring costs.
Prints one progress line per step, the table of the steps, and, as its last line, one JSON
object with the figures (its args say ``mode``: "own job" or "platform").
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition

from flightdelay import kafka
from flightdelay import status as job_status
from flightdelay.config import load_settings
from flightdelay.reference import load_reference
from flightdelay.stores import cassandra, mongo
from harness import machine, models, report
from harness.job import JobProcess
from harness.machine import jvm_child
from harness.profile import FlightRecording
from harness.progress import say
from harness.results import publish
from harness.stats import percentiles_ms
from harness.traffic import sample_requests
from infra import launcher
from infra.process import alive, read_tracked
from infra.services import all_services, by_name, with_needs

log = logging.getLogger("bench.pipeline")
LATENCY_MEANS = {"p50_ms": "request produced -> response consumed (the client's view, this process's clock)",
                 "kafka_p50_ms": "response record's Kafka CreateTime - request record's (Apache Spark's real-time "
                                 "mode benchmark); the request's set by this bench's producer, the response's by "
                                 "the job's"}


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


class Collector(threading.Thread):
    """Consumes the response topic; records the first arrival time of every UUID, its record's
    Kafka CreateTime, and how far into each partition it has read. From the topic's beginning,
    or with ``start_offsets`` (partition -> offset) from there: the platform's response topic
    holds every earlier answer."""

    def __init__(self, s, start_offsets: dict[int, int] | None = None):
        super().__init__(daemon=True)
        self.s = s
        self.arrived: dict[str, float] = {}
        self.created: dict[str, int] = {}  # UUID -> its response record's CreateTime, epoch ms
        self.not_create_time = 0  # responses whose record timestamp is not a CreateTime
        self.duplicates = 0
        self.start_offsets = start_offsets
        self.read_to: dict[int, int] = dict(start_offsets or {})  # partition -> next offset to read
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self):
        consumer = kafka.consumer(self.s, f"bench-{time.time()}",
                                  {"auto.offset.reset": "earliest", "fetch.wait.max.ms": 5})
        if self.start_offsets is None:
            consumer.subscribe([self.s.response_topic], on_assign=lambda c, p: self.ready.set())
        else:
            consumer.assign([TopicPartition(self.s.response_topic, p, o) for p, o in self.start_offsets.items()])
            self.ready.set()
        while not self.stop.is_set():
            for msg in kafka.arrived_messages(consumer):
                if not msg.error():
                    self.take(msg.key().decode(), msg.partition(), msg.offset(), msg.timestamp(), time.time())
        consumer.close()

    def take(self, key: str, partition: int, offset: int, timestamp: tuple[int, int], now: float) -> None:
        self.read_to[partition] = offset + 1
        if key in self.arrived:
            self.duplicates += 1
            return
        self.arrived[key] = now
        kind, created_ms = timestamp
        if kind == TIMESTAMP_CREATE_TIME:
            self.created[key] = created_ms
        else:
            self.not_create_time += 1

    def at_end_of(self, watermarks: dict[int, int]) -> bool:
        return all(self.read_to.get(p, 0) >= end for p, end in watermarks.items() if end)


def create_time_ms(sent_at: float) -> int:
    """The Kafka CreateTime of a request sent at ``sent_at`` (epoch s): the bench's producer
    gives each record this timestamp (its requested_at too), as librdkafka would at produce()."""
    return int(sent_at * 1000)


def kafka_latencies_ms(sent_at: dict[str, float], response_created: dict[str, int],
                       uuids: Iterable[str] | None = None) -> list[int]:
    """Response CreateTime minus request CreateTime (ms, sorted) for each UUID of ``uuids``
    (default: every sent one) whose response record's CreateTime is known: the latency Apache
    Spark's real-time-mode benchmark reports, both ends stamped by Kafka producers."""
    return sorted(response_created[u] - create_time_ms(sent_at[u])
                  for u in (sent_at if uuids is None else uuids) if u in response_created)


@functools.cache
def request_producer(s):
    """One producer per bench job, made by its warm-up: a new idempotent producer holds its
    first ~0.5 s of records until the broker gave it a producer id, which made the first
    requests of every step wait up to 570 ms (their CreateTime is stamped at produce())."""
    return kafka.producer(s, {"linger.ms": 1, "queue.buffering.max.messages": 1_000_000})


def send_at_rate(s, requests: list[dict], rate: float, sent: dict[str, float]) -> None:
    """Produce ``requests`` at ``rate``/s in 10 ms ticks; record each send time."""
    producer = request_producer(s)
    began = time.monotonic()
    for i, request in enumerate(requests):
        due = began + i / rate
        delay = due - time.monotonic()
        if delay > 0.01:
            producer.poll(0)
            time.sleep(delay)
        now = time.time()
        request["requested_at"] = create_time_ms(now)
        sent[request["UUID"]] = now
        producer.produce(s.request_topic, key=request["UUID"].encode(), value=json.dumps(request).encode(),
                         timestamp=request["requested_at"])
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)


def step(s, collector: Collector, reference, rate: float, seconds: float, seed: int, grace: float,
         cpu: machine.CpuShares | None = None, requests: list[dict] | None = None) -> dict:
    """One step at ``rate``/s: its latencies (both ways) count the responses that came within
    ``grace`` seconds of its end; the UUIDs and send times stay for the final drain. With ``cpu``,
    the step also says which processes used the CPU while it ran (sending and its grace).
    ``requests`` made beforehand start the step without the pause of making them."""
    if requests is None:
        requests = step_requests(reference, rate, seconds, seed)
    sent: dict[str, float] = {}
    batch_before = predict_batch(s)
    if cpu:
        cpu.start()
    began = time.monotonic()
    send_at_rate(s, requests, rate, sent)
    send_seconds = time.monotonic() - began
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(u in collector.arrived for u in sent):
        time.sleep(0.2)
    cutoff = time.time()
    cpu_pct = cpu.stop() if cpu else None
    in_time = [u for u in sent if collector.arrived.get(u, cutoff + 1) <= cutoff]
    latencies = sorted(round((collector.arrived[u] - sent[u]) * 1000, 1) for u in in_time)
    kafka_latencies = kafka_latencies_ms(sent, collector.created, in_time)
    return {"rate": rate, "seconds": seconds, "sent": len(sent), "send_seconds": round(send_seconds, 1),
            "in_time": len(latencies), **percentiles_ms(latencies), "max_ms": latencies[-1] if latencies else None,
            **percentiles_ms(kafka_latencies, prefix="kafka_"),
            "kafka_max_ms": kafka_latencies[-1] if kafka_latencies else None, "kafka_paired": len(kafka_latencies),
            "batches_ended": predict_batch(s) - batch_before, **({"cpu_pct_of_a_core": cpu_pct} if cpu else {}),
            "sent_at": sent, "cutoff": cutoff}


def step_requests(reference, rate: float, seconds: float, seed: int) -> list[dict]:
    return sample_requests(reference, int(rate * seconds), seed=seed)


def latency_line(result: dict) -> str:
    """Both latencies of a step, for its progress line."""
    return (f"p50 {fmt_ms(result['p50_ms'])}, p95 {fmt_ms(result['p95_ms'])}, p99 {fmt_ms(result['p99_ms'])}; "
            f"Kafka CreateTime to CreateTime p50 {fmt_ms(result['kafka_p50_ms'])}, "
            f"p95 {fmt_ms(result['kafka_p95_ms'])}, p99 {fmt_ms(result['kafka_p99_ms'])}")


def cpu_line(result: dict) -> str:
    return ", ".join(f"{name} {pct:g}" for name, pct in result.get("cpu_pct_of_a_core", {}).items() if pct >= 1)


def predict_batch(s) -> int:
    """The predict query's last completed batch (the job's status file). In real-time mode a
    batch lasts FD_REALTIME_INTERVAL; between two batches (commit, checkpoint, planning the
    next) no task reads Kafka, and the requests of that moment wait: a step that spans a batch
    end shows it in its p99, so each step reports how many batches ended during it. -1 before
    the first batch ended (batch 0 ending is a batch end too). The job writes its status every
    FD_MODEL_POLL_S (10 s): a batch ending in a step's last seconds is counted by the next step."""
    status = job_status.read(s)
    batch = status.batch("predict") if status else None
    return -1 if batch is None else int(batch)


def held(result: dict, max_p99_ms: float) -> bool:
    return (result["in_time"] == result["sent"] and (result["p99_ms"] or 1e12) <= max_p99_ms
            and result["send_seconds"] <= result["seconds"] * 1.1)


def public(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("sent_at", "cutoff")}


def topic_watermarks(s, topic: str) -> dict[int, int]:
    """High watermark of each partition of ``topic``: where a reader is at its end."""
    consumer = kafka.consumer(s, "bench-watermarks")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def drain(s, collector: Collector, sent_at: dict[str, float], quiet_s: float) -> None:
    """Wait until every request has its response, or until none arrived for ``quiet_s`` and
    the collector has read the response topic to its end."""
    last_count, last_change = -1, time.monotonic()
    while True:
        missing = sum(1 for u in sent_at if u not in collector.arrived)
        if missing == 0:
            return
        if len(collector.arrived) != last_count:
            last_count, last_change = len(collector.arrived), time.monotonic()
        elif time.monotonic() - last_change > quiet_s and collector.at_end_of(topic_watermarks(s, s.response_topic)):
            return
        say(f"draining: {missing} requests without a response yet")
        time.sleep(5)


def archive_topics(s) -> dict[str, list[str]]:
    """The topics each archive query reads: archive-cassandra joins the outcome topic too
    (spark_jobs.outcomes), which on the platform holds records of its own."""
    return {"archive-mongo": [s.response_topic], "archive-cassandra": [s.response_topic, s.outcome_topic]}


def archive_lag(ends: dict[str, int], archived: dict[str, int], topics: dict[str, list[str]]) -> dict[str, int]:
    """Records each query has still to process: the ends of the topics it reads (summed over
    partitions) minus the offsets its last batch read up to (summed over its topics)."""
    return {q: sum(ends[t] for t in read) - archived.get(q, 0) for q, read in topics.items()}


def wait_for_archive(s, wait_s: float) -> float | None:
    """Seconds until the MongoDB and Cassandra archive queries have processed every response
    (None if not within ``wait_s``), from the job's status file (the offset each query's last
    batch read up to, against the ends of the topics it reads: counting documents in FerretDB
    would scan the collection); one progress line every 5 s."""
    began = time.monotonic()
    topics = archive_topics(s)
    while True:
        ends = {t: sum(topic_watermarks(s, t).values()) for t in {t for read in topics.values() for t in read}}
        status = job_status.read(s)
        lag = archive_lag(ends, {q: status.archived_up_to(q) for q in topics} if status else {}, topics)
        if all(n <= 0 for n in lag.values()):
            return round(time.monotonic() - began, 1)
        if time.monotonic() - began > wait_s:
            return None
        say(f"stores catching up ({time.monotonic() - began:.0f} s): records still to archive "
            + ", ".join(f"{q} {n}" for q, n in lag.items()))
        time.sleep(5)


def count_in_stores(s, uuids: list[str], wait_s: float) -> dict:
    """Records per UUID in MongoDB and Cassandra once their archive queries have caught up
    (they are off the response path and may lag behind a burst)."""
    caught_up_after = wait_for_archive(s, wait_s)
    wanted = set(uuids)
    with mongo.client(s) as client:
        ids = mongo.stored_uuids(mongo.collection(client, s))
    cluster, session = cassandra.session(s, keyspace=s.cassandra_keyspace, timeout=60)
    try:
        in_cassandra = cassandra.uuids_by_uuid(session, uuids)
        route_rows = cassandra.route_day_rows_per_uuid(session, uuids)
    finally:
        cluster.shutdown()
    return {"mongo_found": len(wanted & set(ids)), "duplicates_in_mongo": len(ids) - len(set(ids)),
            "cassandra_found": len(in_cassandra),
            "duplicates_in_cassandra": sum(n - 1 for n in route_rows.values() if n > 1),
            "stores_caught_up_after_s": caught_up_after}


def warm_up(s, collector: Collector, reference, args) -> None:
    say(f"warm-up (not counted): {args.warmup_rate:g} requests/s for {args.warmup:g} s, so the JVM "
        "compiles the hot path; then the archive queries catch up")
    result = step(s, collector, reference, args.warmup_rate, args.warmup, seed=1, grace=args.grace)
    drain(s, collector, result["sent_at"], args.drain_quiet)
    wait_for_archive(s, args.settle)


def process_groups(job_pid: int):
    """The processes a step's CPU is split between: the measured job's JVM (the predict and
    archive queries' tasks) and its Python driver (the archive queries' store writers), each
    running server of the stack with its children, and this bench (producer and collector).
    ``job_pid`` is the job's Python driver: the bench's own job, or the platform's (then not
    counted again as the service "streaming")."""
    platform = load_settings()

    def groups() -> dict[str, list[int]]:
        jvm = jvm_child(job_pid)
        out = {"job (Spark JVM)": [jvm] if jvm else [], "job (Python driver)": [job_pid]}
        for svc in all_services(platform):
            tracked = read_tracked(launcher.pid_file(platform, svc))
            if alive(tracked) and tracked.pid != job_pid:
                out[svc.name] = [tracked.pid]
        out["bench"] = [os.getpid()]
        return out
    return groups


class BenchJob:
    """A bench instance of the streaming job with its response collector, stopped and its
    collection, archive and topics removed on the way out (JobProcess.discard)."""

    def __init__(self, tmp: Path, **env):
        self.job = JobProcess(tmp, **{"FD_ARCHIVE_TRIGGER": "60 seconds", "FD_MODEL_POLL_S": "5", **env})
        self.s = self.job.settings
        self.collector = Collector(self.s)
        self.pid = None

    def __enter__(self):
        say(f"starting a bench instance of the streaming job (log {self.job.log})")
        self.job.start()
        self.pid = self.job.proc.pid
        self.cpu = machine.CpuShares(process_groups(self.pid))
        self.collector.start()
        self.collector.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.collector.stop.set()
        self.job.discard()


def services_not_up(s) -> list[str]:
    """The services these settings run (what `python -m infra up` starts) that are not up as
    `python -m infra status` says it: a running process of the launcher's that answers its probe."""
    return [svc.name for svc in all_services(s) if not (launcher.is_up(s, svc) and launcher.probe_ok(s, svc))]


class PlatformJob:
    """The platform's own streaming job, as `python -m infra up` runs it, with a response
    collector reading from the response topic's end: nothing is started, nothing stopped,
    nothing removed (the bench's requests stay, like any traffic)."""

    def __init__(self):
        self.s = load_settings()
        self.pid = read_tracked(launcher.pid_file(self.s, by_name(["streaming"], self.s)[0])).pid
        self.collector = Collector(self.s, start_offsets=topic_watermarks(self.s, self.s.response_topic))
        self.cpu = machine.CpuShares(process_groups(self.pid))

    def __enter__(self):
        say(f"measuring the platform's streaming job (pid {self.pid}) on {self.s.request_topic} -> "
            f"{self.s.response_topic}; nothing is started or stopped")
        self.collector.start()
        self.collector.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.collector.stop.set()


def memory_mb(groups) -> dict[str, int]:
    """Resident memory of each process group (the same groups as the CPU shares) at the end of
    the ramp, in MB."""
    return {name: round(machine.rss_mb(machine.process_tree(*roots))) for name, roots in groups().items() if roots}


def late_responses(collector: Collector, steps: list[dict]) -> int:
    """Responses that came, but after their step's grace: made, not in time."""
    return sum(1 for r in steps for u in r["sent_at"] if collector.arrived.get(u, 0) > r["cutoff"])


def records_on(s, topic: str) -> int:
    """Records on one of the bench job's own topics (its high watermarks: nothing else writes there)."""
    return sum(topic_watermarks(s, topic).values())


def ramp_rates(ramp: str) -> list[float]:
    return [float(r) for r in ramp.split(",") if r]


def enter_ramp_step(bench, reference, args, index: int, rate: float, bases: list[dict]) -> list[dict]:
    """What comes before ramp step ``index``; returns its requests. Gentle: the stores catch up
    (--settle). --step-from: the stores catch up, then a step at that rate (kept in ``bases``),
    and the ramp step's requests are made before it, so the rate jumps at once."""
    s, collector = bench.s, bench.collector
    wait_for_archive(s, args.settle)
    requests = step_requests(reference, rate, args.seconds, seed=10 + index)
    if args.step_from:
        base = step(s, collector, reference, args.step_from, args.seconds, seed=100 + index, grace=args.grace,
                    cpu=bench.cpu)
        base["then_rate"] = rate
        bases.append(base)
        say(f"step from {args.step_from:g}/s for {args.seconds:g} s: {base['in_time']}/{base['sent']} responses "
            f"in time, {latency_line(base)}; now straight to {rate:g}/s")
    return requests


def run_realtime(tmp: Path, reference, args, env: dict) -> dict:
    with (PlatformJob() if args.platform else BenchJob(tmp / "realtime", **env)) as bench:
        s, collector = bench.s, bench.collector
        warm_up(s, collector, reference, args)
        say(f"steady: {args.rate:g} requests/s for {args.seconds:g} s")
        steady = step(s, collector, reference, args.rate, args.seconds, seed=2, grace=args.grace, cpu=bench.cpu)
        say(f"steady: {steady['in_time']}/{steady['sent']} responses in time, {latency_line(steady)}; "
            f"CPU, % of a core: {cpu_line(steady)}")
        steps, bases, max_held = [steady], [], 0.0
        recording = FlightRecording(s, bench.pid, Path(args.jfr)) if args.jfr else None
        if recording:
            say(f"recording the job's JVM during the ramp (Java Flight Recorder) into {args.jfr}")
            recording.start()
        for i, rate in enumerate(ramp_rates(args.ramp)):
            requests = enter_ramp_step(bench, reference, args, i, rate, bases)
            result = step(s, collector, reference, rate, args.seconds, seed=10 + i, grace=args.grace, cpu=bench.cpu,
                          requests=requests)
            result["held"] = held(result, args.held_p99_ms)
            steps.append(result)
            say(f"ramp {rate:g}/s for {args.seconds:g} s: {result['in_time']}/{result['sent']} responses in time, "
                f"producer took {result['send_seconds']} s, {latency_line(result)}, real-time batch ends "
                f"{result['batches_ended']} -> {'held' if result['held'] else 'NOT held'}; "
                f"CPU, % of a core: {cpu_line(result)}")
            if not result["held"]:
                break
            max_held = rate
        memory = memory_mb(bench.cpu.groups)
        profile = None
        if recording:
            recording.stop()
            profile = recording.summary()
            say(f"profile of the predict query during the ramp: {json.dumps(profile['predict_operations_pct'])}")
        steps += bases  # their requests count in the totals below
        sent_at = {u: t for r in steps for u, t in r["sent_at"].items()}
        drain(s, collector, sent_at, args.drain_quiet)
        responses = sum(1 for u in sent_at if u in collector.arrived)
        late = late_responses(collector, steps)
        say(f"drained: {responses}/{len(sent_at)} responses, {len(sent_at) - responses} lost, {late} late")
        say(f"waiting up to {args.store_wait:.0f} s for MongoDB and Cassandra to hold every prediction")
        stores = count_in_stores(s, list(sent_at), args.store_wait)
        status = job_status.read(s)
        engine = status.model.engine if status else None
        # Warm-up included on both topics: one shadow record per valid request, all of them valid.
        # The platform's topics hold every earlier record too: no count there.
        answered, in_shadow = (None, None) if args.platform else (records_on(s, s.response_topic),
                                                                  records_on(s, s.shadow_topic))
        if env:
            say(f"shadow topic: {in_shadow} records for {answered} responses (warm-up included)")
    ramp = steps[1:len(steps) - len(bases)]
    return {"engine": engine, "response_records": answered, "shadow_records": in_shadow, "steady": public(steady),
            "ramp": [public(r) for r in ramp], **({"step_from": [public(r) for r in bases]} if args.step_from else {}),
            "max_held_per_s": max_held, "responses_not_create_time": collector.not_create_time,
            "sent": len(sent_at), "responses": responses, "lost": len(sent_at) - responses, "late": late,
            "duplicate_responses": collector.duplicates, **stores, "rss_mb": memory, "rss_mb_total": sum(memory.values()),
            **({"profile": profile} if profile else {})}


def run_microbatch(tmp: Path, reference, args, env: dict) -> dict:
    """The steady step again with the predict query in micro-batch mode."""
    with BenchJob(tmp / "microbatch", FD_PREDICT_TRIGGER="microbatch", **env) as bench:
        s, collector = bench.s, bench.collector
        warm_up(s, collector, reference, args)
        say(f"micro-batch steady: {args.rate:g} requests/s for {args.microbatch_seconds:g} s")
        steady = step(s, collector, reference, args.rate, args.microbatch_seconds, seed=2, grace=args.grace,
                      cpu=bench.cpu)
        drain(s, collector, steady["sent_at"], args.drain_quiet)
        responses = sum(1 for u in steady["sent_at"] if u in collector.arrived)
        say(f"micro-batch steady: {steady['in_time']}/{steady['sent']} responses in time, {latency_line(steady)}; "
            f"CPU, % of a core: {cpu_line(steady)}")
    return {**public(steady), "lost": steady["sent"] - responses}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 1) if a and b else None


def interrupt(_signum, _frame):
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, checked, with what they mean spelled out for the record: ``mode`` ("own job"
    or "platform") and ``ramp_mode`` ("gentle" or "step from RATE/s")."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the steady step and of each ramp step")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s of the steady step")
    parser.add_argument("--ramp", default="1000,2000,5000,10000", help="requests/s of the ramp steps")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of warm-up (not counted)")
    parser.add_argument("--warmup-rate", type=float, default=1000.0, help="requests/s during the warm-up")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds after a step within which responses count")
    parser.add_argument("--held-p99-ms", type=float, default=1000.0, help="a step is held at or under this p99")
    parser.add_argument("--settle", type=float, default=180.0,
                        help="max seconds to let the archive queries catch up between steps")
    parser.add_argument("--drain-quiet", type=float, default=30.0, help="draining ends after this long without a new response")
    parser.add_argument("--store-wait", type=float, default=900.0, help="max seconds to wait for the stores at the end")
    parser.add_argument("--jfr", help="record the job's JVM during the ramp into this .jfr file and summarise it")
    parser.add_argument("--microbatch-seconds", type=float,
                        help="micro-batch mode's steady step (0: skip; default 60, with --platform 0)")
    parser.add_argument("--shadow", action="store_true",
                        help="register a challenger version so every valid request is scored in shadow too")
    parser.add_argument("--step-from", type=float, metavar="RATE",
                        help="enter each ramp step abruptly: a step at RATE/s, then at once the ramp rate "
                             "(default: the gentle ramp, each step after the one below it)")
    parser.add_argument("--platform", action="store_true",
                        help="measure the platform as `python -m infra up` leaves it (its job, topics, every "
                             "service on) instead of a job of the bench's own; starts and stops nothing")
    args = parser.parse_args(argv)
    if args.step_from is not None and args.step_from <= 0:
        parser.error("--step-from must be a rate above 0")
    if args.platform and args.shadow:
        parser.error("--shadow needs a job of the bench's own (its model name): not with --platform")
    if args.platform and args.microbatch_seconds:
        parser.error("the micro-batch step needs a job of the bench's own: with --platform, leave "
                     "--microbatch-seconds out or give 0")
    if args.microbatch_seconds is None:
        args.microbatch_seconds = 0.0 if args.platform else 60.0
    args.mode = "platform" if args.platform else "own job"
    args.ramp_mode = f"step from {args.step_from:g}/s" if args.step_from else "gentle"
    return args


def refuse_unless_platform_up(s) -> bool:
    """--platform: True when every service of the platform is up; else says which are not."""
    down = services_not_up(s)
    if down:
        say(f"--platform needs the platform up (python -m infra up, or make up); not up: {', '.join(down)}. "
            "Nothing was started; see python -m infra status")
    return not down


def start_servers(s) -> None:
    say("starting the servers")
    servers = ["kafka", "mongo", "cassandra", "hdfs", "mlflow"] + (["spark-master", "spark-worker"] if s.spark_standalone else [])
    launcher.up(s, by_name(with_needs(servers), s))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    s = load_settings()  # FD_CLUSTER=1: the clusters' nodes, and the Spark cluster the job then runs on
    if args.platform and not refuse_unless_platform_up(s):
        return 2
    # SIGTERM unwinds like Ctrl-C: the bench job is stopped and its collection dropped.
    signal.signal(signal.SIGTERM, interrupt)
    host = machine.before_bench(say)
    if not args.platform:
        start_servers(s)
    reference = load_reference()
    shadow, env = None, {}
    if args.shadow:
        name = f"bench_shadow_{os.getpid()}_{int(time.time())}"
        say(f"registering the shipped model as {name} with the alias {s.challenger_alias} (shadow scoring)")
        shadow = {"role": "challenger", "version": models.register_in_child(name, s.challenger_alias),
                  "model_name": name}
        env = {"FD_MODEL_NAME": name}  # no champion under this name: the shipped model answers
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            realtime = run_realtime(Path(tmp), reference, args, env)
            microbatch = run_microbatch(Path(tmp), reference, args, env) if args.microbatch_seconds else None
    finally:
        if shadow:
            models.discard_model(s, shadow["model_name"])
    steady = realtime["steady"]
    figures = {"machine": host, "p50_ms": steady["p50_ms"], "p95_ms": steady["p95_ms"], "p99_ms": steady["p99_ms"],
               "steady_rate_per_s": args.rate, "seconds": args.seconds, "held_means": f"every response within "
               f"{args.grace:g} s of the step and p99 <= {args.held_p99_ms:g} ms",
               "warmup": f"{args.warmup:g} s at {args.warmup_rate:g}/s, not counted", "shadow": shadow,
               "mode": args.mode, **{k: steady[k] for k in ("kafka_p50_ms", "kafka_p95_ms", "kafka_p99_ms")},
               "latency_means": LATENCY_MEANS, **realtime}
    if microbatch:
        figures["microbatch"] = {**microbatch, "p50_ratio_to_realtime": ratio(microbatch["p50_ms"], steady["p50_ms"]),
                                 "p99_ratio_to_realtime": ratio(microbatch["p99_ms"], steady["p99_ms"])}
    entry = publish("pipeline", figures, args)
    say("the steps (the block python -m harness.report writes for this record):\n" + "\n".join(report.pipeline(entry)))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        say("interrupted: no figures; a bench job of its own was stopped and its collection dropped "
            "(with --platform nothing was stopped)")
        raise SystemExit(130) from None
