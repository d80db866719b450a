"""Socket.IO events: a browser submits its form over the socket and waits in its own room."""
from __future__ import annotations

import logging

from flask import current_app
from flask_socketio import join_room
from flask_wtf.csrf import ValidationError as CsrfError
from flask_wtf.csrf import validate_csrf

from webapp.predictions import Unavailable, ValidationError, lookup, submit

log = logging.getLogger(__name__)


def register(socketio) -> None:
    socketio.on_event("predict", on_predict)
    socketio.on_event("watch", on_watch)


def on_predict(form):
    """Ack with {"uuid"} once produced, or {"error", "fields"}; the result follows as a
    "prediction" event to the room of the UUID, which this client joined before producing."""
    if not isinstance(form, dict):
        return {"error": "send the form fields as an object", "fields": {}}
    form = dict(form)
    token = form.pop("csrf_token", None)
    if current_app.config.get("WTF_CSRF_ENABLED", True):
        try:
            validate_csrf(token)
        except CsrfError:
            return {"error": "the page has expired; reload it and submit again", "fields": {}}
    try:
        uuid = submit(form, before_publish=join_room)
    except ValidationError as exc:
        return {"error": "please correct the highlighted fields", "fields": exc.fields}
    except Unavailable as exc:
        return {"error": str(exc), "fields": {}}
    return {"uuid": uuid, "timeout_s": current_app.config["RESULT_TIMEOUT_S"]}


def on_watch(data):
    """Join the room of a UUID submitted earlier (e.g. over the REST API) and get its result
    at once if it is already known."""
    uuid = (data or {}).get("uuid") if isinstance(data, dict) else None
    if not uuid:
        return {"error": "uuid missing"}
    join_room(uuid)
    state, prediction = lookup(uuid)
    return {"status": state, "prediction": prediction}
