"""JSON REST API, plus the classic routes of the system this platform descends from."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify, request
from flask_wtf.csrf import CSRFError

from flightdelay.schema import UUID_PATTERN
from webapp.limits import limiter
from webapp.predictions import Unavailable, ValidationError, lookup, submit

bp = Blueprint("api", __name__)

UUID_RE = re.compile(UUID_PATTERN)


def _api_rate() -> str:
    return current_app.config["RATELIMIT_DEFAULT"]


def _payload():
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else None
    return request.form.to_dict() if request.form else None


def _accept():
    # JSON bodies cannot be sent cross-site by a plain HTML form, so the API takes them without
    # a token; a form-encoded post (the classic browser route) must carry the CSRF token.
    if not request.is_json and current_app.config.get("WTF_CSRF_ENABLED", True):
        try:
            current_app.extensions["csrf"].protect()
        except CSRFError as exc:
            return jsonify(error=f"CSRF check failed: {exc.description}", fields={}), 400
    payload = _payload()
    if payload is None:
        return jsonify(error="send a JSON object (Content-Type: application/json) or a form",
                       fields={}), 400
    try:
        uuid = submit(payload)
    except ValidationError as exc:
        return jsonify(error="invalid flight request", fields=exc.fields), 400
    except Unavailable as exc:
        return jsonify(error=str(exc)), 503
    return jsonify(uuid=uuid, status="pending", result_url=f"/api/v1/predictions/{uuid}"), 202


def _answer(uuid: str):
    if not UUID_RE.match(uuid):
        return jsonify(error="not a request UUID", uuid=uuid), 404
    state, prediction = lookup(uuid)
    if state == "done":
        return jsonify(status="done", uuid=uuid, prediction=prediction), 200
    if state == "pending":
        return jsonify(status="pending", uuid=uuid), 202
    return jsonify(error="no request with this UUID", uuid=uuid), 404


@bp.post("/api/v1/predictions")
@limiter.limit(_api_rate)
def create_prediction():
    return _accept()


@bp.get("/api/v1/predictions/<uuid>")
def get_prediction(uuid: str):
    return _answer(uuid)


@bp.post("/flights/delays/predict/classify_realtime")
@limiter.limit(_api_rate)
def classify_realtime():
    response, code = _accept()
    if code == 202:  # the classic contract: {"status": "OK", "id": uuid}
        return jsonify(status="OK", id=response.get_json()["uuid"]), 202
    return response, code


@bp.get("/flights/delays/predict/classify_realtime/response/<uuid>")
def classify_realtime_response(uuid: str):
    response, code = _answer(uuid)
    body = response.get_json()
    if code == 200:
        return jsonify(status="OK", id=uuid, prediction=body["prediction"]), 200
    if code == 202:
        return jsonify(status="WAIT", id=uuid), 202
    return response, code


@bp.errorhandler(429)
def too_many(exc):
    return jsonify(error=f"rate limit exceeded ({exc.description}); slow down"), 429
