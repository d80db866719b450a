"""Server-rendered pages: predict, history, archive, model, status."""
from __future__ import annotations

import logging
import re
import time
from datetime import date

from flask import Blueprint, Response, abort, current_app, render_template, request

from flightdelay import health
from flightdelay import status as job_status
from flightdelay.schema import LABELS
from flightdelay.stores import text_archive
from flightdelay.stores.mongo import HistoryQuery, history_filters
from webapp import parts
from webapp.stores import ArchiveNotCounted

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)


@bp.get("/")
def predict():
    reference = parts.reference()
    return render_template("predict.html", options=form_options(reference), labels=LABELS,
                           timeout_s=current_app.config["RESULT_TIMEOUT_S"],
                           publish_timeout_s=current_app.config["PUBLISH_TIMEOUT_S"])


def form_options(reference) -> dict:
    """Dropdown content: carriers and airports with names, and the routes the model knows."""
    origins = reference.origins()
    return {
        "carriers": sorted(reference.carriers.items()),
        "origins": [(code, reference.airport_name(code)) for code in origins],
        "dests": [(code, reference.airport_name(code)) for code in reference.destinations()],
        "routes": {o: reference.destinations(o) for o in origins},
    }


HISTORY_FORM = ("Route", "Carrier", "FlightDate", "model_version", "prediction", "from", "to")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CURSOR = re.compile(r"^([0-9]{1,15})_([0-9a-fA-F-]{0,36})$")


@bp.get("/history")
def history():
    form = {name: request.args.get(name, "").strip()[:40] for name in HISTORY_FORM}
    query = history_query(form, request.args.get("before"))
    error, result = None, None
    try:
        result = parts.stores().history(query)
    except Exception as exc:  # MongoDB unavailable: the page says so instead of a 500
        log.warning("history query failed: %s", exc)
        error = f"MongoDB is not answering ({type(exc).__name__}); is the stack up? (make status)"
    links = {k: v for k, v in form.items() if v}
    return render_template("history.html", result=result, filters=form, links=links, error=error,
                           labels=LABELS, newer=bool(query.before))


def day_or_none(raw: str) -> str | None:
    """A YYYY-MM-DD day from the query string, or None (absent or malformed: no bound)."""
    if not _DAY.match(raw or ""):
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        return None


def history_cursor(raw: str | None) -> tuple[int, str] | None:
    """The keyset cursor ``<requested_at ms>_<UUID>`` of an "older" link, or None."""
    match = _CURSOR.match((raw or "").strip())
    return (int(match.group(1)), match.group(2)) if match else None


def history_query(form: dict, before: str | None) -> HistoryQuery:
    return HistoryQuery(filters=history_filters(form), date_from=day_or_none(form.get("from", "")),
                        date_to=day_or_none(form.get("to", "")), before=history_cursor(before))


ARCHIVE_DAYS_PER_PAGE = 31


@bp.get("/archive")
def archive():
    error, summary, table = None, None, None
    try:
        summary = parts.stores().archive_summary()
        table = archive_table(summary["per_day"], request.args.get("days_page"))
    except ArchiveNotCounted as exc:  # counted in the background (webapp.stores): not yet, or HDFS down
        error = str(exc)[:1].upper() + str(exc)[1:]
    except Exception as exc:  # any other failure of the read side: the page says so
        log.warning("archive summary failed: %s", exc)
        error = f"The HDFS archive could not be read ({type(exc).__name__}: {exc})"
    return render_template("archive.html", summary=summary, table=table, error=error, labels=LABELS,
                           text_archive=text_archive_summary(parts.settings()),
                           counted_s_ago=None if summary is None else max(0, round(time.time() - summary["counted_at"])))


def archive_table(per_day: dict, raw_page: str | None) -> dict:
    """One page of the per-flight-date table, newest date first (the chart shows them all)."""
    days = sorted(per_day, reverse=True)
    pages = max(1, -(-len(days) // ARCHIVE_DAYS_PER_PAGE))
    text = (raw_page or "1").strip()
    page = int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 1
    page = max(1, min(pages, page))
    shown = days[(page - 1) * ARCHIVE_DAYS_PER_PAGE:page * ARCHIVE_DAYS_PER_PAGE]
    return {"rows": [(day, per_day[day]) for day in shown], "page": page, "pages": pages}


def text_archive_summary(s) -> dict:
    """NiFi's 10-second .txt files: the newest ones with their line counts."""
    try:
        return text_archive.summary(s.nifi_archive, limit=20)
    except OSError as exc:  # unreadable directory: the section says so
        log.warning("text archive listing failed: %s", exc)
        return {"directory": str(s.nifi_archive), "error": f"{type(exc).__name__}: {exc}"}


@bp.get("/model")
def model():
    return render_template("model.html", model=parts.stores().champion(), labels=LABELS)


@bp.app_template_filter("figure")
def figure(value) -> str:
    """A metric for people: counts as whole numbers with separators (8,255, not 8255.0000),
    other numbers to 4 decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}"


@bp.get("/favicon.ico")
def favicon():
    """Browsers and tools ask for it whatever the page links; the page's own icon (SVG)."""
    return current_app.send_static_file("favicon.svg")


@bp.get("/model/plot/<run_id>/<path:path>")
def model_plot(run_id: str, path: str):
    if not path.endswith(".png") or ".." in path:
        abort(404)
    try:
        return Response(parts.stores().champion_plot(run_id, path), mimetype="image/png")
    except Exception:  # unknown run or artifact
        abort(404)


def service_checks(s) -> list[dict]:
    """One row per service; with FD_CLUSTER=1 each cluster's row is followed by one per node."""
    ui = f"http://{s.host}"
    nodes = {name: [{**row, "node": True} for row in rows] for name, rows in health.node_checks(s).items()}
    return [
        {"name": "Kafka", "check": health.check_kafka, "url": None, "port": s.kafka_port}, *nodes.get("kafka", []),
        {"name": "MongoDB (FerretDB)", "check": health.check_mongo, "url": None, "port": s.mongo_port},
        {"name": "Cassandra", "check": health.check_cassandra, "url": None, "port": s.cassandra_port},
        *nodes.get("cassandra", []),
        {"name": "HDFS", "check": health.check_hdfs, "url": s.webhdfs_url, "port": s.hdfs_http_port},
        *nodes.get("hdfs", []),
        {"name": "MLflow", "check": health.check_mlflow, "url": s.mlflow_uri, "port": s.mlflow_port},
        {"name": "Spark streaming job", "check": health.check_spark_ui, "url": f"{ui}:{s.spark_ui_port}",
         "port": s.spark_ui_port}, *nodes.get("spark", []),
        {"name": "NiFi", "check": health.check_nifi, "url": f"{ui}:{s.nifi_port}/nifi", "port": s.nifi_port},
        {"name": "Airflow", "check": health.check_airflow, "url": f"{ui}:{s.airflow_port}", "port": s.airflow_port},
    ]


@bp.get("/status")
def status():
    s = parts.settings()
    rows = []
    for svc in service_checks(s):
        began = time.monotonic()
        try:
            detail, ok = svc["check"](s), True
        except Exception as exc:  # the failure text is what the page shows
            detail, ok = f"{type(exc).__name__}: {exc}"[:200], False
        rows.append({**svc, "ok": ok, "detail": detail, "ms": (time.monotonic() - began) * 1000})
    return render_template("status.html", rows=rows, streaming=streaming_status(s))


def streaming_status(s) -> job_status.JobStatus | None:
    """What the streaming job last wrote about its queries (backlog of each archive query)."""
    return job_status.read(s)


@bp.get("/vendor/socket.io.min.js")
def vendor_socketio():
    """The Socket.IO browser client, fetched from npm into the cache by `make up` (no CDN:
    the page must work without internet)."""
    path = parts.settings().cache / "npm" / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
    if not path.exists():
        log.error("Socket.IO client missing at %s; run `make up` (or `make install`)", path)
        abort(404)
    return Response(path.read_bytes(), mimetype="application/javascript",
                    headers={"Cache-Control": "public, max-age=86400"})


@bp.get("/vendor/chart.umd.min.js")
def vendor_chartjs():
    """Chart.js (the archive page's chart), fetched from npm into the cache by `make up`."""
    path = parts.settings().cache / "npm" / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
    if not path.exists():
        log.error("Chart.js missing at %s; run `make up` (or `make install`)", path)
        abort(404)
    return Response(path.read_bytes(), mimetype="application/javascript",
                    headers={"Cache-Control": "public, max-age=86400"})


@bp.get("/healthz")
def healthz():
    """Liveness for the launcher: the process serves, and its Kafka response consumer is
    assigned (before that, a prediction could not reach the browser)."""
    ready = parts.bridge().consumer_ready.is_set()
    return {"ok": True, "response_consumer_ready": ready}
