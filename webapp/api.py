"""JSON REST API: submit a flight (optionally waiting for its prediction), look a request up.

The API is stateless: it reads no cookie and grants nothing tied to a session, so it needs no
CSRF token (see webapp/classic.py, which also serves the original platform's routes).
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

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

bp = Blueprint("api", __name__)


@bp.post("/api/v1/predictions")
@submission_limit
def create_prediction():
    """202 {"uuid"} once the request is in Kafka; with ``?wait=<s>`` (at most
    FD_WEBAPP_SYNC_WAIT_MAX_S) 200 with the prediction if it arrives in time."""
    payload = request_payload()
    if payload is None:
        return jsonify(error="send a JSON object (Content-Type: application/json) or a form", fields={}), 400
    try:
        uuid = submit(payload)
    except ValidationError as exc:
        return jsonify(error="invalid flight request", fields=exc.fields), 400
    except Unavailable as exc:
        return jsonify(error=str(exc)), 503
    pending = {"uuid": uuid, "status": "pending", "result_url": f"/api/v1/predictions/{uuid}"}
    wait = requested_wait(request.args.get("wait"))
    if wait == 0:
        # Without ?wait the answer is always 202: a warm pipeline can answer within the few
        # milliseconds between produce and this line, and a 200 then would depend on a race.
        return jsonify(pending), 202
    state, outcome = wait_for_outcome(uuid, wait)
    return answer_for(uuid, state, outcome, pending=pending)


def answer_for(uuid: str, state: str, outcome: dict | None, pending: dict):
    if state == "done":
        return jsonify(status="done", uuid=uuid, prediction=outcome), 200
    if state == "rejected":
        return jsonify(status="rejected", uuid=uuid, error=outcome.get("reason"), fields=outcome.get("fields") or {}), 422
    if state == "pending":
        return jsonify(pending), 202
    return jsonify(error="no request with this UUID", uuid=uuid), 404


@bp.get("/api/v1/predictions/<uuid>")
def get_prediction(uuid: str):
    canonical = normalise_uuid(uuid)
    if canonical is None:
        return jsonify(error="not a request UUID", uuid=uuid[:64]), 404
    state, outcome = lookup(canonical)
    return answer_for(canonical, state, outcome, pending={"status": "pending", "uuid": canonical})


@bp.get("/api/v1/openapi.json")
def openapi():
    from webapp.openapi import openapi_spec

    c = current_app.config
    return jsonify(openapi_spec(c["SYNC_WAIT_MAX_S"], c["RATELIMIT_DEFAULT"], c["MAX_CONTENT_LENGTH"],
                                parts.reference()))
