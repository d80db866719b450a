"""Each fault under a steady load of valid requests, against the platform as `make up` runs it:
afterwards every accepted request has a response, exactly one record in every store keyed by
UUID and at least one line in NiFi's text archive (the response topic and that archive are
at-least-once: their repeats are counted and shown), and every connected browser got every
result that reached Kafka while it was connected.

The cases share one stack and restore what they broke; the slow archives (parquet every
FD_ARCHIVE_TRIGGER, NiFi every 10 s) are counted once for all cases by the last test.
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import uuid as uuidlib

import pytest
import requests

from flightdelay import kafka
from harness.ledger import Load
from harness.wait import wait_for
from infra import launcher
from infra.process import read_tracked
from tests.faults.conftest import EXACTLY_ONCE, PLATFORM, RATE, Browser, backlog_settled, final_count, restart, say, service

FAST = ("responses", "mongo", "cassandra_by_uuid", "cassandra_by_route_day")
# Keyed by UUID, so exactly one record each. The response topic (Spark's Kafka sink) and NiFi's
# text archive (a log of that topic, ConsumeKafka commits offsets after its session) are
# at-least-once: a replay after a crash, or an offset commit refused while Kafka's group
# coordinator reloads, repeats lines. For them nothing may be lost; repeats are counted and shown.
OUTAGE_S = 30.0
CASES: dict[str, list[str]] = {}  # case -> UUIDs of its accepted requests, for the final count


def platform_healthy(s) -> bool:
    return all(launcher.probe_ok(s, service(name)) for name in PLATFORM)


def run_case(name, s, ledger, reference, report, *, inject, restore, outage_s=0.0, seed=1,
             watch=FAST, before_send=None) -> dict:
    """Load, inject, (hold,) restore, wait until the backlog of the fault is answered and
    stored, keep loading a little, then count ``watch``. Returns the case's figures."""
    wait_for(lambda: platform_healthy(s), 180, "every platform service to answer before the case", interval=2)
    load = Load(s, reference, RATE, seed=seed, name=f"load-{name}")
    load.before_send = before_send
    load.start()
    try:
        wait_for(lambda: len(load.accepted) >= RATE * 5, 90, "5 s of accepted load before the fault")
        load.mark("during")
        say(f"{name}: fault injected after {load.sent} requests")
        fault_at = time.monotonic()
        inject()
        inject_s = time.monotonic() - fault_at
        load.run_for(outage_s)
        restore_at = time.monotonic()
        restore()
        back_s = time.monotonic() - restore_at if outage_s else inject_s  # a restart is its own restore
        load.mark("after")
        backlog = load.sent_before("after")
        say(f"{name}: service back in {back_s:.1f} s; {len(backlog)} requests sent before, waiting for them")

        def recovered() -> bool:
            return backlog_settled(s, ledger, load, backlog, watch)

        wait_for(recovered, 420, f"the backlog of '{name}' answered and stored", interval=1)
        recovery_s = time.monotonic() - (restore_at if outage_s else fault_at)
        say(f"{name}: recovered in {recovery_s:.1f} s; 5 more seconds of load")
        after = len(load.accepted)
        wait_for(lambda: len(load.accepted) >= after + RATE * 5, 60, "5 s of load after the recovery")
    finally:
        load.stop()
    accepted = list(load.snapshot())
    CASES[name] = accepted
    figures = ledger.settle(accepted, 240, outputs=watch, progress=say)
    report.add(name, sent=load.sent, accepted=len(accepted), refused_by_kafka=load.failed,
               service_back_s=round(back_s, 1), recovery_s=round(recovery_s, 1),
               settled_after_s=figures.pop("settled_after_s"), first_counts=figures)
    say(f"{name}: {json.dumps(figures)}")
    for output in watch:
        assert figures[output]["lost"] == 0, f"{name}: {figures[output]['lost']} lost in {output}"
        if output in EXACTLY_ONCE:
            assert figures[output]["duplicated"] == 0, f"{name}: duplicates in {output}"
    return figures


def stop_and_start(s, name: str):
    svc = service(name)
    return (lambda: launcher.stop(s, svc)), (lambda: launcher.start(s, svc))


# The page that reads each store, and what it must say while that store is stopped. The archive
# page shows the background count's failure (counted every 20 s), so it may take a round to say it.
STORE_PAGES = {"mongo": ("/history", "MongoDB is not answering"),
               "cassandra": ("/model", "Cassandra is not answering"),
               "hdfs": ("/archive", "HDFS archive could not be read")}
PAGE_ANSWER_S = 5.0  # a page slower than this while its store is down counts as hanging


class StorePageWatch(threading.Thread):
    """During a store's outage, asks the store's page every second until it names the store as
    not answering; every answer must come within PAGE_ANSWER_S (a page must never hang)."""

    def __init__(self, s, store: str, give_up_s: float):
        super().__init__(daemon=True, name=f"page-{store}")
        self.path, self.expected = STORE_PAGES[store]
        self.url = f"http://{s.host}:{s.webapp_port}{self.path}"
        self.give_up_at = time.monotonic() + give_up_s
        self.slowest_s, self.said_after_s, self.errors = 0.0, None, []

    def run(self) -> None:
        began = time.monotonic()
        while time.monotonic() < self.give_up_at:
            asked = time.monotonic()
            try:
                answer = requests.get(self.url, timeout=30)
            except requests.RequestException as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            took = time.monotonic() - asked
            self.slowest_s = max(self.slowest_s, took)
            if answer.status_code != 200:
                self.errors.append(f"{self.path} answered {answer.status_code}")
                return
            if self.expected in answer.text:
                self.said_after_s = time.monotonic() - began
                return
            time.sleep(1.0)

    def verdict(self) -> str:
        self.join(PAGE_ANSWER_S * 2)
        assert not self.errors, f"{self.path} during the outage: {self.errors}"
        assert self.slowest_s <= PAGE_ANSWER_S, f"{self.path} took {self.slowest_s:.1f} s while its store was down"
        assert self.said_after_s is not None, f"{self.path} never said {self.expected!r} while its store was down"
        return (f"{self.path} said '{self.expected}' {self.said_after_s:.1f} s into the outage "
                f"(slowest answer {self.slowest_s:.2f} s)")


def test_records_ferretdb_refuses_become_dead_letters_and_do_not_block_the_mongo_archive(
        platform, ledger, reference, report):
    """Response records FerretDB refuses (NaN, infinity) arrive on the response topic under
    load: each becomes a dead letter with the reason, and the archive query keeps storing."""
    s = platform
    # New UUIDs on every run (the dead-letter topic and the stores keep earlier runs' records),
    # with a prefix that tells them apart in the logs.
    poison = [f"00000000-0000-4000-8000-{uuidlib.uuid4().hex[:12]}" for _ in range(3)]

    def inject():
        base = {"Carrier": "AA", "Origin": "JFK", "Dest": "LAX", "Route": "JFK-LAX", "FlightDate": "2013-11-05",
                "CRSDepTime": 900, "CRSArrTime": 1200, "DepDelay": 1.0, "Distance": 2475.0, "prediction": 1,
                "label": "slightly early", "model_name": "poison", "model_version": "0",
                "requested_at": int(time.time() * 1000), "predicted_at": int(time.time() * 1000)}
        records = [dict(base, UUID=poison[0], probabilities=[math.nan, 0.5, 0.3, 0.2]),
                   dict(base, UUID=poison[1], probabilities=[0.1, 0.5, 0.3, 0.1], DepDelay=math.inf),
                   dict(base, UUID=poison[2], probabilities=[0.1, 0.5, 0.3, 0.1], Distance=-math.inf)]
        producer = kafka.producer(s)
        for r in records:  # Python's json writes NaN / Infinity, which Spark's JSON reader accepts
            producer.produce(s.response_topic, key=r["UUID"].encode(), value=json.dumps(r).encode())
        assert producer.flush(30) == 0

    run_case("poison records", s, ledger, reference, report, inject=inject, restore=lambda: None, seed=11)
    dead = wait_for(lambda: all(u in ledger.topics.dead_letters for u in poison) and ledger.topics.dead_letters,
                      120, "the poison records on the dead-letter topic")
    for uuid in poison:
        reasons = [d.get("reason", "") for d in dead[uuid]]
        assert any("archive-mongo cannot store it" in r and "finite numbers" in r for r in reasons), reasons
    report.add("poison records", notes=f"{len(poison)} refused records dead-lettered with their reason: "
                                       f"{dead[poison[0]][0]['reason'][:90]}")


@pytest.mark.parametrize("store", ["mongo", "cassandra", "hdfs"])
def test_a_store_stopped_for_30_s_under_load(platform, ledger, reference, report, store):
    """... and meanwhile the page that reads that store answers at once, naming it."""
    stop, start = stop_and_start(platform, store)
    pages = []

    def inject():
        stop()
        pages.append(StorePageWatch(platform, store, give_up_s=OUTAGE_S - 2))
        pages[0].start()

    def restore():
        try:
            pages.append(pages[0].verdict())  # judged before the store is back
        except AssertionError as failure:
            pages.append(failure)
        start()

    watch = FAST + ("parquet",) if store == "hdfs" else FAST
    run_case(f"{store} stopped {OUTAGE_S:.0f} s", platform, ledger, reference, report, inject=inject,
             restore=restore, outage_s=OUTAGE_S, seed={"mongo": 21, "cassandra": 22, "hdfs": 23}[store], watch=watch)
    assert platform_healthy(platform)
    if isinstance(pages[1], AssertionError):
        raise pages[1]
    say(f"{store} stopped: {pages[1]}")


def test_kafka_restart_under_load(platform, ledger, reference, report):
    run_case("kafka restart", platform, ledger, reference, report, inject=lambda: restart(platform, "kafka"),
             restore=lambda: None, seed=31)
    assert platform_healthy(platform)


def test_webapp_restart_with_browsers_connected(platform, ledger, reference, report):
    s = platform
    url = f"http://{s.host}:{s.webapp_port}"
    browsers = [Browser(url, f"browser-{i}") for i in range(3)]
    for b in browsers:
        b.connect()
    sent = iter(range(10**9))
    try:
        run_case("webapp restart", s, ledger, reference, report, seed=41,
                 inject=lambda: restart(s, "webapp"), restore=lambda: None,
                 before_send=lambda r: browsers[next(sent) % len(browsers)].watch(r["UUID"]))
        wait_for(lambda: all(b.connected for b in browsers), 60, "every browser reconnected")
        arrived = ledger.topics.first_response_at
        wait_for(lambda: not any(b.missed(arrived) for b in browsers), 60,
                   "every browser to get the results it was owed", interval=1)
    finally:
        figures = {b.name: {"watched": len(b.watched), "owed": len(b.owed(ledger.topics.first_response_at)),
                            "received": len(b.received), "missed": len(b.missed(ledger.topics.first_response_at)),
                            "reconnects": len(b.intervals) - 1} for b in browsers}
        report.add("webapp restart", browsers=figures)
        for b in browsers:
            b.close()
    assert all(f["reconnects"] >= 1 for f in figures.values()), figures  # the restart really cut them off
    assert all(f["owed"] > 0 and f["missed"] == 0 for f in figures.values()), figures


def test_streaming_job_sigkill_under_load(platform, ledger, reference, report):
    s = platform
    job = service("streaming")

    def kill():
        tracked = read_tracked(launcher.pid_file(s, job))
        assert tracked is not None, "the streaming job has no pid file"
        os.killpg(tracked.pid, signal.SIGKILL)  # the driver and its JVM, as a crash would
        wait_for(lambda: not launcher.is_up(s, job), 30, "the killed job to be gone")

    run_case("streaming SIGKILL", s, ledger, reference, report, seed=51, inject=kill,
             restore=lambda: launcher.start(s, job))  # what `make up` does for a job that is not running
    assert platform_healthy(s)


def test_after_every_fault_one_record_per_store_and_nothing_lost(platform, ledger, report):
    """The final count over every output, the slow archives included."""
    failures = final_count(CASES, ledger, report)
    assert not failures, failures
