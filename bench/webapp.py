"""Form submit -> result shown, through the running web app, Kafka and the streaming job.

Usage:
    python -m bench.webapp [--clients 50] [--requests 20] [--processes 5] [--warmup 5]
                           [--idle 10000] [--slow 300] [--users 10] [--webapp-root DIR]

Needs the platform up (`make up`); runs its own web app process (harness/own_webapp.py: every
simulated browser shares one address, past the per-client rate limit). Each simulated browser loads the page (session cookie and
CSRF token, as a browser does), opens a Socket.IO websocket, then submits its form
``--warmup`` times (not counted: a freshly started job or web app compiles its hot path first),
waits for every browser to get there, then ``--requests`` times, one after the other, timing
submit -> "prediction" event for its UUID
(and submit -> the "accepted" acknowledgement, and the stages between the request's
requested_at and predicted_at stamps). The browsers are spread over ``--processes`` client
processes, as real browsers are independent: as threads of one Python process (each Socket.IO
client adds a reader, a writer and a thread per incoming message) they share one GIL, which
py-spy found about 20% busy; on the shared 2-core machine the difference to one process was
within the noise of the other stacks' load.
Then two steps of hostile use, each measuring ``--users`` other users meanwhile (each loads the
page ``--pages`` times and submits ``--submits`` flights): ``--idle`` idle Socket.IO websockets
held open (answering Engine.IO's pings, as open tabs do; from source addresses 127.100.x.y, 100
each, under the per-address cap), then the per-address cap tried from one more address; then
``--slow`` clients sending their headers a byte a second and a tenth as many sending a body so
(127.101.x.y), with how long until the server closed each. ``--webapp-root`` runs the bench's
web app from another checkout (e.g. ``git archive`` of the code before a change) to measure it.
Prints progress and, as its last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import functools
import multiprocessing
import operator
import re
import threading
import time

import requests
import socketio

from flightdelay.config import load_settings
from flightdelay.reference import load_reference
from harness import hostile, machine
from harness.own_webapp import own_webapp
from harness.progress import say
from harness.results import publish
from harness.stats import percentile, percentiles_ms
from harness.traffic import sample_requests

FORM_FIELDS = ("Carrier", "Origin", "Dest", "FlightDate", "CRSDepTime", "CRSArrTime", "DepDelay", "FlightNum")


class Browser(threading.Thread):
    def __init__(self, url: str, forms: list[dict], start: threading.Barrier, timeout: float, warmup: int = 0):
        super().__init__(daemon=True)
        self.url, self.start_line, self.timeout = url, start, timeout
        self.warmup_forms, self.forms = forms[:warmup], forms[warmup:]
        self.latencies: list[float] = []
        self.acks: list[float] = []
        self.stages: list[tuple[float, float, float]] = []  # (submit -> requested_at, -> predicted_at, -> shown)
        self.timeouts = 0
        self.errors: list[str] = []

    def run(self):
        try:
            self.browse()
        except Exception as exc:  # a browser that cannot connect must not leave the others waiting
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.start_line.abort()

    def browse(self):
        http = requests.Session()
        http.trust_env = False
        page = http.get(self.url + "/", timeout=30)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        client = socketio.Client(reconnection=False)
        arrived = {}
        done = threading.Condition()

        @client.on("prediction")
        def on_prediction(p):
            with done:
                arrived[p["UUID"]] = (time.perf_counter(), time.time() * 1000, p)
                done.notify_all()

        client.connect(self.url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=30)
        for form in self.warmup_forms:  # not counted: the web app's and the job's hot paths get compiled
            uuid = client.call("predict", dict(form, csrf_token=token), timeout=30).get("uuid")
            with done:
                done.wait_for(functools.partial(operator.contains, arrived, uuid), timeout=self.timeout)
        self.start_line.wait()
        for form in self.forms:
            sent, sent_ms = time.perf_counter(), time.time() * 1000
            ack = client.call("predict", dict(form, csrf_token=token), timeout=30)
            self.acks.append((time.perf_counter() - sent) * 1000)
            if "uuid" not in ack:
                self.errors.append(str(ack))
                continue
            with done:
                if not done.wait_for(lambda uuid=ack["uuid"]: uuid in arrived, timeout=self.timeout):
                    self.timeouts += 1
                    continue
            shown, shown_ms, prediction = arrived[ack["uuid"]]
            self.latencies.append((shown - sent) * 1000)
            self.stages.append(stages_of(sent_ms, prediction, shown_ms))
        client.disconnect()


STAGES = ("submit_to_validated_ms", "validated_to_predicted_ms", "predicted_to_shown_ms")


def stages_of(sent_ms: float, prediction: dict, shown_ms: float) -> tuple[float, float, float]:
    """Where one submission's time went, from the wall clocks of this machine: submit -> the web
    app stamped requested_at (socket in, CSRF, rate limit, validation); -> the job stamped
    predicted_at (the web app's produce, Kafka, the predict query); -> the browser had it (the
    job's Kafka sink, the web app's consumer, the emit to the room, the socket out)."""
    requested, predicted = prediction.get("requested_at") or 0, prediction.get("predicted_at") or 0
    return requested - sent_ms, predicted - requested, shown_ms - predicted


def browse_in_process(url: str, form_lists: list[list[dict]], timeout: float, start, out, warmup: int = 0) -> None:
    """One client process: a browser thread per form list. Once all of them are connected, wait
    at ``start`` (shared with the other processes and the parent), then submit; put the figures
    on ``out``."""
    local_start = threading.Barrier(len(form_lists), action=lambda: start.wait(120))
    browsers = [Browser(url, forms, local_start, timeout, warmup) for forms in form_lists]
    for b in browsers:
        b.start()
    for b in browsers:
        b.join()
    out.put({"latencies": [x for b in browsers for x in b.latencies], "acks": [x for b in browsers for x in b.acks],
             "stages": [x for b in browsers for x in b.stages],
             "timeouts": sum(b.timeouts for b in browsers), "errors": [e for b in browsers for e in b.errors]})


def spread(items: list, groups: int) -> list[list]:
    """``items`` dealt round-robin into at most ``groups`` non-empty lists."""
    return [items[i::groups] for i in range(min(groups, len(items)))]


# -- hostile steps ------------------------------------------------------------------------------------
def process_figures(pid: int) -> dict:
    """Resident memory and open files of the web app's process tree (gunicorn's master + worker)."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {"rss_mb": round(sum(p.memory_info().rss for p in procs) / 1e6, 1),
            "open_files": sum(p.num_fds() for p in procs)}


def page_loads(url: str, users: int, pages: int, timeout: float = 15.0) -> dict:
    """``users`` threads each loading the page ``pages`` times: latency p50/p95 and failures."""
    times, failures = [], []

    def user():
        http = requests.Session()
        http.trust_env = False
        for _ in range(pages):
            began = time.perf_counter()
            try:
                answer = http.get(url + "/", timeout=timeout)
                if answer.status_code != 200:
                    failures.append(f"HTTP {answer.status_code}")
                    continue
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
                continue
            times.append((time.perf_counter() - began) * 1000)

    threads = [threading.Thread(target=user, daemon=True) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"page_loads": len(times), "page_failures": len(failures),
            **percentiles_ms(times, (50, 95), prefix="page_")}


def predictions(url: str, users: int, submits: int, reference, timeout: float) -> dict:
    """``users`` browsers each submitting ``submits`` flights (2 more first, not counted)."""
    forms = [[{k: str(v) if v is not None else "" for k, v in r.items() if k in FORM_FIELDS}
              for r in sample_requests(reference, submits + 2, seed=500 + i)] for i in range(users)]
    start = threading.Barrier(users)
    browsers = [Browser(url, f, start, timeout, warmup=2) for f in forms]
    for b in browsers:
        b.start()
    for b in browsers:
        b.join(timeout * (submits + 3) + 60)
    latencies = [x for b in browsers for x in b.latencies]
    return {"predictions": len(latencies), "prediction_failures": users * submits - len(latencies),
            **percentiles_ms(latencies, (50, 95), prefix="prediction_")}


def others_meanwhile(url: str, args, reference) -> dict:
    return {**page_loads(url, args.users, args.pages), **predictions(url, args.users, args.submits, reference,
                                                                    args.timeout)}


def idle_step(url: str, pid: int, args, reference, ctx) -> dict:
    report, stop = ctx.Queue(), ctx.Event()
    holder = ctx.Process(target=hostile.hold_idle, args=(url, args.idle, 100, "127.100", report, stop), daemon=True)
    holder.start()
    opened = report.get(timeout=1800)
    say(f"idle: {opened['connected']:,} of {args.idle:,} websockets open in {opened['seconds_to_open']} s "
        f"(failed: {opened['failed'] or 'none'}); {args.users} users load pages and predict meanwhile")
    held = process_figures(pid)
    figures = {"idle_wanted": args.idle, "idle_connected": opened["connected"],
               "idle_failed": sum(opened["failed"].values()), "idle_seconds_to_open": opened["seconds_to_open"],
               **{f"webapp_{k}": v for k, v in held.items()}, **others_meanwhile(url, args, reference)}
    figures.update(cap_check(url))
    stop.set()
    closed = report.get(timeout=300)
    holder.join(60)
    figures["idle_dropped_by_server"] = closed["dropped_by_server"]
    say(f"idle step: {figures}")
    return figures


def cap_check(url: str) -> dict:
    """From one more address: connections up to the server's per-address cap are held, the next
    ones refused with a 429 (when the server has a cap)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    held, refused, other = [], 0, 0
    try:
        for _ in range(load_settings().webapp_max_connections_per_client + 10):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5, source_address=("127.102.0.1", 0))
            held.append(sock)
        time.sleep(0.5)
        for sock in held:
            sock.setblocking(False)
            try:
                first = sock.recv(64)
            except BlockingIOError:
                continue
            if first.startswith(b"HTTP/1.1 429"):
                refused += 1
            else:
                other += 1
    except OSError:
        other += 1
    finally:
        for sock in held:
            sock.close()
    return {"cap_tried": len(held), "cap_refused_429": refused}


def slow_step(url: str, args, reference, ctx) -> dict:
    report = ctx.Queue()
    bodies = max(1, args.slow // 10)
    holder = ctx.Process(target=hostile.hold_slow, args=(url, args.slow, bodies, 100, "127.101", report),
                         daemon=True)
    holder.start()
    report.get(timeout=60)
    time.sleep(2)  # every slow client has connected and started trickling
    say(f"slow: {args.slow} clients sending headers and {bodies} sending a body, a byte a second; "
        f"{args.users} users load pages and predict meanwhile")
    figures = {"slow_headers": args.slow, "slow_bodies": bodies, **others_meanwhile(url, args, reference)}
    closed = report.get(timeout=300)["closed_after_s"]
    holder.join(60)
    seconds = [c for c in closed if c is not None]
    figures.update({"slow_closed": len(seconds), "slow_never_closed": len(closed) - len(seconds),
                    "slow_closed_after_p50_s": None if not seconds else round(percentile(seconds, 50), 1),
                    "slow_closed_after_max_s": None if not seconds else round(max(seconds), 1)})
    say(f"slow step: {figures}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--processes", type=int, default=5, help="client processes the browsers are spread over")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=5, help="submits per browser before the measured ones (not counted)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle Socket.IO websockets held in the idle step (0: no step)")
    parser.add_argument("--slow", type=int, default=300, help="slow-header clients in the slow step (0: no step)")
    parser.add_argument("--users", type=int, default=10, help="other users measured during each hostile step")
    parser.add_argument("--pages", type=int, default=20, help="page loads of each of those users")
    parser.add_argument("--submits", type=int, default=10, help="flights each of those users submits")
    parser.add_argument("--webapp-root", help="run the bench's web app from this checkout (default: this one)")
    args = parser.parse_args()
    s = load_settings()
    host = machine.before_bench(say, settle=True)  # `make bench` runs it right after `infra up`
    with own_webapp(s, code_root=args.webapp_root) as (url, webapp_pid):
        reference = load_reference()
        form_lists = [[{k: str(v) if v is not None else "" for k, v in r.items() if k in FORM_FIELDS}
                       for r in sample_requests(reference, args.warmup + args.requests, seed=100 + i)]
                      for i in range(args.clients)]
        groups = spread(form_lists, args.processes)
        # spawn: the children start clean, with no copy of this process's threads or sockets
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Barrier(len(groups) + 1), ctx.Queue()
        procs = [ctx.Process(target=browse_in_process, args=(url, group, args.timeout, start, out, args.warmup),
                             daemon=True)
                 for group in groups]
        for p in procs:
            p.start()
        start.wait(300)
        say(f"{args.clients} browsers in {len(procs)} processes connected to {url} and warmed up ({args.warmup} submits "
            f"each, not counted); each submits {args.requests} flights")
        began = time.monotonic()
        parts = [out.get() for _ in procs]
        elapsed = time.monotonic() - began
        for p in procs:
            p.join(30)
        latencies = [x for part in parts for x in part["latencies"]]
        acks = [x for part in parts for x in part["acks"]]
        errors = [e for part in parts for e in part["errors"]]
        stages = [x for part in parts for x in part["stages"]]
        stage_p50 = {name: round(percentile([x[i] for x in stages], 50) or -1, 1) for i, name in enumerate(STAGES)}
        stage_p95 = {name: round(percentile([x[i] for x in stages], 95) or -1, 1) for i, name in enumerate(STAGES)}
        for error in errors[:5]:
            say(f"error: {error}")
        figures = {"machine": host, "warmup": f"{args.warmup} submits per browser, not counted",
                   "clients": args.clients, "processes": len(procs), "submitted": args.clients * args.requests,
                   "results": len(latencies), "timeouts": sum(part["timeouts"] for part in parts), "errors": len(errors),
                   **percentiles_ms(latencies), **percentiles_ms(acks, (50, 95), prefix="ack_"),
                   "stages_p50_ms": stage_p50, "stages_p95_ms": stage_p95,
                   "seconds": round(elapsed, 1), "results_per_s": round(len(latencies) / elapsed, 1)}
        say(f"{figures['results']}/{figures['submitted']} results, p50 {figures['p50_ms']} ms, "
            f"p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms (ack p50 {figures['ack_p50_ms']} ms, "
            f"p95 {figures['ack_p95_ms']} ms) in {figures['seconds']} s")
        say(f"stages p50 {stage_p50}, p95 {stage_p95}")
        if args.idle:
            figures["idle_step"] = idle_step(url, webapp_pid, args, reference, ctx)
        if args.slow:
            figures["slow_step"] = slow_step(url, args, reference, ctx)
    publish("webapp", figures, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
