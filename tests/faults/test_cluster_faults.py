"""Each clustered server loses a node under a steady load, against the platform as
`FD_CLUSTER=1 make up` runs it (`make test-cluster`): one Kafka broker SIGKILLed (its partition
leaders move; it comes back and catches up), one Cassandra node stopped for 60 s (hinted handoff
replays what it missed), one HDFS DataNode stopped (parquet writes go on with one copy; the
second copy is made when it is back), one Spark worker SIGKILLed with its executor (the tasks
run again on the other worker's executor).

Afterwards, as in test_faults.py: every accepted request has a response, exactly one record in
every store keyed by UUID and at least one line in NiFi's text archive (the response topic and
that archive are at-least-once: repeats are counted and shown). On top, the user's path: a user
of the REST API submits a flight twice a second and waits for its prediction throughout; not one
of those requests may end in an error, and the load's own producer may not be refused either.

Each case reports, besides the table's counts: how long answers were disturbed (the worst
latency of a request sent during the fault, and when answers were back under a second), and its
recovery time: from the node's return until it is back in full service with what it missed
(Kafka: every partition's replicas in sync again; Cassandra: every hint for the node replayed;
HDFS: no block short of its copies; Spark: the job's executors back on both workers).
"""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import pytest
import requests

from flightdelay import health, kafka
from flightdelay.stores import cassandra
from harness.ledger import Load
from harness.traffic import sample_requests
from harness.wait import wait_for
from infra import launcher
from infra.process import read_tracked
from infra.services import by_name
from infra.services.hdfs import _get_json
from tests.faults.conftest import EXACTLY_ONCE, PLATFORM, RATE, backlog_settled, final_count, say

REPORT_FILE = "faults-cluster-report.json"
CLUSTER_PLATFORM = (*PLATFORM, "spark-master", "spark-worker")
FAST = ("responses", "mongo", "cassandra_by_uuid", "cassandra_by_route_day")
SLOW_S = 1.0  # an answer later than this counts as disturbed
CASES: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def platform(stack):
    """The whole platform on the clusters (the faults conftest's fixtures read through it)."""
    assert stack.settings.cluster, "the cluster fault suite needs FD_CLUSTER=1 (make test-cluster)"
    return stack.require(*CLUSTER_PLATFORM)


def node(s, name: str):
    return by_name([name], s)[0]


def platform_healthy(s) -> bool:
    return all(launcher.probe_ok(s, svc) for svc in by_name(list(CLUSTER_PLATFORM), s))


def sigkill(s, svc) -> None:
    """SIGKILL the node's process group (a Spark worker's executors are in it), as a crash would."""
    tracked = read_tracked(launcher.pid_file(s, svc))
    assert tracked is not None, f"{svc.name} has no pid file"
    os.killpg(tracked.pid, signal.SIGKILL)
    wait_for(lambda: not launcher.is_up(s, svc), 30, f"the killed {svc.name} to be gone")


class UserPath(threading.Thread):
    """A user of the REST API: submits a flight every ``interval`` s and waits for its
    prediction (``?wait=10``, then the result URL, as a page would), one at a time. Anything
    but a prediction is an error: a refusal (5xx), no answer within a minute, a lost
    connection. ``answered`` holds each UUID's seconds until its prediction."""

    def __init__(self, s, reference, seed: int, dates: list[str], interval: float = 0.5):
        super().__init__(daemon=True, name="user-path")
        self.url = f"http://{s.host}:{s.webapp_port}"
        self.reference, self.seed, self.dates, self.interval = reference, seed, dates, interval
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: no proxy
        self.submitted = 0
        self.answered: dict[str, float] = {}
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(120)

    def run(self) -> None:
        batch = 0
        while not self._halt.is_set():
            batch += 1
            for i, request in enumerate(sample_requests(self.reference, 20, seed=self.seed * 1000 + batch)):
                if self._halt.is_set():
                    return
                began = time.monotonic()
                body = {k: v for k, v in request.items() if k not in ("UUID", "requested_at")}
                body["FlightDate"] = self.dates[i % len(self.dates)]
                self.submitted += 1
                try:
                    self.one(body, began)
                except (requests.RequestException, ValueError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                self._halt.wait(max(0.0, began + self.interval - time.monotonic()))

    def one(self, body: dict, began: float) -> None:
        answer = self.session.post(f"{self.url}/api/v1/predictions?wait=10", json=body, timeout=30)
        if answer.status_code == 202:  # not within 10 s: ask again, as the page's watch would
            uuid = answer.json()["uuid"]
            while answer.status_code == 202 and time.monotonic() - began < 60:
                time.sleep(1)
                answer = self.session.get(f"{self.url}/api/v1/predictions/{uuid}", timeout=30)
        if answer.status_code != 200:
            self.errors.append(f"{answer.status_code} after {time.monotonic() - began:.1f} s: {answer.text[:120]}")
            return
        self.answered[answer.json()["uuid"]] = time.monotonic() - began


def disturbance(sent_at: dict[str, float], answered_at: dict[str, float], fault_at: float) -> dict:
    """For the requests sent from the fault on: the worst latency and when the last answer
    slower than SLOW_S came (seconds after the fault; 0: none was slow)."""
    latencies = {u: answered_at[u] - t for u, t in sent_at.items() if t >= fault_at and u in answered_at}
    slow = [answered_at[u] for u, lat in latencies.items() if lat > SLOW_S]
    ordered = sorted(latencies.values())
    return {"max_latency_s": round(ordered[-1], 2) if ordered else None,
            "p99_latency_s": round(ordered[int(0.99 * (len(ordered) - 1))], 2) if ordered else None,
            "answers_normal_after_s": round(max(slow) - fault_at, 1) if slow else 0.0}


def status_page_state(s, host: str) -> tuple[str, str] | None:
    """(row name, "up"|"down") of the node at ``host`` on the web app's status page, or None."""
    page = requests.get(f"http://{s.host}:{s.webapp_port}/status", timeout=60).text
    found = re.search(r"↳ (?:<a [^>]*>)?([^<]*\(" + re.escape(host) + r"\))(?:</a>)?</td>\s*<td><span class=\"state "
                      r"(up|down)\"", page)
    return (found.group(1), found.group(2)) if found else None


def status_page_shows(s, host: str, state: str, within_s: float = 45.0) -> str:
    """Wait until the status page shows the node at ``host`` in ``state``; what it showed, when."""
    began = time.monotonic()
    seen = []

    def shown() -> bool:
        seen.append(status_page_state(s, host))
        return seen[-1] is not None and seen[-1][1] == state

    wait_for(shown, within_s, f"the status page to show the node at {host} {state}", interval=1)
    return f"'{seen[-1][0]}' {state} after {time.monotonic() - began:.1f} s"


def run_cluster_case(name, s, ledger, reference, report, *, inject, restore, outage_s, seed, recovered,
                     victim_host: str, watch=FAST) -> dict:
    """Load (producer and user path), inject, hold ``outage_s``, restore; then wait until the
    backlog is answered and stored and ``recovered()`` (the node back with what it missed,
    measured from the restore), keep loading 5 s, and count ``watch``."""
    wait_for(lambda: platform_healthy(s), 300, "every node of the platform to answer before the case", interval=2)
    load = Load(s, reference, RATE, seed=seed, name=f"load-{name}")
    sent_at: dict[str, float] = {}
    load.before_send = lambda r: sent_at.__setitem__(r["UUID"], time.monotonic())
    user = UserPath(s, reference, seed, load.dates)
    notes: dict = {}
    load.start()
    user.start()
    try:
        wait_for(lambda: len(load.accepted) >= RATE * 5, 90, "5 s of accepted load before the fault")
        load.mark("during")
        say(f"{name}: fault injected after {load.sent} requests")
        fault_at = time.monotonic()
        notes.update(inject() or {})
        notes["status page"] = status_page_shows(s, victim_host, "down")
        load.run_for(max(0.0, outage_s - (time.monotonic() - fault_at)))
        restore_at = time.monotonic()
        notes.update(restore() or {})
        back_s = time.monotonic() - restore_at
        load.mark("after")
        backlog = load.sent_before("after")
        say(f"{name}: node back in {back_s:.1f} s; {len(backlog)} requests sent before, waiting for them")

        def answered_and_stored() -> bool:
            return backlog_settled(s, ledger, load, backlog, watch)

        wait_for(answered_and_stored, 600, f"the backlog of '{name}' answered and stored", interval=1)
        backlog_s = time.monotonic() - restore_at
        notes.update(recovered(restore_at) or {})
        recovery_s = notes.pop("recovery_s")
        notes["status page"] += f", {status_page_shows(s, victim_host, 'up')} of the recovery"
        say(f"{name}: backlog answered and stored {backlog_s:.1f} s after the restore, node recovered in "
            f"{recovery_s:.1f} s; 5 more seconds of load")
        after = len(load.accepted)
        wait_for(lambda: len(load.accepted) >= after + RATE * 5, 60, "5 s of load after the recovery")
    finally:
        load.stop()
        user.stop()
    accepted = [*load.snapshot(), *user.answered]
    CASES[name] = accepted
    answers = disturbance(sent_at, ledger.topics.first_response_at, fault_at)
    figures = ledger.settle(accepted, 300, outputs=watch, progress=say)
    user_path = {"requests": user.submitted, "answered": len(user.answered), "errors": len(user.errors),
                 "slowest_s": round(max(user.answered.values(), default=0.0), 1)}
    report.add(name, sent=load.sent + user.submitted, accepted=len(accepted), refused_by_kafka=load.failed,
               service_back_s=round(back_s, 1), backlog_s=round(backlog_s, 1), recovery_s=round(recovery_s, 1),
               settled_after_s=figures.pop("settled_after_s"), first_counts=figures, answers=answers,
               user_path=user_path, notes="; ".join([
                   *(f"{k} {v}" for k, v in notes.items()),
                   f"answers: worst {answers['max_latency_s']} s, p99 {answers['p99_latency_s']} s, all under "
                   f"{SLOW_S:g} s again {answers['answers_normal_after_s']} s after the fault",
                   f"user path: {user_path['answered']}/{user_path['requests']} answered, {user_path['errors']} errors, "
                   f"slowest {user_path['slowest_s']} s"]))
    say(f"{name}: {json.dumps(figures)}; answers {answers}; user path {user_path}; {notes}")
    for output in watch:
        assert figures[output]["lost"] == 0, f"{name}: {figures[output]['lost']} lost in {output}"
        if output in EXACTLY_ONCE:
            assert figures[output]["duplicated"] == 0, f"{name}: duplicates in {output}"
    assert load.failed == 0, f"{name}: Kafka refused {load.failed} requests"
    assert not user.errors, f"{name}: the user's path saw errors: {user.errors[:5]}"
    return figures


def timed(condition, timeout: float, what: str, since: float, interval: float = 0.5) -> float:
    """Seconds from ``since`` until ``condition()`` holds."""
    wait_for(condition, timeout, what, interval=interval)
    return time.monotonic() - since


# -- Kafka -------------------------------------------------------------------------------------
def partitions(s) -> list:
    metadata = kafka.admin(s).list_topics(timeout=10)
    return [p for t in s.platform_topics for p in metadata.topics[t].partitions.values()]


def test_a_kafka_broker_killed_under_load(platform, ledger, reference, report):
    s = platform
    leaders = [p.leader for p in partitions(s)]
    victim_id = max(set(leaders), key=leaders.count)  # the broker leading the most partitions
    victim = node(s, f"kafka-{victim_id}")

    def inject():
        began = time.monotonic()
        sigkill(s, victim)
        moved = timed(lambda: all(p.leader not in (victim_id, -1) for p in partitions(s)), 120,
                      "every partition leader to move off the killed broker", began)
        return {"partitions led by it": leaders.count(victim_id), "leaders moved in": f"{moved:.1f} s"}

    def recovered(since):
        return {"recovery_s": timed(lambda: all(len(p.isrs) == len(p.replicas) for p in partitions(s)), 300,
                                    "the restarted broker back in every in-sync replica set", since)}

    run_cluster_case(f"kafka broker {victim_id} SIGKILL", s, ledger, reference, report, seed=61, outage_s=30,
                     inject=inject, restore=lambda: launcher.start(s, victim) and None, recovered=recovered,
                     victim_host=victim.host(s))


# -- Cassandra ---------------------------------------------------------------------------------
def pending_hints(s, host_id: str) -> int:
    """Bytes of hints for ``host_id`` the other nodes keep on disk (deleted once replayed)."""
    return sum(f.stat().st_size for svc in by_name(["cassandra"], s) for f in (launcher.workdir(s, svc) / "hints").glob(
        f"{host_id}-*.hints"))


def test_a_cassandra_node_stopped_for_60_s_under_load(platform, ledger, reference, report):
    s = platform
    victim = node(s, "cassandra-2")
    cluster, sess = cassandra.session(s, node=victim.host(s), metadata=False)
    try:
        host_id = str(sess.execute("SELECT host_id FROM system.local").one().host_id)
    finally:
        cluster.shutdown()
    seen = {"hints": 0}

    def restore():
        seen["hints"] = pending_hints(s, host_id)  # flushed to disk every 10 s while it was down
        launcher.start(s, victim)
        return {"hints kept for it": f"{seen['hints'] / 1024:.0f} KiB"}

    def recovered(since):
        assert seen["hints"] > 0, "no hints were written for the stopped node"
        return {"recovery_s": timed(lambda: pending_hints(s, host_id) == 0, 600,
                                    "the hints for the restarted node replayed", since)}

    run_cluster_case("cassandra node 2 stopped 60 s", s, ledger, reference, report, seed=62, outage_s=60,
                     inject=lambda: launcher.stop(s, victim) and None, restore=restore, recovered=recovered,
                     victim_host=victim.host(s))


# -- HDFS --------------------------------------------------------------------------------------
def low_redundancy_blocks(s) -> int:
    bean = _get_json(f"{s.webhdfs_url}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystem")["beans"][0]
    return int(bean.get("LowRedundancyBlocks", bean.get("UnderReplicatedBlocks", 0)))


def test_a_datanode_stopped_under_load(platform, ledger, reference, report):
    """Stopped longer than a parquet trigger (FD_ARCHIVE_TRIGGER, 60 s): files are written
    while it is away."""
    s = platform
    victim = node(s, "hdfs-datanode-2")
    seen = {}

    def restore():
        seen["low"] = low_redundancy_blocks(s)
        launcher.start(s, victim)
        return {"blocks with one copy at its return": seen["low"]}

    def recovered(since):
        return {"recovery_s": timed(lambda: low_redundancy_blocks(s) == 0, 600,
                                    "every block back to its copies", since)}

    run_cluster_case("hdfs datanode 2 stopped 90 s", s, ledger, reference, report, seed=63, outage_s=90,
                     watch=FAST + ("parquet",), inject=lambda: launcher.stop(s, victim) and None,
                     restore=restore, recovered=recovered, victim_host=victim.host(s))


# -- Spark -------------------------------------------------------------------------------------
def executors(s) -> list[dict]:
    app = json.loads(health.http_get(f"{s.spark_ui_url}/api/v1/applications", 20))[0]["id"]
    return [e for e in json.loads(health.http_get(f"{s.spark_ui_url}/api/v1/applications/{app}/executors", 20))
            if e["id"] != "driver"]


def test_a_spark_worker_killed_under_load(platform, ledger, reference, report):
    s = platform
    busiest = max(executors(s), key=lambda e: e["activeTasks"])  # the predict query's tasks run long
    host = busiest["hostPort"].rsplit(":", 1)[0]
    victim = next(svc for svc in by_name(["spark-worker"], s) if svc.host(s) == host)
    other = [e["hostPort"] for e in executors(s) if e["id"] != busiest["id"]]

    def inject():
        sigkill(s, victim)
        return {"killed": f"{victim.name} with executor {busiest['id']} ({busiest['activeTasks']} running tasks)",
                "tasks went on in": ", ".join(other)}

    def recovered(since):
        hosts = {w.host(s) for w in by_name(["spark-worker"], s)}
        return {"recovery_s": timed(lambda: {e["hostPort"].rsplit(":", 1)[0] for e in executors(s)} >= hosts, 300,
                                    "the job's executors back on every worker", since, interval=2)}

    run_cluster_case(f"spark worker {victim.node} SIGKILL", s, ledger, reference, report, seed=64, outage_s=30,
                     inject=inject, restore=lambda: launcher.start(s, victim) and None, recovered=recovered,
                     victim_host=victim.host(s))


def test_after_every_cluster_fault_one_record_per_store_and_nothing_lost(platform, ledger, report):
    """The final count over every output, the slow archives included."""
    failures = final_count(CASES, ledger, report)
    assert not failures, failures
