"""The NiFi prediction archive with a real NiFi and a real Kafka: every prediction produced to the
response topic lands exactly once in the 10-second .txt files, also across a NiFi restart (clean
stop and kill -9); and the flow that runs is nifi/flow.json."""
import json
import logging
import os
import signal
import time
import uuid as uuidlib
from collections import Counter

import pytest

from flightdelay import kafka
from flightdelay.stores import text_archive
from infra import launcher
from infra.process import alive, read_tracked
from infra.services import by_name
from nifi import deploy

log = logging.getLogger(__name__)

BIN_AGE_S = 10
MARGIN_S = 25  # scheduling slack on a shared 2-core machine (MergeContent runs every second)


@pytest.fixture(scope="module")
def nifi(stack):
    return stack.require("kafka", "nifi")


def prediction(run: str, i: int) -> dict:
    """Shaped like the job's answers; only the UUID matters to the archive."""
    now = int(time.time() * 1000)
    return {"UUID": str(uuidlib.uuid4()), "test_run": run, "seq": i, "prediction": i % 4,
            "label": "test", "probabilities": [0.25] * 4, "model_name": "test", "model_version": "test",
            "requested_at": now, "predicted_at": now}


def produce_stream(s, n: int, seconds: float, run: str, between=None) -> list[str]:
    """Produce ``n`` predictions evenly over ``seconds``; ``between(i)`` runs before the i-th."""
    p = kafka.producer(s, {"linger.ms": 0})
    ids = []
    began = time.monotonic()
    for i in range(n):
        if between:
            between(i)
        record = prediction(run, i)
        p.produce(s.response_topic, key=record["UUID"].encode(), value=json.dumps(record).encode())
        p.poll(0)
        ids.append(record["UUID"])
        pause = began + seconds * (i + 1) / n - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    assert p.flush(30) == 0, "Kafka did not acknowledge every prediction"
    return ids


def archived(s, run: str) -> tuple[Counter, dict[str, list[str]]]:
    """UUIDs of this run found in the archive (with their counts) and the files holding them."""
    counts, files = Counter(), {}
    for f in text_archive.archive_files(s.nifi_archive):
        for record in text_archive.read_predictions(f.path):
            assert "_invalid" not in record or run not in record["_invalid"], f"broken line in {f.name}"
            if record.get("test_run") == run:
                counts[record["UUID"]] += 1
                files.setdefault(f.name, []).append(record["UUID"])
    return counts, files


def wait_archived(s, run: str, ids: list[str], timeout: float) -> tuple[Counter, dict, float]:
    began = time.monotonic()
    deadline = began + timeout
    while True:
        counts, files = archived(s, run)
        if set(ids) <= set(counts) or time.monotonic() > deadline:
            return counts, files, time.monotonic() - began
        time.sleep(0.5)


def nifi_service():
    (svc,) = by_name(["nifi"])
    return svc


def test_every_prediction_lands_once_in_files_ten_seconds_apart(nifi):
    run = f"stream-{uuidlib.uuid4().hex[:8]}"
    n, seconds = 250, 25.0
    ids = produce_stream(nifi, n, seconds, run)
    counts, files, waited = wait_archived(nifi, run, ids, timeout=BIN_AGE_S + MARGIN_S)
    missing = set(ids) - set(counts)
    duplicates = {k: c for k, c in counts.items() if c > 1}
    cut_times = sorted(text_archive.cut_time(name) for name in files)
    gaps = [(b - a).total_seconds() for a, b in zip(cut_times, cut_times[1:])]
    log.info("NiFi archive: %d predictions over %.0f s -> %d files %s, %d lines, %d missing, %d duplicated; "
             "last one archived %.1f s after the last was produced; gaps between files %s s",
             n, seconds, len(files), sorted(files), sum(counts.values()), len(missing), len(duplicates), waited, gaps)
    assert not missing, f"{len(missing)} of {n} not archived within {BIN_AGE_S + MARGIN_S} s"
    assert not duplicates
    assert sum(len(v) for v in files.values()) == n
    # 25 s of data in 10-second bins: three files (four if a bin boundary falls just so), and
    # consecutive files about ten seconds apart (bin age, checked every second, + the next poll).
    assert 3 <= len(files) <= 4, files.keys()
    assert all(BIN_AGE_S - 1 <= gap <= BIN_AGE_S + 5 for gap in gaps), gaps


def test_restarts_lose_nothing_clean_stop_and_kill_9(nifi):
    """Predictions keep coming while NiFi is stopped cleanly, started, killed with SIGKILL (the
    bootstrap and NiFi, as a crash would) and started again: all are archived afterwards."""
    s = nifi
    svc = nifi_service()
    run = f"restart-{uuidlib.uuid4().hex[:8]}"
    n = 240
    events = []

    def disrupt(i):
        if i == 60:
            began = time.monotonic()
            launcher.stop(s, svc)
            events.append(("clean stop", time.monotonic() - began))
        elif i == 90:
            began = time.monotonic()
            launcher.start(s, svc)
            events.append(("start after clean stop", time.monotonic() - began))
        elif i == 150:
            tracked = read_tracked(launcher.pid_file(s, svc))
            os.killpg(tracked.pid, signal.SIGKILL)
            while alive(tracked):
                time.sleep(0.1)
            events.append(("kill -9", 0.0))
        elif i == 180:
            began = time.monotonic()
            launcher.start(s, svc)
            events.append(("start after kill -9", time.monotonic() - began))

    ids = produce_stream(s, n, 40.0, run, between=disrupt)
    counts, files, waited = wait_archived(s, run, ids, timeout=BIN_AGE_S + MARGIN_S + 30)
    missing = set(ids) - set(counts)
    duplicates = {k: c for k, c in counts.items() if c > 1}
    log.info("NiFi restarts %s: %d produced, %d archived lines in %d files, %d missing, %d duplicated "
             "(at-least-once), all archived %.1f s after the last was produced",
             events, n, sum(counts.values()), len(files), len(missing), len(duplicates), waited)
    assert [e for e, _ in events] == ["clean stop", "start after clean stop", "kill -9", "start after kill -9"]
    assert not missing, f"{len(missing)} of {n} predictions lost across the restarts"


def test_the_running_flow_is_the_definition_in_nifi(nifi):
    definition = deploy.load_definition()
    running = {p["id"]: p for p in deploy.running_processors(nifi)}
    wanted = {p["identifier"]: p for p in definition["flowContents"]["processors"]}
    assert {p["type"] for p in running.values()} == {p["type"] for p in wanted.values()}
    merge = next(p for p in running.values() if p["type"].endswith(".MergeContent"))
    assert merge["properties"]["Max Bin Age"] == "10 sec"
    assert merge["properties"]["Max Bin Age"] == wanted[merge["id"]]["properties"]["Max Bin Age"]
    assert all(p["state"] == "RUNNING" for p in running.values())
    consume = next(p for p in running.values() if p["type"].endswith("ConsumeKafka_2_6"))
    assert consume["properties"]["topic"] == "#{kafka.topic}"
    assert deploy.differences(nifi) == []
