"""Outcomes in the web app: ``POST /api/v1/outcomes`` (what flights really did, one or a batch,
validated at the door with the one contract, ``schema.validate_outcome``, then produced to the
outcome topic keyed by the flight)."""
from __future__ import annotations

import logging
import threading
import time
import uuid as uuidlib

from flask import Blueprint, Flask, jsonify, request

from flightdelay import schema
from flightdelay.schema import ValidationError, validate_outcome
from webapp import parts
from webapp.predictions import submission_limit

log = logging.getLogger(__name__)

bp = Blueprint("outcomes", __name__)

MAX_BATCH = 100           # outcomes per POST
DELIVERY_TIMEOUT_S = 10   # the broker's acknowledgement of a batch


def install(app: Flask, csrf) -> None:
    """Register the route; the API is stateless, so no CSRF token."""
    app.register_blueprint(bp)
    csrf.exempt(bp)


# -- the REST door -----------------------------------------------------------------------------
@bp.post("/api/v1/outcomes")
@submission_limit
def post_outcomes():
    """202 {"accepted": [{"outcome_id", "flight_key"}], "count"} once every outcome is in Kafka;
    400 {"error", "items": [{"index", "fields"}]} (and "fields" for a single object) when any is
    invalid: nothing of a batch is produced then, so it can be fixed and sent again whole."""
    payload = json_body()
    if payload is None:
        return jsonify(error="send one outcome as a JSON object, or a JSON array of them "
                             "(Content-Type: application/json)", items=[]), 400
    items = payload if isinstance(payload, list) else [payload]
    if not 1 <= len(items) <= MAX_BATCH:
        return jsonify(error=f"send between 1 and {MAX_BATCH} outcomes at once, got {len(items)}", items=[]), 400
    clean, bad = [], []
    reference = parts.reference()
    for index, item in enumerate(items):
        try:
            clean.append(validate_outcome(item, reference))
        except ValidationError as exc:
            bad.append({"index": index, "fields": exc.fields})
    if bad:
        body = {"error": f"{len(bad)} of {len(items)} outcomes invalid; none accepted", "items": bad}
        if not isinstance(payload, list):
            body["fields"] = bad[0]["fields"]
        return jsonify(body), 400
    reported_at = int(time.time() * 1000)
    for outcome in clean:
        outcome["outcome_id"] = outcome["outcome_id"] or str(uuidlib.uuid4())
        outcome["reported_at"] = reported_at
    try:
        publish(parts.bridge(), parts.settings().outcome_topic, clean)
    except Exception as exc:  # any producer failure: nothing is promised
        log.error("%d outcomes could not be produced: %s", len(clean), exc)
        return jsonify(error="the outcome stream is unavailable, please retry in a moment"), 503
    accepted = [{"outcome_id": o["outcome_id"], "flight_key": schema.flight_key(o)} for o in clean]
    log.info("%d outcomes accepted (first %s)", len(accepted), accepted[0]["flight_key"])
    return jsonify(accepted=accepted, count=len(accepted)), 202


def json_body():
    """The request's JSON (an object or an array), or None: outcomes come from programs, not forms."""
    if not request.is_json:
        return None
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # nested too deeply to parse
        return None
    return payload if isinstance(payload, (dict, list)) else None


def publish(bridge, topic: str, outcomes: list[dict]) -> None:
    """Produce each outcome keyed by its flight (a flight's reports stay in order) and wait for
    the broker's acknowledgement of all of them, through the bridge's producer (its delivery
    reports are served by the bridge and handed to the server's loop)."""
    import json

    waiting = {"left": len(outcomes)}
    done = threading.Event()
    errors: list = []

    def count(err) -> None:
        if err is not None:
            errors.append(err)
        waiting["left"] -= 1
        if waiting["left"] == 0:
            done.set()

    def on_delivery(err, _msg):  # in the bridge's delivery-report thread
        bridge.threads.to_server(count, err)

    producer = bridge.producer
    for outcome in outcomes:
        producer.produce(topic, key=schema.flight_key(outcome).encode(), value=json.dumps(outcome).encode(),
                         on_delivery=on_delivery)
    if not done.wait(DELIVERY_TIMEOUT_S + 1) or errors:
        raise RuntimeError(f"Kafka did not acknowledge every outcome: {errors[0] if errors else 'timed out'}")


# -- the OpenAPI description (webapp/openapi.py adds it to the document) -------------------------
_OUTCOME_TYPES = {"code": {"type": "string", "minLength": 2, "maxLength": 3}, "date": {"type": "string", "format": "date"},
                  "hhmm": {"type": ["integer", "string"]}, "float": {"type": ["number", "string", "null"]},
                  "int": {"type": ["integer", "string"]}, "bool": {"type": ["boolean", "null"]},
                  "uuid": {"type": "string", "format": "uuid"}}


def openapi_paths(reference, common: dict) -> dict:
    """``/api/v1/outcomes`` as OpenAPI 3.1, from the one outcome contract (``schema.OUTCOME_SPECS``)."""
    names = (*schema.OUTCOME_USER_FIELDS, "outcome_id")
    properties = {}
    for name in names:
        spec = schema.OUTCOME_SPECS[name]
        prop = dict(_OUTCOME_TYPES[spec.kind], description=spec.description)
        if spec.minimum is not None:
            prop["description"] += f" ({spec.minimum:g} to {spec.maximum:g})"
        properties[name] = prop
    properties["Carrier"]["enum"] = sorted(reference.carriers)
    properties["Origin"]["enum"] = reference.origins()
    properties["Dest"]["enum"] = reference.destinations()
    outcome = {"type": "object", "properties": properties,
               "required": [n for n in schema.OUTCOME_USER_FIELDS if schema.OUTCOME_SPECS[n].required],
               "description": "What a flight really did. Cancelled: no delays; diverted: no ArrDelay; "
                              "otherwise DepDelay and ArrDelay are required."}
    accepted = {"type": "object", "required": ["accepted", "count"],
                "properties": {"count": {"type": "integer"}, "accepted": {"type": "array", "items": {
                    "type": "object", "properties": {"outcome_id": {"type": "string"}, "flight_key": {"type": "string"}}}}}}
    invalid = {"type": "object", "required": ["error"],
               "properties": {"error": {"type": "string"},
                              "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                              "items": {"type": "array", "items": {"type": "object", "properties": {
                                  "index": {"type": "integer"},
                                  "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}

    def answer(body: dict, text: str) -> dict:
        return {"description": text, "content": {"application/json": {"schema": body}}}

    return {"/api/v1/outcomes": {"post": {
        "summary": "Report what flights really did (one outcome or a batch)",
        "description": f"Validated with the same contract as the streaming job applies; at most {MAX_BATCH} per "
                       "request. Each accepted outcome is produced to the outcome topic, where the job scores the "
                       "predictions of its flight.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [outcome, {"type": "array", "items": outcome, "minItems": 1, "maxItems": MAX_BATCH}]}}}},
        "responses": {"202": answer(accepted, "accepted: every outcome is in Kafka"),
                      "400": answer(invalid, "invalid: messages per field of each bad item; none accepted"),
                      "503": answer(invalid, "Kafka did not take the outcomes; retry"), **common}}}}
