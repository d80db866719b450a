"""The OpenAPI 3.1 description of the REST API, built from the one request schema
(``flightdelay.schema.FIELDS``) so it cannot drift from what the API validates. Served at
``/api/v1/openapi.json``; schemathesis fuzzes the live app against it in ``make test``."""
from __future__ import annotations

from flightdelay.schema import FIELDS, LABELS, USER_FIELDS

_TYPES = {  # a web form sends every value as text; JSON clients send numbers
    "code": {"type": "string", "minLength": 2, "maxLength": 3},
    "date": {"type": "string", "format": "date"},
    "hhmm": {"type": ["integer", "string"]},
    "float": {"type": ["number", "string"]},
    "int": {"type": ["integer", "string", "null"]},
}


def _field(name: str) -> dict:
    spec = FIELDS[name]
    schema = dict(_TYPES[spec.kind], description=spec.description)
    if spec.minimum is not None and "number" in str(schema["type"]) or spec.kind == "hhmm":
        schema["description"] += f" ({spec.minimum:g} to {spec.maximum:g})"
    return schema


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string"}, "fields": {"type": "object",
                                                                 "additionalProperties": {"type": "string"}}}}
PREDICTION = {"type": "object", "required": ["UUID", "prediction", "label", "probabilities", "model_version"],
              "properties": {"UUID": {"type": "string", "format": "uuid"},
                             "prediction": {"type": "integer", "enum": sorted(LABELS)},
                             "label": {"type": "string"},
                             "probabilities": {"type": "array", "items": {"type": "number"}},
                             "model_name": {"type": "string"}, "model_version": {"type": "string"}}}
DONE = {"type": "object", "required": ["status", "uuid", "prediction"],
        "properties": {"status": {"const": "done"}, "uuid": {"type": "string"}, "prediction": PREDICTION}}
PENDING = {"type": "object", "required": ["status", "uuid"],
           "properties": {"status": {"const": "pending"}, "uuid": {"type": "string"},
                          "result_url": {"type": "string"}}}
REJECTED = {"type": "object", "required": ["status", "uuid", "error"],
            "properties": {"status": {"const": "rejected"}, "uuid": {"type": "string"}, "error": {"type": "string"},
                           "fields": {"type": "object"}}}


def openapi_spec(max_wait_s: float, rate_limit: str, max_request_bytes: int, reference) -> dict:
    """A schema-valid flight is necessary, not sufficient: a route is only accepted if the served
    model knows it (reference data), which a JSON schema of independent fields cannot say."""
    properties = {n: _field(n) for n in USER_FIELDS}
    properties["Carrier"]["enum"] = sorted(reference.carriers)
    properties["Origin"]["enum"] = reference.origins()
    properties["Dest"]["enum"] = reference.destinations()
    flight = {"type": "object", "required": [n for n in USER_FIELDS if FIELDS[n].required],
              "properties": properties}
    common = {"429": _json(ERROR, f"over the rate limit ({rate_limit} per client, every route together); "
                                  "see Retry-After"),
              "413": _json(ERROR, f"request body over {max_request_bytes} bytes")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Flight delay prediction API", "version": "1",
                 "description": "Submit a flight; the prediction comes from the streaming job through Kafka."},
        "paths": {
            "/api/v1/predictions": {"post": {
                "summary": "Submit a flight for a prediction",
                "parameters": [{"name": "wait", "in": "query", "required": False,
                                "description": f"seconds to wait for the prediction (at most {max_wait_s:g})",
                                "schema": {"type": "number", "minimum": 0, "maximum": max_wait_s}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": flight}}},
                "responses": {"200": _json(DONE, "the prediction arrived within ?wait="),
                              "202": _json(PENDING, "accepted: in Kafka, the prediction follows"),
                              "400": _json(ERROR, "invalid flight: a message per bad field"),
                              "422": _json(REJECTED, "the streaming job refused it"),
                              "503": _json(ERROR, "Kafka did not take the request; retry"), **common}}},
            "/api/v1/predictions/{uuid}": {"get": {
                "summary": "The prediction of a request",
                "parameters": [{"name": "uuid", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(DONE, "the prediction"), "202": _json(PENDING, "not predicted yet"),
                              "404": _json(ERROR, "no such request"),
                              "422": _json(REJECTED, "the streaming job refused it")}}},
        },
    }
