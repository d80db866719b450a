"""Latency of the synchronous route (POST /flights/delays/predict/classify), open loop.

Usage:
    python -m bench.sync_route [--rates 10,100] [--seconds 30]

Needs Kafka and the streaming job up (`make up`). Runs its own web app process (harness/own_webapp.py:
one client address sends every request, past the per-client rate limit), then at
each rate sends original-style form posts (no scheduled times: the route's schedule is filled
in) on a fixed timetable and times each response. A request answered 202 (no prediction within
the wait) counts as late. Last line: one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from flightdelay.config import load_settings
from flightdelay.reference import load_reference
from harness import machine
from harness.own_webapp import own_webapp
from harness.progress import say
from harness.results import publish
from harness.stats import percentiles_ms


def forms(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    reference = load_reference()
    routes = sorted(r for r in reference.routes if reference.routes[r].get("typical_schedule"))
    carriers = sorted(reference.carriers)
    out = []
    for _ in range(n):
        origin, dest = rng.choice(routes).split("-")
        out.append(f"DepDelay={rng.randrange(-20, 180)}&Carrier={rng.choice(carriers)}"
                   f"&FlightDate=2013-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}&Origin={origin}&Dest={dest}")
    return out


def run_rate(url: str, rate: float, seconds: float, bodies: list[str]) -> dict:
    session = requests.Session()
    session.trust_env = False
    latencies, late, errors = [], 0, 0

    def one(body: str):
        sent = time.perf_counter()
        answer = session.post(url, data=body, timeout=30,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        return answer.status_code, (time.perf_counter() - sent) * 1000

    total = int(rate * seconds)
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(256, int(rate * 12) + 4)) as pool:
        futures = []
        for i in range(total):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, bodies[i % len(bodies)]))
        for f in futures:
            try:
                code, ms = f.result()
            except requests.RequestException:
                errors += 1
                continue
            if code == 200:
                latencies.append(ms)
            elif code == 202:
                late += 1
            else:
                errors += 1
    return {"rate_per_s": rate, "sent": total, "answered_200": len(latencies), "late_202": late, "errors": errors,
            **percentiles_ms(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="10,100")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    s = load_settings()
    host = machine.before_bench(say, settle=True)  # `make bench` runs it right after `infra up`
    with own_webapp(s) as (base, _pid):
        url = base + "/flights/delays/predict/classify"
        bodies = forms(2000)
        run_rate(url, 5, 5, bodies)  # warm-up, excluded: first requests pay imports and connections
        steps = []
        for rate in (float(r) for r in args.rates.split(",") if r.strip()):
            step = run_rate(url, rate, args.seconds, bodies)
            say(f"{rate:g}/s: {step['answered_200']}/{step['sent']} answered in the response, "
                f"p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, late {step['late_202']}, errors {step['errors']}")
            steps.append(step)
    publish("sync_route", {"machine": host, "route": "/flights/delays/predict/classify",
                           "seconds_per_rate": args.seconds, "warm_up": "5 requests/s for 5 s, excluded", "steps": steps}, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
