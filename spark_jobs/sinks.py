"""What the archive queries do around a store writer (``flightdelay.stores``): convert each
prediction, write the batch and retry until the store answers, and send what a store cannot
take to the dead-letter topic. A store outage thus stalls only its query, whose Kafka offsets
stay uncommitted, and it catches up when the store is back."""
from __future__ import annotations

import json
import logging
import time
from typing import Callable, Iterable

from flightdelay import kafka
from flightdelay.config import Settings
from flightdelay.schema import OPTIONAL_RESPONSE_FIELDS
from flightdelay.stores import Refused

log = logging.getLogger(__name__)


def retry_forever(what: str, action: Callable[[], int], *, first_wait: float = 1.0,
                  max_wait: float = 30.0, stop: Callable[[], bool] = lambda: False) -> int:
    """Run ``action`` until it succeeds; back off exponentially; log each failure on one line.
    Returns what ``action`` returned. ``stop()`` lets the job's shutdown interrupt the wait."""
    wait, attempt = first_wait, 1
    while True:
        try:
            return action()
        except Exception as exc:  # store unavailable / timed out: wait and try again
            if stop():
                raise
            log.warning("%s failed (attempt %d: %s: %s); retrying in %.0f s", what, attempt,
                        type(exc).__name__, str(exc)[:200], wait)
            time.sleep(wait)
            wait, attempt = min(max_wait, wait * 2), attempt + 1


class DeadLetters:
    """Sends records that cannot be archived or joined to the dead-letter topic, with the reason
    and where they came from (a record carries its _raw value, _topic, _partition, _offset, and
    may carry _key, its Kafka key, and _fields, messages per field). One producer, made at the
    first dead letter and reused."""

    def __init__(self, s: Settings):
        self.s = s
        self._producer = None

    def send(self, records: list[tuple[dict, str]]) -> None:
        if not records:
            return
        if self._producer is None:
            self._producer = kafka.producer(self.s)
        for r, reason in records:
            letter = {"reason": reason, "raw": r.get("_raw"), "topic": r.get("_topic"), "partition": r.get("_partition"),
                      "offset": r.get("_offset"), "rejected_at": int(time.time() * 1000)}
            if r.get("_fields"):
                letter["fields"] = r["_fields"]
            key = r.get("UUID") or r.get("_key") or ""
            self._producer.produce(self.s.dlq_topic, key=key.encode() or None, value=json.dumps(letter).encode())
        if self._producer.flush(30):
            raise RuntimeError("the dead-letter topic did not acknowledge every rejected record")


def missing_fields(record: dict, optional=OPTIONAL_RESPONSE_FIELDS) -> list[str]:
    return [k for k, v in record.items() if v is None and not k.startswith("_") and k not in optional]


def write_batch(writer, name: str, batch_id: int, predictions: Iterable[dict], stop=lambda: False,
                reject: Callable[[dict, str], None] | None = None) -> int:
    """Convert each prediction for the store, then write them all, retrying while the store is
    unavailable. A record the store cannot take, found at conversion or refused by the store
    itself (``Refused``), is passed to ``reject`` with the reason, never retried forever."""
    rows, kept = [], []

    def refuse(p: dict, reason: str) -> None:
        log.error("uuid=%s cannot be stored by %s: %s", p.get("UUID"), name, reason)
        if reject is not None:
            reject(p, f"{name} cannot store it: {reason}")

    for p in predictions:
        try:
            rows.append(writer.convert(p))
            kept.append(p)
        except (KeyError, TypeError, ValueError) as exc:
            refuse(p, f"{type(exc).__name__}: {exc}")

    def attempt():
        try:
            return writer.write(rows)
        except Refused as exc:  # the rest is written; retrying the refused rows cannot help
            for index, reason in sorted(exc.reasons.items()):
                refuse(kept[index], reason)
            return exc.written
        except Exception:
            if hasattr(writer, "reset"):
                writer.reset()
            raise

    began = time.monotonic()
    written = retry_forever(f"{name} batch {batch_id} ({len(rows)} predictions)", attempt, stop=stop)
    log.info("%s batch %d: %d predictions written in %.0f ms", name, batch_id, written,
             (time.monotonic() - began) * 1000)
    return written
