"""Request traffic for benchmarks and tests: valid sample requests, producing them, and reading
a topic back."""
from __future__ import annotations

import json
import random
import time
import uuid as uuidlib

from flightdelay import kafka
from flightdelay.config import Settings
from flightdelay.reference import Reference
from flightdelay.schema import ROUTE_SEPARATOR


def sample_requests(reference: Reference, n: int, seed: int = 7, requested_at: int | None = None) -> list[dict]:
    """``n`` valid requests over the reference's routes: the flights are deterministic for a
    seed, the UUIDs are new on every call (stores keep what earlier runs wrote)."""
    rng = random.Random(seed)
    routes = sorted(reference.routes)
    carriers = sorted(reference.carriers)
    out = []
    for _ in range(n):
        origin, dest = rng.choice(routes).split(ROUTE_SEPARATOR)
        dep = rng.randrange(5, 23) * 100 + rng.choice((0, 15, 30, 45))
        arr = (dep + rng.randrange(100, 600)) % 2400
        arr = arr - arr % 100 + min(arr % 100, 59)
        out.append({"UUID": str(uuidlib.uuid4()),
                    "Carrier": rng.choice(carriers), "Origin": origin, "Dest": dest,
                    "FlightDate": f"2013-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                    "CRSDepTime": dep, "CRSArrTime": arr, "DepDelay": float(rng.randrange(-20, 180)),
                    "FlightNum": rng.randrange(1, 5000),
                    "requested_at": requested_at or int(time.time() * 1000)})
    return out


def produce(s: Settings, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """Produce (key, value) pairs and wait until Kafka acknowledged every one."""
    p = kafka.producer(s, {"linger.ms": 5})
    for key, value in messages:
        p.produce(topic, key=key, value=value)
    if p.flush(30):
        raise RuntimeError(f"Kafka did not acknowledge every message to {topic}")


def produce_requests(s: Settings, topic: str, requests: list[dict]) -> None:
    produce(s, topic, [(r["UUID"].encode(), json.dumps(r).encode()) for r in requests])


def collect(s: Settings, topic: str, *, until, timeout: float = 120.0) -> list:
    """Read ``topic`` from the beginning until ``until(messages)`` is true or ``timeout``."""
    consumer = kafka.consumer(s, f"test-{uuidlib.uuid4()}",
                              {"auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(messages):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                messages.append(msg)
    finally:
        consumer.close()
    return messages
