"""Latency and throughput of the prediction pipeline through Kafka, with all four sinks on.

Usage:
    python -m bench.pipeline [--seconds 60] [--rate 100] [--ramp 500,1000,2000,5000,10000]

Starts the servers it needs (like `make up`), runs its own instance of the streaming job on
bench-only topics, collection and archive path (so the platform's data stays clean), then:
  1. steady phase: --rate requests/s for --seconds; latency = request produced -> response
     consumed, measured in this process;
  2. ramp: each rate of --ramp for --seconds; a rate is "held" when every response arrived by
     the end of the phase + 10 s and the phase's p99 stayed under 5 s (no growing backlog);
  3. waits (bounded, --store-wait) for the stores to catch up and counts records per UUID;
     ``stores_caught_up_after_s`` says how long after the last phase MongoDB and Cassandra
     held every prediction (the archive queries are off the response path and lag a burst).
Prints one progress line per step and, as its last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import TopicPartition

from bench.job import JobProcess
from bench.traffic import sample_requests
from flightdelay import kafka
from flightdelay import status as job_status
from flightdelay.config import load_settings
from flightdelay.reference import load_reference
from flightdelay.stores import cassandra, mongo
from infra import launcher
from infra.services import by_name, with_needs

log = logging.getLogger("bench.pipeline")
ARCHIVE_QUERIES = ("archive-mongo", "archive-cassandra")


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


class Collector(threading.Thread):
    """Consumes the response topic; records the first arrival time of every UUID."""

    def __init__(self, s):
        super().__init__(daemon=True)
        self.s = s
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self):
        consumer = kafka.consumer(self.s, f"bench-{time.time()}",
                                  {"auto.offset.reset": "latest", "fetch.wait.max.ms": 5})
        consumer.subscribe([self.s.response_topic], on_assign=lambda c, p: self.ready.set())
        while not self.stop.is_set():
            for msg in consumer.consume(1000, 0.05):
                if msg.error():
                    continue
                now = time.time()
                key = msg.key().decode()
                if key in self.arrived:
                    self.duplicates += 1
                else:
                    self.arrived[key] = now
        consumer.close()


def send_at_rate(s, requests: list[dict], rate: float, sent: dict[str, float]) -> None:
    """Produce ``requests`` at ``rate``/s in 10 ms ticks; record each send time."""
    producer = kafka.producer(s, {"linger.ms": 1, "acks": "1", "queue.buffering.max.messages": 1_000_000})
    began = time.monotonic()
    for i, request in enumerate(requests):
        due = began + i / rate
        delay = due - time.monotonic()
        if delay > 0.01:
            producer.poll(0)
            time.sleep(delay)
        now = time.time()
        request["requested_at"] = int(now * 1000)
        sent[request["UUID"]] = now
        producer.produce(s.request_topic, key=request["UUID"].encode(), value=json.dumps(request).encode())
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)


def phase(s, collector: Collector, reference, rate: float, seconds: float, seed: int) -> dict:
    requests = sample_requests(reference, int(rate * seconds), seed=seed)
    sent: dict[str, float] = {}
    began = time.monotonic()
    send_at_rate(s, requests, rate, sent)
    send_seconds = time.monotonic() - began
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(u in collector.arrived for u in sent):
        time.sleep(0.2)
    latencies = sorted(round((collector.arrived[u] - t) * 1000, 1) for u, t in sent.items() if u in collector.arrived)
    return {"rate": rate, "sent": len(sent), "send_seconds": round(send_seconds, 1),
            "responses": len(latencies), "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99), "uuids": list(sent)}


def topic_end(s, topic: str) -> int:
    """Sum of the high watermarks of ``topic``'s partitions: records ever written to it."""
    consumer = kafka.consumer(s, "bench-watermarks")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def wait_for_archive(s, wait_s: float) -> float | None:
    """Seconds until the MongoDB and Cassandra archive queries have processed every response
    (None if not within ``wait_s``), from the job's status file (the offset each query's last
    batch read up to, against the response topic's end: counting documents in FerretDB would
    scan the collection); one progress line every 10 s."""
    began = time.monotonic()
    while True:
        end = topic_end(s, s.response_topic)
        status = job_status.read(s)
        lag = {q: end - job_status.archived_up_to(status, q) for q in ARCHIVE_QUERIES}
        if not any(lag.values()):
            return round(time.monotonic() - began, 1)
        if time.monotonic() - began > wait_s:
            return None
        backlog = {q: (status or {}).get("queries", {}).get(q, {}).get("backlog") for q in ARCHIVE_QUERIES}
        say(f"stores catching up ({time.monotonic() - began:.0f} s): records still to archive "
            + ", ".join(f"{q} {n} (backlog at its last batch {backlog[q]})" for q, n in lag.items()))
        time.sleep(10)


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


def interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--ramp", default="500,1000,2000,5000,10000")
    parser.add_argument("--store-wait", type=float, default=900.0, help="max seconds to wait for the stores")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # SIGTERM unwinds like Ctrl-C: the bench job is stopped and its collection dropped.
    signal.signal(signal.SIGTERM, interrupt)
    base = load_settings()
    say("starting the servers")
    launcher.up(base, by_name(with_needs(["kafka", "mongo", "cassandra", "hdfs", "mlflow"])))
    reference = load_reference()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        job = JobProcess(Path(tmp), FD_ARCHIVE_TRIGGER="60 seconds", FD_MODEL_POLL_S="10")
        s = job.settings
        say(f"starting a bench instance of the streaming job (log {job.log})")
        job.start()
        collector = Collector(s)
        collector.start()
        collector.ready.wait(30)
        try:
            say("warm-up: 200 requests")
            phase(s, collector, reference, 50, 4, seed=1)
            say(f"steady: {args.rate:g} requests/s for {args.seconds:g} s")
            steady = phase(s, collector, reference, args.rate, args.seconds, seed=2)
            say(f"steady: {steady['responses']}/{steady['sent']} responses, p50 {steady['p50_ms']:.1f} ms, "
                f"p95 {steady['p95_ms']:.1f} ms, p99 {steady['p99_ms']:.1f} ms")
            held, ramp_results, all_uuids = 0.0, [], list(steady["uuids"])
            for i, rate in enumerate(float(r) for r in args.ramp.split(",") if r):
                result = phase(s, collector, reference, rate, args.seconds, seed=10 + i)
                all_uuids += result.pop("uuids")
                ok = result["responses"] == result["sent"] and (result["p99_ms"] or 1e9) < 5000 \
                    and result["send_seconds"] < args.seconds * 1.1
                say(f"ramp {rate:g}/s: {result['responses']}/{result['sent']} responses, producer took "
                    f"{result['send_seconds']} s, p50 {fmt_ms(result['p50_ms'])}, p99 {fmt_ms(result['p99_ms'])} -> "
                    f"{'held' if ok else 'NOT held'}")
                ramp_results.append({**result, "held": ok})
                if not ok:
                    break
                held = rate
            time.sleep(5)
            responses = sum(1 for u in all_uuids if u in collector.arrived)
            say(f"waiting up to {args.store_wait:.0f} s for MongoDB and Cassandra to hold every prediction")
            stores = count_in_stores(s, all_uuids, args.store_wait)
        finally:
            collector.stop.set()
            job.stop()
            mongo.drop_collection(s)  # FerretDB scans whole collections: leave no bench data
    figures = {
        "p50_ms": round(steady["p50_ms"], 1), "p95_ms": round(steady["p95_ms"], 1),
        "p99_ms": round(steady["p99_ms"], 1), "steady_rate_per_s": args.rate, "seconds": args.seconds,
        "max_sustained_per_s": held, "sent": len(all_uuids), "responses": responses,
        "lost": len(all_uuids) - responses, "duplicate_responses": collector.duplicates,
        **stores, "ramp": ramp_results,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        say("interrupted: the bench job was stopped and its collection dropped; no figures")
        raise SystemExit(130) from None
