"""The web app's parts, one of each per app, reached through typed accessors (as flaskr's
``get_db()``): ``create_app`` builds them and registers them once (``install``); a request or
Socket.IO handler reads them through the current app (``settings()``, ``results()``, ...); a
background task, which has no app context, through ``of(app)``.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from flightdelay.config import Settings
from flightdelay.reference import Reference
from flightdelay.serving import ServedReference
from webapp.bridge import KafkaBridge
from webapp.limits import SubmissionLimit
from webapp.results import ResultStore
from webapp.stores import Stores

EXTENSION = "flightdelay"  # the one key in app.extensions


@dataclass
class Parts:
    settings: Settings
    served_reference: ServedReference  # the served model's reference data, following the alias
    results: ResultStore               # what this process knows of the requests it produced
    bridge: KafkaBridge                # Kafka: requests out, predictions and dead letters in
    stores: Stores                     # MongoDB, the HDFS archive, MLflow (read side)
    limit: SubmissionLimit             # one rate limit per client over every way of submitting
    background_started: bool = False   # the Kafka consumer and the alias watcher run (once per app)


def install(app: Flask, parts: Parts) -> None:
    app.extensions[EXTENSION] = parts


def of(app: Flask) -> Parts:
    return app.extensions[EXTENSION]


def settings() -> Settings:
    return of(current_app).settings


def reference() -> Reference:
    """Reference data of the served model: routes, airports, their schedules (the champion's,
    following the registry alias, as the job serves it)."""
    return of(current_app).served_reference.current()


def results() -> ResultStore:
    return of(current_app).results


def bridge() -> KafkaBridge:
    return of(current_app).bridge


def stores() -> Stores:
    return of(current_app).stores


def limit() -> SubmissionLimit:
    return of(current_app).limit
