"""Outcomes in the web app: ``POST /api/v1/outcomes`` (what flights really did, one or a batch,
validated at the door with the one contract, ``schema.validate_outcome``, then produced to the
outcome topic keyed by the flight) and what the pages show of the live metrics (the model,
history and status pages include the partial templates of ``templates/outcomes/``, which call
the template functions registered here).

The live metrics are in Cassandra (``flightdelay.stores.outcomes``); each web process reads them
through one lazily made session, and a Cassandra that does not answer makes a section say so
for ``RETRY_S`` seconds instead of slowing every page.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid as uuidlib

from flask import Blueprint, Flask, g, jsonify, request

from flightdelay import registry, schema
from flightdelay.config import Settings
from flightdelay.model_dir import SHIPPED, SHIPPED_VERSION
from flightdelay.schema import ValidationError, validate_outcome
from webapp import parts
from webapp.predictions import submission_limit

log = logging.getLogger(__name__)

bp = Blueprint("outcomes", __name__)

MAX_BATCH = 100           # outcomes per POST
RETRY_S = 30.0            # after Cassandra failed, sections say so this long before asking again
WALL_HOURS = 24           # the model page's wall-time chart: this many hours back
DRIFT_HOURS = 24          # the model page's drift chart: this many hours back
EVENTS_SHOWN = 50         # the model page's promotion events: the newest this many


def install(app: Flask, csrf) -> None:
    """Register the route and the template functions; the API is stateless, so no CSRF token."""
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
        s = parts.settings()
        publish(parts.bridge(), s.outcome_topic, clean, s.webapp_publish_timeout_s)
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


def publish(bridge, topic: str, outcomes: list[dict], timeout_s: float) -> None:
    """Produce each outcome keyed by its flight (a flight's reports stay in order) and wait for
    the broker's acknowledgement of all of them, through the bridge's producer (its delivery
    reports are served by the bridge and handed to the server's loop), ``timeout_s`` at most."""
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
    if not done.wait(timeout_s + 1) or errors:
        raise RuntimeError(f"Kafka did not acknowledge every outcome: {errors[0] if errors else 'timed out'}")


# -- what the pages show -----------------------------------------------------------------------
class Reader:
    """One Cassandra session per web process for the pages, made on first use."""

    def __init__(self, s: Settings):
        self.s = s
        self._lock = threading.Lock()
        self._session = None
        self._failed_at = 0.0
        self._error = ""

    def session(self):
        with self._lock:
            if self._session is None:
                if time.monotonic() - self._failed_at < RETRY_S:
                    raise RuntimeError(self._error)
                from flightdelay.stores import cassandra

                try:
                    self._session = cassandra.session(self.s, keyspace=self.s.cassandra_keyspace, timeout=5.0,
                                                      metadata=False)[1]
                except Exception as exc:  # Cassandra down: say so for a while
                    self._failed_at = time.monotonic()
                    self._error = f"Cassandra is not answering ({type(exc).__name__})"
                    raise RuntimeError(self._error) from exc
            return self._session


def cassandra_error(exc: Exception) -> str:
    """What a page says when a Cassandra read failed: the store by name, whatever the driver
    raised (a session that cannot open, or NoHostAvailable / a timeout on an open one)."""
    text = str(exc)
    if text.startswith("Cassandra is not answering"):
        return text
    return f"Cassandra is not answering ({type(exc).__name__}); is the stack up? (make status)"


_READERS: dict[Settings, Reader] = {}
_HOLDOUT: dict[tuple[str, str], float | None] = {}


def reader() -> Reader:
    s = parts.settings()
    if s not in _READERS:
        _READERS[s] = Reader(s)
    return _READERS[s]


def holdout_accuracy(s: Settings, version: str) -> float | None:
    """The holdout accuracy training logged for ``version`` (the shipped model's metrics.json for
    ``default``); looked up once per version."""
    key = (s.model_name, version)
    if key not in _HOLDOUT:
        try:
            if version == SHIPPED_VERSION:
                _HOLDOUT[key] = SHIPPED.load_metrics().get("holdout_accuracy")
            else:
                client = registry.client(s)
                run = client.get_run(client.get_model_version(s.model_name, version).run_id)
                _HOLDOUT[key] = run.data.metrics.get("holdout_accuracy")
        except Exception as exc:  # MLflow not answering: leave it blank, ask again next time
            log.warning("holdout accuracy of version %s not found: %s", version, exc)
            return None
    return _HOLDOUT[key]


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def metrics_view(m) -> dict:
    return {"matched": m.matched, "correct": m.correct, "accuracy": rounded(m.accuracy),
            "expected_accuracy": rounded(m.expected_accuracy), "macro_f1": rounded(m.macro_f1),
            "cancelled": m.cancelled, "diverted": m.diverted, "predicted": m.predicted, "awaiting": m.awaiting,
            "no_flight_number": m.no_flight_number, "confusion": m.matrix()}


@bp.app_template_global()
def live_model_section(served_version: str | None = None) -> dict:
    """The model page's live section: per version that served, its live metrics beside its
    holdout accuracy; live accuracy per flight date and per wall-time window, for the charts."""
    from flightdelay.stores import outcomes as store

    s = parts.settings()
    try:
        sess = reader().session()
        totals = store.version_totals(sess, s.model_name)
        now = int(time.time() * 1000)
        by_date = store.flight_date_windows(sess, s.model_name, totals)
        by_wall = store.wall_windows(sess, s.model_name, now - WALL_HOURS * 3_600_000, now)
    except Exception as exc:  # Cassandra down: the section says so
        log.warning("live metrics not readable: %s", exc)
        return {"error": cassandra_error(exc)}
    versions = []
    for version, m in sorted(totals.items(), key=lambda kv: (kv[0] != served_version, kv[0])):
        versions.append({"version": version, "served": version == served_version,
                         "holdout_accuracy": rounded(holdout_accuracy(s, version)), **metrics_view(m)})
    shown = next((v for v in versions if v["matched"]), None)
    series = {"flight_date": [{"t": start, "version": v, "accuracy": rounded(m.accuracy), "matched": m.matched,
                               "expected": rounded(m.expected_accuracy)} for start, v, m in by_date if m.matched],
              "wall": [{"t": start, "version": v, "accuracy": rounded(m.accuracy), "matched": m.matched,
                        "expected": rounded(m.expected_accuracy)} for start, v, m in by_wall if m.matched],
              "holdout": {v["version"]: v["holdout_accuracy"] for v in versions}}
    return {"versions": versions, "confusion_of": shown, "series": series, "labels": schema.LABELS,
            "window_s": s.outcome_window_s, "horizon_days": s.outcome_horizon_s / 86400}


@bp.app_template_global()
def drift_section() -> dict:
    """The model page's drift chart: the drift monitor's windows of the last DRIFT_HOURS hours
    (``flightdelay.stores.monitor``), each version's largest PSI per window against the thresholds."""
    from flightdelay.stores import monitor as store

    s = parts.settings()
    now = int(time.time() * 1000)
    try:
        windows = store.windows_since(reader().session(), s.model_name, now - DRIFT_HOURS * 3_600_000, now)
    except Exception as exc:  # Cassandra down: the section says so
        log.warning("drift windows not readable: %s", exc)
        return {"error": cassandra_error(exc)}
    points = [{"t": w["window_start"], "version": w["model_version"], "max_psi": w["max_psi"], "drift": w["drift"],
               "worst": w["worst_feature"], "alert": w["alert"], "predictions": w["predictions"]} for w in windows]
    return {"points": points, "last": windows[-1] if windows else None, "alerts": sum(1 for w in windows if w["alert"]),
            "moderate": s.monitor_psi_moderate, "significant": s.monitor_psi_significant, "hours": DRIFT_HOURS,
            "window_n": s.monitor_window_n, "window_s": s.monitor_window_s}


@bp.app_template_global()
def promotion_section(served_version: str | None = None) -> dict:
    """The model page's promotion section: the contests running (the champion against a challenger
    or, on probation, against its predecessor: both accuracies on the same flights, McNemar's
    p-values so far) and the events (promotions, refusals, rollbacks, probation passes), as the
    decider (monitor/decider.py) stores them (``flightdelay.stores.promotion``)."""
    from flightdelay.stores import promotion as store

    s = parts.settings()
    try:
        sess = reader().session()
        contests = store.contests(sess, s.model_name)
        events = store.events(sess, s.model_name, limit=EVENTS_SHOWN)
    except Exception as exc:  # Cassandra down: the section says so
        log.warning("promotion records not readable: %s", exc)
        return {"error": cassandra_error(exc)}
    for record in (*contests, *events):
        ms = record.get("decided_at", record.get("updated_at"))
        record["when"] = None if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
    running, seen = [], set()
    for c in contests:   # newest first: the latest contest of each role beside the served version
        if c["state"] == "wait" and c["champion_version"] == served_version and c["role"] not in seen:
            seen.add(c["role"])
            running.append(c)
    return {"running": running, "events": events, "alpha": s.promote_alpha, "min_outcomes": s.promote_min_outcomes,
            "max_outcomes": s.promote_max_outcomes, "probation_outcomes": s.probation_outcomes}


@bp.app_template_global()
def outcome_of(uuid: str, uuids: list[str]) -> dict | None:
    """The history page's outcome of one prediction (looked up once per page for all of its
    ``uuids``): None while awaiting, {"error"} when Cassandra does not answer."""
    if "outcomes_of_page" not in g:
        from flightdelay.stores import outcomes as store

        try:
            g.outcomes_of_page = store.scored_by_uuid(reader().session(), uuids)
        except Exception as exc:  # the column says it could not be read
            log.warning("outcomes of the history page not readable: %s", exc)
            g.outcomes_of_page = {"error": cassandra_error(exc)}
    found = g.outcomes_of_page
    return {"error": found["error"]} if "error" in found else found.get(uuid)


@bp.app_template_global()
def outcome_stream_section() -> dict:
    """The status page's outcome stream: the last hour's windows and the all-time counts."""
    from flightdelay.stores import outcomes as store

    s = parts.settings()
    try:
        sess = reader().session()
        now = int(time.time() * 1000)
        windows = store.stream_windows(sess, s.outcome_topic, now - 3_600_000, now)
        total = store.stream_total(sess, s.outcome_topic)
    except Exception as exc:  # Cassandra down: the section says so
        log.warning("outcome stream counts not readable: %s", exc)
        return {"error": cassandra_error(exc)}
    last_hour = None
    if windows:
        last_hour = windows[0][1]
        for _, counts in windows[1:]:
            last_hour.add(counts)
    newest = windows[-1] if windows else None
    return {"topic": s.outcome_topic, "total": total, "last_hour": last_hour, "newest": newest,
            "window_s": s.outcome_window_s, "now": int(time.time() * 1000)}


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
