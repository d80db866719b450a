"""The OpenAPI 3.1 description of every API route: the REST API, the original platform's routes
(webapp/classic.py) and what other modules add (``/api/v1/outcomes``), built from the one request
schema (``flightdelay.schema.FIELDS``) and the served model's reference data, so it cannot drift
from what the routes validate. Bounds, formats and enums are schema keywords, not prose: a field
a form sends as text has a ``pattern`` for its text and ``minimum``/``maximum`` for its number;
codes are accepted in any case, so their enums are patterns spelling both cases.
Served at ``/api/v1/openapi.json``; schemathesis fuzzes the live app against all of it in
``make test`` (tests/integration/test_webapp_live.py)."""
from __future__ import annotations

from flightdelay.schema import (
    DEP_DELAY_MAX,
    DEP_DELAY_MIN,
    FIELDS,
    FLIGHT_NUM_MAX,
    FLIGHT_NUM_MIN,
    HHMM_MAX,
    HHMM_MIN,
    LABELS,
    USER_FIELDS,
)
from webapp.outcomes import openapi_paths as outcome_paths

HHMM_TEXT = r"^([01]?[0-9]|2[0-3])[0-5][0-9]$"  # 0529 or 529: hours 0-23, minutes 0-59
INTEGER_TEXT = r"^[+-]?[0-9]{1,4}$"
DECIMAL_TEXT = r"^[+-]?([0-9]{1,4}(\.[0-9]{0,6})?|\.[0-9]{1,6})$"
DATE_TEXT = r"^(199[0-9]|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
UUID_TEXT = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
TEXT_ANSWER = ("text/plain", "application/json")  # the classic routes answer a form post as text (see classic.py)


def any_case(codes) -> str:
    """A pattern matching exactly ``codes`` in any letter case (JSON Schema has no case-insensitive enum)."""
    def letters(code: str) -> str:
        return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in code)
    return "^(" + "|".join(letters(c) for c in sorted(codes)) + ")$"


def _field(name: str, reference) -> dict:
    spec = FIELDS[name]
    description = spec.description
    if spec.kind == "code":
        codes = {"Carrier": reference.carriers, "Origin": reference.origins(),
                 "Dest": reference.destinations()}[name]
        return {"type": "string", "pattern": any_case(codes), "description": description}
    if spec.kind == "date":
        return {"type": "string", "format": "date", "pattern": DATE_TEXT, "description": description}
    if spec.kind == "hhmm":
        return {"description": description, "anyOf": [
            {"type": "integer", "minimum": HHMM_MIN, "maximum": HHMM_MAX},
            {"type": "string", "pattern": HHMM_TEXT}]}
    if spec.kind == "float":
        return {"description": description, "anyOf": [
            {"type": "number", "minimum": DEP_DELAY_MIN, "maximum": DEP_DELAY_MAX},
            {"type": "string", "pattern": DECIMAL_TEXT}]}
    return {"description": description, "anyOf": [  # the optional flight number: empty or absent is none
        {"type": "integer", "minimum": FLIGHT_NUM_MIN, "maximum": FLIGHT_NUM_MAX},
        {"type": "string", "pattern": INTEGER_TEXT}, {"type": "string", "maxLength": 0}, {"type": "null"}]}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text_or_json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {t: {"schema": schema} for t in TEXT_ANSWER}}


def _body(schema: dict) -> dict:
    """A flight as JSON, or as a form (urlencoded, or multipart as the original curl script sends)."""
    return {"required": True, "content": {t: {"schema": schema} for t in
                                          ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")}}


ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string"}, "fields": {"type": "object",
                                                                 "additionalProperties": {"type": "string"}}}}
PREDICTION = {"type": "object", "required": ["UUID", "prediction", "label", "probabilities", "model_version"],
              "properties": {"UUID": {"type": "string", "format": "uuid"},
                             "prediction": {"type": "integer", "enum": sorted(LABELS)},
                             "label": {"type": "string"},
                             "probabilities": {"type": "array", "items": {"type": "number", "minimum": 0,
                                                                          "maximum": 1}},
                             "model_name": {"type": "string"}, "model_version": {"type": "string"}}}
DONE = {"type": "object", "required": ["status", "uuid", "prediction"],
        "properties": {"status": {"const": "done"}, "uuid": {"type": "string", "format": "uuid"},
                       "prediction": PREDICTION}}
PENDING = {"type": "object", "required": ["status", "uuid"],
           "properties": {"status": {"const": "pending"}, "uuid": {"type": "string", "format": "uuid"},
                          "result_url": {"type": "string"}}}
REJECTED = {"type": "object", "required": ["status", "uuid", "error"],
            "properties": {"status": {"const": "rejected"}, "uuid": {"type": "string"}, "error": {"type": "string"},
                           "fields": {"type": "object"}}}
FILLED = {"type": "object", "additionalProperties": {
    "type": "object", "properties": {"value": {"type": "integer"}, "source": {"type": "string"}}}}
CLASSIC_OK = {"type": "object", "required": ["status", "id"],
              "properties": {"status": {"enum": ["OK", "WAIT"]}, "id": {"type": "string", "format": "uuid"},
                             "filled": FILLED,
                             "prediction": {**PREDICTION, "properties": {**PREDICTION["properties"],
                                                                          "Prediction": {"type": "integer"}}}}}
CLASSIC_ERROR = {"type": "object", "required": ["status", "error"],
                 "properties": {"status": {"const": "ERROR"}, "id": {"type": "string"}, "error": {"type": "string"},
                                "fields": {"type": "object"}, "filled": FILLED}}


def _uuid_parameter(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64},
            "description": "the request's UUID (any case); anything else is a 404"}


def _wait_parameter(max_wait_s: float, default: float) -> dict:
    return {"name": "wait", "in": "query", "required": False,
            "description": f"seconds to wait for the prediction (default {default:g})",
            "schema": {"type": "number", "minimum": 0, "maximum": max_wait_s, "default": default}}


def openapi_spec(max_wait_s: float, rate_limit: str, max_request_bytes: int, reference) -> dict:
    """A schema-valid flight is necessary, not sufficient: a route is only accepted if the served
    model knows it (reference data), which a JSON schema of independent fields cannot say."""
    properties = {n: _field(n, reference) for n in USER_FIELDS}
    flight = {"type": "object", "required": [n for n in USER_FIELDS if FIELDS[n].required],
              "properties": properties}
    classic_flight = {**flight, "required": [n for n in flight["required"] if n not in ("CRSDepTime", "CRSArrTime")],
                      "description": "the original platform's form: scheduled times may be left out (filled from "
                                     "the route's most common schedule)"}
    common = {"429": _json(ERROR, f"over the rate limit ({rate_limit} per client, every route together); "
                                  "see Retry-After"),
              "413": _json(ERROR, f"request body over {max_request_bytes} bytes")}
    classic_common = {"429": common["429"], "413": common["413"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Flight delay prediction API", "version": "1",
                 "description": "Submit a flight; the prediction comes from the streaming job through Kafka."},
        "paths": {
            "/api/v1/predictions": {"post": {
                "summary": "Submit a flight for a prediction",
                "parameters": [_wait_parameter(max_wait_s, 0)],
                "requestBody": _body(flight),
                "responses": {"200": _json(DONE, "the prediction arrived within ?wait="),
                              "202": _json(PENDING, "accepted: in Kafka, the prediction follows"),
                              "400": _json(ERROR, "invalid flight: a message per bad field"),
                              "422": _json(REJECTED, "the streaming job refused it"),
                              "503": _json(ERROR, "Kafka did not take the request; retry"), **common}}},
            "/api/v1/predictions/{uuid}": {"get": {
                "summary": "The prediction of a request",
                "parameters": [_uuid_parameter("uuid")],
                "responses": {"200": _json(DONE, "the prediction"), "202": _json(PENDING, "not predicted yet"),
                              "404": _json(ERROR, "no such request"),
                              "422": _json(REJECTED, "the streaming job refused it")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI 3.1")}}},
            "/flights/delays/predict/classify_realtime": {"post": {
                "summary": "The original platform's asynchronous submit (poll the response route)",
                "requestBody": _body(classic_flight),
                "responses": {"202": _text_or_json(CLASSIC_OK, "accepted: poll the response route with the id"),
                              "400": _text_or_json(CLASSIC_ERROR, "invalid flight: a message per bad field"),
                              "503": _text_or_json(CLASSIC_ERROR, "Kafka did not take the request; retry"),
                              **classic_common}}},
            "/flights/delays/predict/classify": {"post": {
                "summary": "The original platform's synchronous submit: the prediction in the answer",
                "parameters": [_wait_parameter(max_wait_s, max_wait_s)],
                "requestBody": _body(classic_flight),
                "responses": {"200": _text_or_json(CLASSIC_OK, "the prediction arrived within ?wait="),
                              "202": _text_or_json(CLASSIC_OK, "not yet (status WAIT): poll the response route"),
                              "400": _text_or_json(CLASSIC_ERROR, "invalid flight: a message per bad field"),
                              "422": _text_or_json(CLASSIC_ERROR, "the streaming job refused it"),
                              "503": _text_or_json(CLASSIC_ERROR, "Kafka did not take the request; retry"),
                              **classic_common}}},
            "/flights/delays/predict/classify_realtime/response/{uuid}": {"get": {
                "summary": "The original platform's poll: status OK with the prediction, or WAIT",
                "parameters": [_uuid_parameter("uuid")],
                "responses": {"200": _json(CLASSIC_OK, "the prediction (status OK)"),
                              "202": _json(CLASSIC_OK, "not predicted yet (status WAIT)"),
                              "404": _json(CLASSIC_ERROR, "no such request"),
                              "422": _json(CLASSIC_ERROR, "the streaming job refused it")}}},
            **outcome_paths(reference, common),
        },
    }
