"""Form submit -> result shown, through the running web app, Kafka and the streaming job.

Usage:
    python -m bench.webapp [--clients 50] [--requests 20]

Needs the platform up (`make up`); runs its own web app process (bench/own_webapp.py: every
simulated browser shares one address, past the per-client rate limit). Each simulated browser loads the page (session cookie and
CSRF token, as a browser does), opens a Socket.IO websocket, then submits its form
``--requests`` times, one after the other, timing submit -> "prediction" event for its UUID.
Prints progress and, as its last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import re
import threading
import time

import requests
import socketio

from bench import machine
from bench.own_webapp import own_webapp
from bench.traffic import sample_requests
from flightdelay.config import load_settings
from flightdelay.reference import load_reference

FORM_FIELDS = ("Carrier", "Origin", "Dest", "FlightDate", "CRSDepTime", "CRSArrTime", "DepDelay", "FlightNum")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Browser(threading.Thread):
    def __init__(self, url: str, forms: list[dict], start: threading.Barrier, timeout: float):
        super().__init__(daemon=True)
        self.url, self.forms, self.start_line, self.timeout = url, forms, start, timeout
        self.latencies: list[float] = []
        self.timeouts = 0
        self.errors: list[str] = []

    def run(self):
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
                arrived[p["UUID"]] = time.perf_counter()
                done.notify_all()

        client.connect(self.url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=30)
        self.start_line.wait()
        for form in self.forms:
            sent = time.perf_counter()
            ack = client.call("predict", dict(form, csrf_token=token), timeout=30)
            if "uuid" not in ack:
                self.errors.append(str(ack))
                continue
            with done:
                if not done.wait_for(lambda uuid=ack["uuid"]: uuid in arrived, timeout=self.timeout):
                    self.timeouts += 1
                    continue
            self.latencies.append((arrived[ack["uuid"]] - sent) * 1000)
        client.disconnect()


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    s = load_settings()
    host = machine.describe()
    say(f"machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB")
    host["before"] = machine.warn_if_busy(say)
    with own_webapp(s) as url:
        reference = load_reference()
        start = threading.Barrier(args.clients + 1)
        browsers = []
        for i in range(args.clients):
            forms = [{k: str(v) if v is not None else "" for k, v in r.items() if k in FORM_FIELDS}
                     for r in sample_requests(reference, args.requests, seed=100 + i)]
            browsers.append(Browser(url, forms, start, args.timeout))
        for b in browsers:
            b.start()
        print(f"[bench] {args.clients} browsers connected to {url}; each submits {args.requests} flights", flush=True)
        start.wait()
        began = time.monotonic()
        for b in browsers:
            b.join()
        elapsed = time.monotonic() - began
        latencies = [x for b in browsers for x in b.latencies]
        figures = {"machine": host, "clients": args.clients, "submitted": args.clients * args.requests, "results": len(latencies),
                   "timeouts": sum(b.timeouts for b in browsers), "errors": sum(len(b.errors) for b in browsers),
                   "p50_ms": round(percentile(latencies, 50) or -1, 1), "p95_ms": round(percentile(latencies, 95) or -1, 1),
                   "p99_ms": round(percentile(latencies, 99) or -1, 1), "seconds": round(elapsed, 1),
                   "results_per_s": round(len(latencies) / elapsed, 1)}
        print(f"[bench] {figures['results']}/{figures['submitted']} results, p50 {figures['p50_ms']} ms, "
              f"p95 {figures['p95_ms']} ms in {figures['seconds']} s", flush=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
