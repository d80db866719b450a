"""Fault injection against the real local stack: the platform's own streaming job, web app and
servers (the session ``stack``), a steady request load per case, and an accounting of every
output (harness.ledger). Faults are injected the way an operator or a crash would: the launcher
stops and starts servers by pid, a SIGKILL ends the streaming job's process group."""
from __future__ import annotations

import json
import threading
import time

import pytest

from flightdelay.config import load_settings
from flightdelay.reference import load_reference
from harness.ledger import OUTPUTS, Ledger, Topics, present_in_cassandra, present_in_mongo, tally
from harness.progress import printer
from infra import launcher
from infra.services import by_name

PLATFORM = ("kafka", "nifi", "mongo", "mlflow", "hdfs", "cassandra", "streaming", "webapp")
RATE = 25.0  # requests per second of the background load: modest, as a fault test wants

# The clusters' faults need FD_CLUSTER=1 (make test-cluster); the single-node faults need it off
# (make test). Each run collects only its own file.
collect_ignore = ["test_faults.py"] if load_settings().cluster else ["test_cluster_faults.py"]


say = printer("faults")


@pytest.fixture(scope="module")
def platform(stack):
    return stack.require(*PLATFORM)


@pytest.fixture(scope="module")
def topics(platform):
    reader = Topics(platform)
    reader.start()
    assert reader.ready.wait(60), "the response/dead-letter reader was never assigned its partitions"
    yield reader
    reader.stop()


@pytest.fixture(scope="module")
def ledger(platform, topics):
    return Ledger(platform, topics)


@pytest.fixture(scope="module")
def reference():
    return load_reference()


class Report:
    """One row per fault case, printed as a table at the end of the module and written to
    <state>/faults-report.json for the closing note."""

    def __init__(self):
        self.cases: dict[str, dict] = {}

    def add(self, name: str, **figures) -> None:
        self.cases.setdefault(name, {}).update(figures)


@pytest.fixture(scope="module")
def report(platform, request):
    r = Report()
    yield r
    path = platform.state / getattr(request.module, "REPORT_FILE", "faults-report.json")
    path.write_text(json.dumps(r.cases, indent=1, default=str))
    writer = request.config.pluginmanager.getplugin("terminalreporter")
    for line in format_table(r.cases) + [f"(figures also in {path})"]:
        (writer.write_line if writer else print)(line)


def format_table(cases: dict[str, dict]) -> list[str]:
    outputs = ("responses", "mongo", "cassandra_by_uuid", "cassandra_by_route_day", "parquet", "nifi")
    short = {"responses": "resp", "mongo": "mongo", "cassandra_by_uuid": "cass/uuid",
             "cassandra_by_route_day": "cass/route", "parquet": "parquet", "nifi": "nifi"}
    head = f"{'fault':<22} {'sent':>6} " + " ".join(f"{short[o]:>10}" for o in outputs) + \
        f" {'lost':>5} {'dup':>4} {'repeats':>7} {'recovery':>9}"
    lines = ["", "fault-injection figures: records found per output; lost over every output; dup = extra records"
                 " in MongoDB, Cassandra, parquet (keyed by UUID); repeats = extra lines on the at-least-once"
                 " response topic and NiFi text archive", head, "-" * len(head)]
    for name, c in cases.items():
        counts = c.get("outputs") or c.get("first_counts") or {}
        counts = {o: v for o, v in counts.items() if isinstance(v, dict)}
        cells = " ".join(f"{counts.get(o, {}).get('found', '-'):>10}" for o in outputs)
        lost = sum(v["lost"] for v in counts.values()) if counts else "-"
        dup = sum(v["duplicated"] for o, v in counts.items() if o not in ("responses", "nifi")) if counts else "-"
        repeats = sum(v["duplicated"] for o, v in counts.items() if o in ("responses", "nifi")) if counts else "-"
        rec = c.get("recovery_s")
        lines.append(f"{name:<22} {c.get('sent', '-'):>6} {cells} {lost:>5} {dup:>4} {repeats:>7} "
                     f"{'-' if rec is None else f'{rec:.1f} s':>9}")
        for key in ("notes", "browsers"):
            if c.get(key):
                lines.append(f"{'':<22} {key}: {c[key]}")
    return lines


def service(name: str):
    return by_name([name])[0]


def restart(s, name: str) -> float:
    """Stop then start ``name`` through the launcher (as ``make down``/``make up`` would);
    return the seconds until it answered its readiness probe again."""
    svc = service(name)
    began = time.monotonic()
    launcher.stop(s, svc)
    launcher.start(s, svc)
    return time.monotonic() - began


class Browser:
    """A connected page, as predict.js behaves: it watches the UUIDs it waits for (joining
    their rooms), takes a "prediction" event or a watch answer that already has the result,
    and re-watches what it still waits for after a reconnect."""

    GRACE = 1.0  # seconds between the ledger's reader and the web app's consumer seeing a response

    def __init__(self, url: str, name: str):
        import socketio

        self.url, self.name = url, name
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=2,
                                      reconnection_attempts=0)
        self.lock = threading.Lock()
        self.watched: dict[str, list[float]] = {}   # uuid -> times a watch was sent while connected
        self.received: dict[str, float] = {}
        self.intervals: list[list[float | None]] = []  # [connected at, disconnected at | None]
        self.client.on("connect", self._on_connect)
        self.client.on("disconnect", self._on_disconnect)
        self.client.on("prediction", self._on_prediction)

    def connect(self) -> None:
        self.client.connect(self.url, transports=["websocket"], wait_timeout=30)

    def close(self) -> None:
        self.client.disconnect()

    @property
    def connected(self) -> bool:
        return bool(self.intervals) and self.intervals[-1][1] is None and self.client.connected

    def _on_connect(self):
        with self.lock:
            self.intervals.append([time.monotonic(), None])
            pending = [u for u in self.watched if u not in self.received]
        self.client.start_background_task(lambda: [self.watch(u) for u in pending])

    def _on_disconnect(self, *_reason):
        with self.lock:
            if self.intervals and self.intervals[-1][1] is None:
                self.intervals[-1][1] = time.monotonic()

    def _on_prediction(self, prediction):
        uuid = prediction.get("UUID") if isinstance(prediction, dict) else None
        if uuid:
            with self.lock:
                self.received.setdefault(uuid, time.monotonic())

    def watch(self, uuid: str) -> None:
        with self.lock:
            times = self.watched.setdefault(uuid, [])
        if not self.connected:
            return  # re-watched on reconnect
        try:
            self.client.emit("watch", {"uuid": uuid}, callback=lambda ack: self._on_watch_answer(uuid, ack))
            times.append(time.monotonic())
        except Exception:  # disconnected meanwhile: the reconnect re-watches it
            pass

    def _on_watch_answer(self, uuid: str, ack) -> None:
        if isinstance(ack, dict) and ack.get("status") == "done" and ack.get("prediction"):
            with self.lock:
                self.received.setdefault(uuid, time.monotonic())

    def owed(self, arrived: dict[str, float]) -> set[str]:
        """UUIDs whose response reached Kafka while this browser was connected and watching
        them (a watch sent in the same connection before the response, which arrived at least
        GRACE before the connection ended). A watch the web app handles after the response
        came is answered with the result at once, so in the first connection no gap is needed
        before the response (requiring one left nothing owed when the pipeline answered in
        40 ms); after a reconnect the watch must precede the response by GRACE, the restarted
        web app's response consumer starting at the topic's end meanwhile."""
        out = set()
        with self.lock:
            for uuid, times in self.watched.items():
                t = arrived.get(uuid)
                if t is None:
                    continue
                for i, (began, ended) in enumerate(self.intervals):
                    ended = float("inf") if ended is None else ended
                    gap = 0.0 if i == 0 else self.GRACE
                    if any(began <= w <= t - gap for w in times) and t <= ended - self.GRACE:
                        out.add(uuid)
                        break
        return out

    def missed(self, arrived: dict[str, float]) -> set[str]:
        owed = self.owed(arrived)
        with self.lock:
            return owed - set(self.received)


# Outputs keyed by the request UUID: a repeat there is a defect (NiFi's text files may repeat a
# line after a crash, docs/nifi-archive.md).
EXACTLY_ONCE = ("mongo", "cassandra_by_uuid", "cassandra_by_route_day", "parquet")


def final_count(cases: dict[str, list[str]], ledger, report) -> list[str]:
    """Settle every case's accepted requests across every output (the slow archives included),
    add each case's counts to the report and return what was lost or duplicated."""
    assert cases, "no fault case ran"
    every = [u for uuids in cases.values() for u in uuids]
    figures = ledger.settle(every, 300, outputs=OUTPUTS, progress=say)
    counts = ledger.counts(every, OUTPUTS)
    failures = []
    for name, uuids in cases.items():
        case = tally(uuids, counts)
        report.add(name, outputs={o: case[o] for o in OUTPUTS})
        for output in OUTPUTS:
            if case[output]["lost"]:
                failures.append(f"{name}: {case[output]['lost']} lost in {output}")
            if case[output]["duplicated"] and output in EXACTLY_ONCE:
                failures.append(f"{name}: {case[output]['duplicated']} duplicated in {output}")
    say(f"all cases: {json.dumps(figures)}")
    return failures


def backlog_settled(s, ledger, load, backlog: list[str], watch) -> bool:
    """Every request of ``backlog`` that Kafka accepted is answered, and the newest of them are in
    MongoDB and Cassandra (and all in the parquet archive when ``watch`` names it)."""
    accepted = load.snapshot()
    owed = [u for u in backlog if u in accepted]
    if len(owed) + load.failed < len(backlog) or ledger.topics.answered(owed) < len(owed):
        return False
    newest = owed[-20:]
    try:
        ok = present_in_mongo(s, newest) and present_in_cassandra(s, newest)
        if ok and "parquet" in watch:
            archived = ledger.archives.parquet_counts()
            ok = all(archived.get(u) for u in owed)
        return ok
    except Exception:  # a store still coming back
        return False
