"""Both halves of a prediction in the web app: the request (validate with the shared schema,
stamp, produce to Kafka; look a result up) and the response (a prediction from Kafka pushed to
the Socket.IO room of its UUID)."""
from __future__ import annotations

import logging
import time
import uuid as uuidlib

from flask import Flask, current_app

from flightdelay.schema import ValidationError, validate_request
from webapp import socketio

log = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """Kafka did not take the request; the caller answers 503 and the user may retry."""


def submit(payload, *, before_publish=None) -> str:
    """Validate ``payload`` and produce it; return the new request UUID.

    Raises ValidationError (nothing is produced) or Unavailable. ``before_publish(uuid)`` runs
    after validation and before the request reaches Kafka: the Socket.IO handler joins the
    client to the UUID's room there, so the answer can never arrive before the listener.
    """
    request = validate_request(payload, current_app.extensions["fd.reference"])
    request["UUID"] = str(uuidlib.uuid4())
    request["requested_at"] = int(time.time() * 1000)
    if before_publish:
        before_publish(request["UUID"])
    current_app.extensions["fd.results"].mark_pending(request["UUID"])
    try:
        current_app.extensions["fd.bridge"].publish_request(request)
    except Exception as exc:  # any producer failure means the request was not accepted
        log.error("uuid=%s could not be produced: %s", request["UUID"], exc)
        raise Unavailable("the prediction service is unavailable, please retry in a moment") from exc
    log.info("uuid=%s accepted %s-%s on %s", request["UUID"], request["Origin"], request["Dest"],
             request["FlightDate"])
    return request["UUID"]


def lookup(uuid: str) -> tuple[str, dict | None]:
    """('done', prediction) | ('pending', None) | ('unknown', None)."""
    results = current_app.extensions["fd.results"]
    found = results.result(uuid)
    if found is None:
        found = current_app.extensions["fd.stores"].prediction(uuid)
    if found is not None:
        return "done", found
    if results.is_pending(uuid):
        return "pending", None
    return "unknown", None


def start_response_consumer(app: Flask) -> None:
    """One background task per process: Kafka responses -> the Socket.IO room of each UUID."""
    if app.extensions.get("fd.consumer_started"):
        return
    app.extensions["fd.consumer_started"] = True
    socketio.start_background_task(app.extensions["fd.bridge"].consume_responses,
                                   lambda prediction: deliver_prediction(app, prediction))


def deliver_prediction(app: Flask, prediction: dict) -> bool:
    """Push one prediction to the Socket.IO room of its UUID (never broadcast). A repeated
    response (the Kafka sink is at-least-once) is recognised by UUID and not pushed again."""
    uuid = prediction.get("UUID")
    if not uuid:
        log.warning("response without UUID ignored")
        return False
    if not app.extensions["fd.results"].record(uuid, prediction):
        log.info("uuid=%s duplicate response ignored", uuid)
        return False
    socketio.emit("prediction", prediction, to=uuid)
    log.info("uuid=%s prediction %s (%s v%s) pushed to its room", uuid, prediction.get("prediction"),
             prediction.get("model_name"), prediction.get("model_version"))
    return True


__all__ = ["ValidationError", "Unavailable", "submit", "lookup", "start_response_consumer", "deliver_prediction"]
