"""Socket.IO events: a browser submits its form over the socket and waits in its own room.

A room is named by a request UUID and lives until the answer is out: the delivery closes it
(``webapp.predictions.answer_room``), a ``watch`` of an answered request leaves it at once, a
request Kafka did not take leaves it, and a client that goes away leaves all its rooms
(python-socketio's disconnect does that).

Every handler answers: an ack with the UUID, or ``{"error", "fields"}`` (bad input, the shared
rate limit, an expired page, any failure), never silence.
"""
from __future__ import annotations

import logging

from flask import current_app, request
from flask_socketio import join_room, leave_room
from flask_wtf.csrf import ValidationError as CsrfError
from flask_wtf.csrf import validate_csrf

from webapp.client_errors import ClientErrors
from webapp.frames import MALFORMED
from webapp.limits import client_address
from webapp.predictions import Unavailable, ValidationError, check_submission, lookup, normalise_uuid, submit

log = logging.getLogger(__name__)
errors = ClientErrors()


def register(socketio) -> None:
    socketio.on_event("predict", answering(on_predict))
    socketio.on_event("watch", answering(on_watch))
    socketio.on_event(MALFORMED, on_malformed)
    socketio.on_event("*", on_unknown_event)


def answering(handler):
    """Any failure inside a handler becomes an error ack (logged), not a missing answer."""
    def wrapped(data=None, *extra):
        try:
            return handler(data)
        except Exception:  # the browser must hear back whatever went wrong
            if errors.note(client_address(), f"socket event {handler.__name__} failed", "see the traceback"):
                log.exception("socket event %s failed", handler.__name__)
            return {"error": "the server could not handle this request; please retry", "fields": {}}
    wrapped.__name__ = handler.__name__
    return wrapped


def on_malformed(reason=None, *_):
    """A frame webapp/frames.py could not use as sent: answer why (when it had an ack id)."""
    reason = str(reason)[:200] if reason else "malformed message"
    errors.note(client_address(), "malformed Socket.IO message", reason)
    return {"error": reason, "fields": {}}


def on_unknown_event(event, *_):
    errors.note(client_address(), "unknown Socket.IO event", str(event)[:40])
    return {"error": f'unknown event "{str(event)[:40]}": send "predict" or "watch"', "fields": {}}


def on_predict(form):
    """Ack with {"uuid"} once produced, or {"error", "fields"}; the result follows as a
    "prediction" event (or "rejected") to the room of the UUID, which this client joined before
    producing."""
    if not isinstance(form, dict):
        return {"error": "send the form fields as an object", "fields": {}}
    form = dict(form)
    token = form.pop("csrf_token", None)
    if current_app.config.get("WTF_CSRF_ENABLED", True) and not csrf_valid(token if isinstance(token, str) else None):
        return {"error": "the page has expired; reload it and submit again", "fields": {}}
    wait = check_submission()
    if wait is not None:
        return {"error": f"too many requests; please wait {wait} s and submit again", "fields": {},
                "retry_after": wait}
    try:
        uuid = submit(form, before_publish=join_room)
    except ValidationError as exc:
        return {"error": "please correct the highlighted fields", "fields": exc.fields}
    except Unavailable as exc:
        leave_room(exc.uuid)  # joined before producing; no answer will come
        return {"error": str(exc), "fields": {}}
    return {"uuid": uuid, "timeout_s": current_app.config["RESULT_TIMEOUT_S"]}


VALID_TOKEN = "fd.valid_csrf_token"


def csrf_valid(token: str | None) -> bool:
    """The page's CSRF token checked against the session of this connection, once: the token
    that passed is kept on the connection's environ and a submit sending it again skips the
    signature check (tokens do not expire: WTF_CSRF_TIME_LIMIT is None). Checked on every submit,
    it was ~5 % of the web app's loop with 50 browsers submitting back to back."""
    if token is not None and request.environ.get(VALID_TOKEN) == token:
        return True
    try:
        validate_csrf(token)
    except CsrfError:
        return False
    request.environ[VALID_TOKEN] = token
    return True


def on_watch(data):
    """Join the room of a UUID submitted earlier (e.g. over the REST API) and get its result
    at once if it is already known (then the room is left again: nothing more will come)."""
    uuid = normalise_uuid(data.get("uuid")) if isinstance(data, dict) else None
    if uuid is None:
        return {"error": "send {uuid: <request UUID>}"}
    join_room(uuid)  # before the lookup: an answer arriving in between still reaches the client
    state, outcome = lookup(uuid)
    if state in ("done", "rejected"):
        leave_room(uuid)
    if state == "rejected":
        return {"status": state, "rejection": outcome}
    return {"status": state, "prediction": outcome}
