"""JSON REST API: submit a flight (optionally waiting for its prediction), look a request up.

The API is stateless: it reads no cookie and grants nothing tied to a session, so it needs no
CSRF token (see webapp/classic.py, which also serves the original platform's routes).
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from webapp.limits import submission_limit
from webapp.predictions import (Unavailable, ValidationError, lookup, normalise_uuid, requested_wait, submit,
                                wait_for_result)

bp = Blueprint("api", __name__)


def _payload():
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else None
    return request.form.to_dict() if request.form else None


@bp.post("/api/v1/predictions")
@submission_limit
def create_prediction():
    """202 {"uuid"} once the request is in Kafka; with ``?wait=<s>`` (at most
    FD_WEBAPP_SYNC_WAIT_MAX_S) 200 with the prediction if it arrives in time."""
    payload = _payload()
    if payload is None:
        return jsonify(error="send a JSON object (Content-Type: application/json) or a form", fields={}), 400
    try:
        uuid = submit(payload)
    except ValidationError as exc:
        return jsonify(error="invalid flight request", fields=exc.fields), 400
    except Unavailable as exc:
        return jsonify(error=str(exc)), 503
    prediction = wait_for_result(uuid, requested_wait(request.args.get("wait")))
    if prediction is not None:
        return jsonify(status="done", uuid=uuid, prediction=prediction), 200
    return jsonify(uuid=uuid, status="pending", result_url=f"/api/v1/predictions/{uuid}"), 202


@bp.get("/api/v1/predictions/<uuid>")
def get_prediction(uuid: str):
    canonical = normalise_uuid(uuid)
    if canonical is None:
        return jsonify(error="not a request UUID", uuid=uuid[:64]), 404
    state, prediction = lookup(canonical)
    if state == "done":
        return jsonify(status="done", uuid=canonical, prediction=prediction), 200
    if state == "pending":
        return jsonify(status="pending", uuid=canonical), 202
    return jsonify(error="no request with this UUID", uuid=canonical), 404


@bp.app_errorhandler(429)
def too_many(exc):
    return jsonify(error=f"rate limit exceeded ({exc.description}); slow down"), 429
