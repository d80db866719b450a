"""A monitor window: the predictions read since it opened, grouped by model version; it closes
after FD_MONITOR_WINDOW_N predictions or FD_MONITOR_WINDOW_S seconds, whichever comes first.
Pure: no clients, no clock of its own (times are passed in, epoch ms)."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from flightdelay.schema import LABELS


class Malformed(ValueError):
    """A message on the response topic that is not a prediction the monitor can score."""


def json_object(value: bytes | None) -> dict:
    """A message's value as a JSON object; Malformed otherwise."""
    if value is None:
        raise Malformed("empty message")
    try:
        record = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise Malformed("not a JSON object")
    return record


def parse_prediction(value: bytes | None) -> dict:
    """A response message as a dict with ``model_name``, ``model_version`` (str) and ``prediction``
    (a label class); Malformed otherwise. Missing request fields are binned as 'missing'."""
    record = json_object(value)
    for name in ("model_name", "model_version"):
        if not isinstance(record.get(name), (str, int)) or isinstance(record.get(name), bool) or record[name] == "":
            raise Malformed(f"no {name}")
    prediction = record.get("prediction")
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)) or prediction not in LABELS:
        raise Malformed(f"prediction {prediction!r} is not a label class")
    for name, kind in (("DepDelay", (int, float)), ("CRSDepTime", (int, float)), ("Carrier", str), ("Route", str)):
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise Malformed(f"{name} {value!r} has the wrong type")
    record["model_version"] = str(record["model_version"])
    record["prediction"] = int(prediction)
    return record


@dataclass
class Window:
    opened_ms: int
    max_n: int
    max_ms: int
    by_version: dict[tuple[str, str], list[dict]] = field(default_factory=lambda: defaultdict(list))
    malformed: int = 0

    @property
    def predictions(self) -> int:
        return sum(len(v) for v in self.by_version.values())

    def add(self, record: dict) -> None:
        self.by_version[(record["model_name"], record["model_version"])].append(record)

    def due(self, now_ms: int) -> bool:
        """Full, or open long enough with something in it."""
        if self.predictions >= self.max_n:
            return True
        return now_ms - self.opened_ms >= self.max_ms and (self.predictions > 0 or self.malformed > 0)
