"""Both halves of a prediction in the web app: the request (validate with the shared schema,
stamp, produce to Kafka; look a result up) and the response (a prediction from Kafka pushed to
the Socket.IO room of its UUID, which is closed once the answer is out)."""
from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
import uuid as uuidlib

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import BadRequest

from flightdelay import registry, schema
from flightdelay.schema import ValidationError, validate_request
from webapp import parts
from webapp.frames import DuplicateKey, refuse_duplicate_keys
from webapp.limits import client_address
from webapp.sockets import socketio

log = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """Kafka did not take the request ``uuid``; the caller answers 503 and the user may retry."""

    def __init__(self, message: str, uuid: str):
        super().__init__(message)
        self.uuid = uuid


UUID_RE = re.compile(schema.UUID_RE)  # matched against the lower-cased text: the canonical form


def normalise_uuid(text: str) -> str | None:
    """The canonical (lower-case) form of a request UUID, or None. UUIDs are case-insensitive."""
    candidate = text.strip().lower() if isinstance(text, str) else ""
    return candidate if UUID_RE.match(candidate) else None


def request_payload() -> dict | None:
    """The submitted flight: a JSON object, or form fields (urlencoded or multipart); None for
    anything else, including JSON nested too deeply to parse. A JSON object with a key given
    twice is a 400 naming the key (the standard parser would silently keep the last value)."""
    if request.is_json:
        try:
            data = json.loads(request.get_data(cache=True), object_pairs_hook=refuse_duplicate_keys)
        except DuplicateKey as exc:
            raise BadRequest(f"{exc}: send each field once") from exc
        except (ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None
    return request.form.to_dict() if request.form else None


def check_submission() -> int | None:
    """None if the current client may submit now, else the seconds to wait (webapp.limits)."""
    return parts.limit().retry_after(client_address())


def submission_limit(view):
    """Answer 429 with Retry-After once the client is over the shared limit."""
    @functools.wraps(view)
    def limited(*args, **kwargs):
        wait = check_submission()
        if wait is not None:
            response = jsonify(error=f"rate limit exceeded ({parts.limit().rate} per client); retry in {wait} s")
            response.status_code = 429
            response.headers["Retry-After"] = str(wait)
            return response
        return view(*args, **kwargs)
    return limited


def requested_wait(raw: str | None, default: float = 0.0) -> float:
    """Seconds a synchronous caller may wait for its prediction: ``raw`` (``?wait=``, default
    ``default``) bounded to [0, FD_WEBAPP_SYNC_WAIT_MAX_S]; unparseable means no wait."""
    ceiling = current_app.config["SYNC_WAIT_MAX_S"]
    try:
        wanted = float(raw) if raw is not None else default
    except ValueError:
        wanted = 0.0
    if not math.isfinite(wanted):
        wanted = ceiling if wanted > 0 else 0.0
    return max(0.0, min(ceiling, wanted))


def wait_for_outcome(uuid: str, seconds: float) -> tuple[str, dict | None]:
    """('done', prediction) | ('rejected', reason) | ('pending', None) for a request this
    process produced, once its answer reached this process's consumer or after ``seconds``."""
    results = parts.results()
    if seconds > 0:
        results.wait_for(uuid, seconds)
    state, outcome = results.outcome(uuid)
    return ("pending", None) if state == "unknown" else (state, outcome)


def submit(payload, *, before_publish=None) -> str:
    """Validate ``payload`` and produce it; return the new request UUID.

    Raises ValidationError (nothing is produced) or Unavailable. ``before_publish(uuid)`` runs
    after validation and before the request reaches Kafka: the Socket.IO handler joins the
    client to the UUID's room there, so the answer can never arrive before the listener.
    """
    request = validate_request(payload, parts.reference())
    request["UUID"] = str(uuidlib.uuid4())
    request["requested_at"] = int(time.time() * 1000)
    if before_publish:
        before_publish(request["UUID"])
    parts.results().mark_pending(request["UUID"])
    try:
        parts.bridge().publish_request(request)
    except Exception as exc:  # any producer failure means the request was not accepted
        log.error("uuid=%s could not be produced: %s", request["UUID"], exc)
        raise Unavailable("the prediction service is unavailable, please retry in a moment",
                          request["UUID"]) from exc
    # One line for the request's way in: Kafka has acknowledged it (the bridge logs nothing more).
    log.info("uuid=%s accepted %s-%s on %s, produced to %s", request["UUID"], request["Origin"], request["Dest"],
             request["FlightDate"], parts.settings().request_topic)
    return request["UUID"]


def lookup(uuid: str) -> tuple[str, dict | None]:
    """('done', prediction) | ('rejected', {reason, fields}) | ('pending', None) | ('unknown', None)."""
    state, outcome = parts.results().outcome(uuid)
    if state in ("done", "rejected"):
        return state, outcome
    # Not answered here yet (or produced by another web process, or before a restart).
    found = parts.stores().prediction(uuid)
    return ("done", found) if found is not None else (state, None)


def start_response_consumer(app: Flask) -> None:
    """Background tasks, once per process: Kafka responses -> the Socket.IO room of each UUID;
    the served model's reference data follows the registry alias; the archive page's counts
    follow the archive."""
    app_parts = parts.of(app)
    if app_parts.background_started:
        return
    app_parts.background_started = True
    registry.import_client()  # before the worker serves, not on the watcher while it serves
    app_parts.bridge.start_consumer(lambda prediction: deliver_prediction(app, prediction),
                                    lambda rejection: deliver_rejection(app, rejection),
                                    wanted=lambda uuid: answer_is_awaited(app_parts.results, uuid))
    socketio.start_background_task(app_parts.served_reference.watcher.follow, socketio.sleep)
    socketio.start_background_task(app_parts.stores.follow_archive, socketio.sleep)


def answer_room(uuid: str, event: str, answer: dict) -> None:
    """Send the answer to the room of ``uuid`` and close it: its members leave (the event is
    already queued to each), so a delivered request holds no room."""
    socketio.emit(event, answer, to=uuid)
    socketio.close_room(uuid)


def room_is_watched(uuid: str) -> bool:
    """Whether a Socket.IO client of this process is in the room of ``uuid`` (a "watch")."""
    return bool(socketio.server.manager.rooms.get("/", {}).get(uuid))


def answer_is_awaited(results, uuid: str) -> bool:
    """Whether anyone in this process may wait for the answer to ``uuid``: it produced the
    request, or a Socket.IO client watches it. Safe off the server's loop (no lock)."""
    return results.may_know(uuid) or room_is_watched(uuid)


def deliver_prediction(app: Flask, prediction: dict) -> bool:
    """Push one prediction to the Socket.IO room of its UUID (never broadcast), then close the
    room: nothing more comes for that UUID. A repeated response (the Kafka sink is
    at-least-once) is recognised by UUID and not pushed again."""
    uuid = prediction.get("UUID")
    if not uuid:
        log.warning("response without UUID ignored")
        return False
    results = parts.of(app).results
    if not (results.knows(uuid) or room_is_watched(uuid)):
        # Another producer's request (a bench, another web process) nobody here waits for: every
        # web process reads every answer, and at 10,000/s recording, emitting to empty rooms and
        # logging them cost the web app a third of a core. A later lookup finds it in MongoDB.
        return False
    if not results.record(uuid, prediction):
        log.info("uuid=%s duplicate response ignored", uuid)
        return False
    answer_room(uuid, "prediction", prediction)
    log.info("uuid=%s prediction %s (%s v%s) pushed to its room", uuid, prediction.get("prediction"),
             prediction.get("model_name"), prediction.get("model_version"))
    return True


def deliver_rejection(app: Flask, rejection: dict) -> bool:
    """The streaming job dead-lettered a request this process accepted (the validators should
    agree, so this is a safety net): tell whoever waits for it why, instead of leaving it
    pending. Dead letters of requests this process did not produce are ignored."""
    uuid = rejection.get("uuid")
    results = parts.of(app).results
    if not uuid or not results.is_pending(uuid):
        return False
    results.reject(uuid, rejection)
    answer_room(uuid, "rejected", rejection)
    log.warning("uuid=%s rejected by the streaming job: %s", uuid, rejection.get("reason"))
    return True


__all__ = ["ValidationError", "Unavailable", "submit", "lookup", "start_response_consumer", "deliver_prediction",
           "deliver_rejection", "check_submission", "submission_limit"]
