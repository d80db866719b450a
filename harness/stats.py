"""Summary figures of measured values."""
from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], p: float) -> float | None:
    """The ``p``-th percentile of ``values`` (nearest rank on the sorted values; None for none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def percentiles_ms(values_ms: Iterable[float], ps=(50, 95, 99), prefix: str = "") -> dict[str, float | None]:
    """``{"p50_ms": ..., "p95_ms": ..., ...}`` of ``values_ms`` to 0.1 ms (None for no values);
    ``prefix`` goes before each name (``ack_p50_ms``)."""
    ordered = sorted(values_ms)
    return {f"{prefix}p{p:g}_ms": None if (v := percentile(ordered, p)) is None else round(v, 1) for p in ps}
