"""The request contract of ``flightdelay.schema`` as Spark column expressions.

The web app validates with ``schema.validate_request``; anything else may produce to the request
topic too, so the streaming job checks every message again, with the same rules (the constants
and FieldSpecs of the schema), and routes failures to the dead-letter topic with the reasons.
A test runs one corpus of bad requests through both implementations and compares verdicts.

On Kafka a request is typed JSON: numbers must be JSON numbers (the web app sends them so);
``validate_request`` also accepts digit strings because HTML forms send strings.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from flightdelay import schema
from flightdelay.features import calendar_date
from flightdelay.reference import Reference

MAX_MESSAGE_BYTES = 8192
RAW = "value"
PARSED = "_request"
ERRORS = "errors"
FORM_PREFIX = "_form_"  # a code field as sent (trimmed), checked before upper-casing
# Java's \s: the same set as schema.ASCII_WHITESPACE, which validate_request strips.
_ASCII_TRIM = r"^[ \t\n\x0B\f\r]+|[ \t\n\x0B\f\r]+$"


RAW_FIELDS = "_raw_fields"
CORRUPT = "_fd_not_json"  # Spark puts unparseable text here; a name no request uses
VALID = "_valid"
# Every field as text, whatever its JSON type: presence and the offending text for messages.
# One parse for all of them (get_json_object per field cost a parse per field per message).
RAW_DDL = ", ".join(f"{n} STRING" for n in schema.REQUEST_FIELDS) + f", {CORRUPT} STRING"


def _raw(name: str) -> Column:
    return F.col(f"{RAW_FIELDS}.{name}")


def _present(name: str) -> Column:
    return F.col(f"{PARSED}.{name}").isNotNull() | _raw(name).isNotNull()


def _checks_for(name: str, spec: schema.FieldSpec, value: Column) -> list[tuple[Column, Column]]:
    """(failed?, message) pairs for one field; the first that fails is reported."""
    raw_text = _raw(name)
    checks: list[tuple[Column, Column]] = []
    if spec.required:
        checks.append((~_present(name), F.lit(f"is required ({spec.description})")))
    checks.append((_present(name) & value.isNull(),
                   F.concat(F.lit(f"has the wrong type ({spec.description}), got "), raw_text)))
    if spec.kind == "code":
        # The pattern applies to the code as sent: upper-casing first would turn "ß" into "SS".
        checks.append((~F.col(FORM_PREFIX + name).rlike(spec.pattern), F.concat(F.lit("is not a valid code: "), value)))
    elif spec.kind == "date":
        parsed = calendar_date(value)
        checks.append((~value.rlike(schema.DATE_RE) | parsed.isNull(),
                       F.concat(F.lit("is not a calendar date YYYY-MM-DD: "), value)))
        checks.append(((value < F.lit(schema.DATE_MIN)) | (value > F.lit(schema.DATE_MAX)),
                       F.lit(f"must be between {schema.DATE_MIN} and {schema.DATE_MAX}")))
    elif spec.kind == "hhmm":
        checks.append(((value < spec.minimum) | (value > spec.maximum) | (F.pmod(value, F.lit(100)) >= 60),
                       F.concat(F.lit("is not a time of day HHMM (0000-2359, minutes below 60): "),
                                value.cast("string"))))
    elif spec.kind in ("float", "int"):
        checks.append((F.isnan(value.cast("double")) | (value < spec.minimum) | (value > spec.maximum),
                       F.lit(f"must be between {spec.minimum:g} and {spec.maximum:g}")))
    elif spec.kind == "uuid":
        checks.append((~value.rlike(schema.UUID_RE), F.lit("is not a UUID")))
    elif spec.kind == "epoch_ms":
        checks.append((value < spec.minimum, F.lit("must be a non-negative epoch time in milliseconds")))
    return checks


def _first_failure(checks: list[tuple[Column, Column]]) -> Column:
    expr = None
    for failed, message in reversed(checks):
        expr = F.when(F.coalesce(failed, F.lit(False)), message) if expr is None else \
            F.when(F.coalesce(failed, F.lit(False)), message).otherwise(expr)
    return expr


def validated(df: DataFrame, reference: Reference) -> DataFrame:
    """Parse ``value`` (Kafka bytes) into the request columns and add ``_valid`` and
    ``errors``: a map field -> message, empty when the request is valid. Codes are upper-cased
    and trimmed as in ``validate_request``.

    ``_valid`` is plain code-generated boolean logic; the map (built with higher-order
    functions, which Spark evaluates row by row without code generation) is only computed for
    invalid requests, so the valid path stays cheap."""
    text = F.when(F.length(F.col(RAW)) > MAX_MESSAGE_BYTES, F.lit(None)) \
        .otherwise(F.try_validate_utf8(F.col(RAW).cast("string")))
    out = df.withColumn("_text", text)
    out = out.withColumn(PARSED, F.from_json(F.col("_text"), f"{schema.REQUEST_DDL}, {CORRUPT} STRING", {
        "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}))
    # The all-text parse says what was sent (presence, the offending text, whether it was JSON
    # at all); a request whose every field parsed with its type needs none of it, and skipping
    # it halves the JSON parsing of the valid path (the predict query's largest cost).
    every_field_typed = F.col(f"{PARSED}.{CORRUPT}").isNull()
    for name in schema.REQUEST_FIELDS:
        every_field_typed = every_field_typed & F.col(f"{PARSED}.{name}").isNotNull()
    out = out.withColumn(RAW_FIELDS, F.when(~every_field_typed, F.from_json(F.col("_text"), RAW_DDL, {
        "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})))
    fields, forms = {}, {}
    for name in schema.REQUEST_FIELDS:
        value = F.col(f"{PARSED}.{name}")
        if schema.FIELDS[name].kind in ("code", "date"):
            value = trim_ascii(value)
        if schema.FIELDS[name].kind == "code":
            forms[FORM_PREFIX + name] = value
            value = F.upper(value)
        fields[name] = value
    out = out.withColumns(forms).withColumns(fields)

    message_level = (
        F.when(F.col(RAW).isNull(), F.lit("empty message"))
        .when(F.length(F.col(RAW)) > MAX_MESSAGE_BYTES,
              F.concat(F.lit(f"message larger than {MAX_MESSAGE_BYTES} bytes: "),
                       F.length(F.col(RAW)).cast("string")))
        .when(F.col("_text").isNull(), F.lit("message is not UTF-8 text"))
        .when(~F.trim(F.col("_text")).startswith("{") | _raw(CORRUPT).isNotNull(),
              F.lit("message is not a JSON object"))
    )
    messages = {name: _first_failure(_checks_for(name, schema.FIELDS[name], F.col(name)))
                for name in schema.REQUEST_FIELDS}
    # Reference checks only where the form of the field is right, and the route only when both
    # airports are fine: the same order as validate_request.
    messages["Carrier"] = F.coalesce(messages["Carrier"], _unknown(F.col("Carrier"), reference.carriers, "airline"))
    messages["Origin"] = F.coalesce(messages["Origin"], _unknown(F.col("Origin"), reference.airports, "airport"))
    dest = F.coalesce(messages["Dest"], _unknown(F.col("Dest"), reference.airports, "airport"))
    route = F.concat_ws(schema.ROUTE_SEPARATOR, F.col("Origin"), F.col("Dest"))
    route_failure = (F.when(F.col("Origin") == F.col("Dest"), F.lit("must differ from Origin"))
                     .when(~route.isin(sorted(reference.routes)),
                           F.concat(F.lit("unknown route "), route,
                                    F.lit(": no known flights, so its distance is unknown"))))
    assert schema.ROUTE_ERROR_FIELD == "Dest"
    messages["Dest"] = F.coalesce(dest, F.when(messages["Origin"].isNull(), route_failure))

    entries = F.array(*[F.struct(F.lit(name).alias("field"), msg.alias("message"))
                        for name, msg in messages.items()])
    field_errors = F.map_from_entries(F.filter(entries, lambda e: e["message"].isNotNull()))
    valid = message_level.isNull()
    for message in messages.values():
        valid = valid & message.isNull()
    errors = (F.when(valid, F.create_map().cast("map<string,string>"))
              .when(message_level.isNotNull(), F.create_map(F.lit("request"), message_level))
              .otherwise(field_errors))
    return out.withColumn(VALID, valid).withColumn(ERRORS, errors).drop(PARSED, RAW_FIELDS, *forms)


def trim_ascii(value: Column) -> Column:
    """Strip the ASCII whitespace that ``schema.validate_request`` strips (Spark's trim() only
    strips spaces)."""
    return F.regexp_replace(value, _ASCII_TRIM, "")


def _unknown(value: Column, allowed, what: str) -> Column:
    return F.when(~value.isin(sorted(allowed)), F.concat(F.lit(f"unknown {what} "), value))


def is_valid() -> Column:
    return F.col(VALID)


def error_summary() -> Column:
    return F.array_join(F.transform(F.map_entries(F.col(ERRORS)),
                                    lambda e: F.concat(e["key"], F.lit(": "), e["value"])), "; ")
