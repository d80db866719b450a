"""The routes of the platform this one descends from (the original flight-delay practice), so
its clients work unchanged: its web page's form post + polling script and its API test script.

What the original clients send: ``DepDelay, Carrier, FlightDate, Origin, Dest`` (and
``FlightNum``), form-encoded by the page's jQuery, multipart by the curl test script, with no
scheduled times and no CSRF token. What they read: ``{"status": "OK", "id": <uuid>}`` from the
post (parsed with ``JSON.parse`` of the response text, so the answer must not be typed
``application/json``, or jQuery would hand the script an object), then ``status`` OK/WAIT and
``prediction.Prediction`` from the poll.

These routes are a stateless API: they read no cookie and grant nothing tied to a session or a
user, so a forged cross-site post can do no more than a direct one, which the shared rate limit
bounds. That is why they need no CSRF token; the web page's own form (over Socket.IO) keeps its
token, because that path uses the page's session cookie.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from flask import Blueprint, Response, current_app, jsonify, request

from flightdelay.schema import route_of
from webapp import parts
from webapp.predictions import (
    Unavailable,
    ValidationError,
    lookup,
    normalise_uuid,
    request_payload,
    requested_wait,
    submission_limit,
    submit,
    wait_for_outcome,
)

log = logging.getLogger(__name__)

bp = Blueprint("classic", __name__)

SCHEDULE_FIELDS = ("CRSDepTime", "CRSArrTime")
_SCHEDULE_WORDS = {"CRSDepTime": "scheduled departure", "CRSArrTime": "scheduled arrival"}


def fill_missing_schedule(payload: Mapping[str, Any], reference) -> tuple[dict, dict]:
    """Fill absent scheduled times from the route's most common schedule in the served model's
    reference data (derived from its training flights). Returns ``(request, filled)`` where
    ``filled`` says, per filled field, the value and where it came from. Nothing is filled for
    an unknown route or when the client sent the field (validation then speaks)."""
    request_fields = dict(payload)
    missing = [f for f in SCHEDULE_FIELDS if _blank(request_fields.get(f))]
    origin, dest = (_code(request_fields.get(f)) for f in ("Origin", "Dest"))
    if not missing or not origin or not dest:
        return request_fields, {}
    schedule = reference.typical_schedule(origin, dest)
    if not schedule:
        return request_fields, {}
    filled = {}
    for name in missing:
        request_fields[name] = schedule[name]
        filled[name] = {"value": schedule[name],
                        "source": f"most common {_SCHEDULE_WORDS[name]} of {route_of(origin, dest)} in the "
                                  f"served model's training flights ({schedule['flights']} flights)"}
    return request_fields, filled


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _code(value) -> str | None:
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


def _wants_json() -> bool:
    """JSON for a JSON request or a client that asks for it; otherwise the JSON text typed
    text/plain, as the original server answered (its page runs ``JSON.parse`` on the text)."""
    if request.is_json:
        return True
    return request.accept_mimetypes.best_match(["text/plain", "application/json"]) == "application/json"


def _answer(body: dict, code: int) -> Response:
    if _wants_json():
        return jsonify(body), code
    return Response(json.dumps(body), status=code, mimetype="text/plain")


def _with_original_keys(prediction: dict) -> dict:
    """Today's prediction fields plus the original's ``Prediction`` key."""
    return {**prediction, "Prediction": prediction.get("prediction")}


def _accept_classic():
    """Validate (after filling the schedule), produce; return (uuid, filled) or an error answer."""
    payload = request_payload()
    if payload is None:
        return None, _answer({"status": "ERROR", "error": "send the flight as a form or a JSON object",
                              "fields": {}}, 400)
    payload, filled = fill_missing_schedule(payload, parts.reference())
    try:
        uuid = submit(payload)
    except ValidationError as exc:
        return None, _answer({"status": "ERROR", "error": "invalid flight request", "fields": exc.fields,
                              "filled": filled}, 400)
    except Unavailable as exc:
        return None, _answer({"status": "ERROR", "error": str(exc)}, 503)
    if filled:
        log.info("uuid=%s classic request: filled %s from the route's schedule", uuid, ", ".join(filled))
    return (uuid, filled), None


@bp.post("/flights/delays/predict/classify_realtime")
@submission_limit
def classify_realtime():
    accepted, error = _accept_classic()
    if error is not None:
        return error
    uuid, filled = accepted
    return _answer({"status": "OK", "id": uuid, "filled": filled}, 202)


@bp.post("/flights/delays/predict/classify")
@submission_limit
def classify():
    """The original synchronous route: the prediction in the same response when it arrives
    within ``?wait=`` seconds (default and maximum FD_WEBAPP_SYNC_WAIT_MAX_S), else 202 and the
    id to poll. Still through Kafka and the streaming job: there is one scoring path."""
    accepted, error = _accept_classic()
    if error is not None:
        return error
    uuid, filled = accepted
    state, outcome = wait_for_outcome(uuid, requested_wait(request.args.get("wait"),
                                                           default=current_app.config["SYNC_WAIT_MAX_S"]))
    if state == "done":
        return _answer({"status": "OK", "id": uuid, "filled": filled, "prediction": _with_original_keys(outcome)}, 200)
    if state == "rejected":
        return _answer({"status": "ERROR", "id": uuid, "error": outcome.get("reason")}, 422)
    return _answer({"status": "WAIT", "id": uuid, "filled": filled}, 202)


@bp.get("/flights/delays/predict/classify_realtime/response/<uuid>")
def classify_realtime_response(uuid: str):
    uuid = normalise_uuid(uuid)
    if uuid is None:
        return jsonify(status="ERROR", error="not a request id"), 404
    state, prediction = lookup(uuid)
    if state == "done":
        return jsonify(status="OK", id=uuid, prediction=_with_original_keys(prediction)), 200
    if state == "rejected":
        return jsonify(status="ERROR", id=uuid, error=prediction.get("reason")), 422
    if state == "pending":
        return jsonify(status="WAIT", id=uuid), 202
    return jsonify(status="ERROR", id=uuid, error="no request with this id"), 404

