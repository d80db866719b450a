"""Synthetic shifts the replay can inject into real flights (``python -m replay --shift NAME``),
so that an operator can watch the platform's loop on one machine: drift alert -> retraining on
the observed outcomes -> a challenger in shadow -> promoted or refused (docs/monitoring.md).

A shift is documented data, not code paths: which flights it touches (scheduled departure at or
after a local hour) and how many minutes it adds to their departure and to their arrival delay.
Adding more to the arrival than to the departure changes the relation the model learned (a
flight now arrives later than its departure delay says), which a model retrained on what was
observed can learn and the served one cannot: the evidence a promotion needs. Cancelled flights
are left as they were; a diverted flight's departure moves, its (unknown) arrival stays unknown.
A flight's outcome is reported when the shifted flight lands.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from replay.flights import Flight


@dataclass(frozen=True)
class Shift:
    name: str
    description: str
    from_local_hour: int      # flights scheduled to leave at or after this local hour (0-23)
    dep_delay_add: float      # minutes added to their departure delay
    arr_delay_add: float      # minutes added to their arrival delay

    def touches(self, flight: Flight) -> bool:
        return not flight.cancelled and flight.crs_dep_time // 100 >= self.from_local_hour

    def apply(self, flight: Flight) -> Flight:
        if not self.touches(flight):
            return flight
        dep = flight.dep_delay + self.dep_delay_add
        if flight.diverted:
            return replace(flight, dep_delay=dep, reported_at=flight.reported_at + dt.timedelta(minutes=self.dep_delay_add))
        return replace(flight, dep_delay=dep, arr_delay=flight.arr_delay + self.arr_delay_add,
                       reported_at=flight.reported_at + dt.timedelta(minutes=self.arr_delay_add))


SHIFTS = {
    "heavy-delays": Shift(
        "heavy-delays",
        "an evening of congestion: flights scheduled to leave from 15:00 local leave 45 min later than "
        "they did and arrive 75 min later (30 more in the air and at the gate)",
        from_local_hour=15, dep_delay_add=45.0, arr_delay_add=75.0),
}


def shifted(flights: list[Flight], name: str | None) -> tuple[list[Flight], int]:
    """The flights with shift ``name`` applied (None: as they were) and how many it touched.
    Their order (scheduled departure) does not change: a shift moves delays, not schedules."""
    if name is None:
        return flights, 0
    shift = SHIFTS[name]
    return [shift.apply(f) for f in flights], sum(shift.touches(f) for f in flights)
