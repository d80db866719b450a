"""Supervision of the job's queries: start them, swap in a new champion model between batches,
follow the shadow model (the challenger, else the previous champion) the same way, restart a
query that died, report progress (log lines and the status file), and keep the store writers
at a lower CPU priority than the predict query."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from flightdelay import status as job_status
from flightdelay.config import Settings
from flightdelay.serving import (
    AliasWatcher,
    ServedModel,
    ShadowModel,
    load_registered,
    load_served_model,
    registry_aliases,
    shadow_choice,
)
from flightdelay.stores.cassandra import CassandraWriter
from flightdelay.stores.mongo import MongoWriter
from spark_jobs.frontier import frontier_or_nothing
from spark_jobs.outcomes import Outcomes, start_scored_archive
from spark_jobs.queries import checkpoint_dir, start_archive, start_predict, start_store
from spark_jobs.warmup import warm_up

log = logging.getLogger("spark_jobs.supervisor")
# Pauses before loading again a shadow version that failed to load (then every last one): a
# broken challenger must not cost a model download at every poll.
SHADOW_RETRY_S = (30.0, 60.0, 120.0, 300.0)


@dataclass
class PredictionJob:
    spark: SparkSession
    settings: Settings
    stores: bool = True
    stopping: threading.Event = field(default_factory=threading.Event)
    served: ServedModel | None = None
    shadow: ShadowModel | None = None             # scored beside the champion, answers no one
    watcher: AliasWatcher | None = None
    queries: dict = field(default_factory=dict)
    factories: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)   # query -> restarts since it was last seen running
    retry_at: dict = field(default_factory=dict)   # query -> monotonic time of its next restart
    shadow_failures: dict = field(default_factory=dict)  # (role, version) -> (failed loads, next attempt)

    def start(self) -> None:
        s = self.settings
        self.served = load_served_model(s)
        self.shadow = self.shadow_for(self.wanted_shadow(self.served.version))
        self.watcher = AliasWatcher(s, self.served.version, self.swap_model)
        # Before anything is reported up: the first users must not pay for the JVM's cold start.
        warm_up(self.spark, s, self.served, self.shadow, frontier_or_nothing(s))
        self.factories = {"predict": lambda: start_predict(self.spark, s, self.served, self.shadow,
                                                           frontier_or_nothing(s))}
        if self.stores:
            self.factories.update({
                "archive-mongo": lambda: start_store(self.spark, s, "archive-mongo", MongoWriter(s),
                                                     self.stopping.is_set, forward_incomplete=True),
                "archive-cassandra": lambda: start_store(self.spark, s, "archive-cassandra", CassandraWriter(s),
                                                         self.stopping.is_set, outcomes=self.outcomes()),
                "archive-hdfs": lambda: start_archive(self.spark, s),
                "archive-scored": lambda: start_scored_archive(self.spark, s, checkpoint_dir(s, "archive-scored")),
            })
        for name, factory in self.factories.items():
            self.queries[name] = factory()
        self.write_status()

    def outcomes(self) -> Outcomes:
        """The outcome join of the archive-cassandra query: outcomes are validated against the
        reference data of the model served now."""
        return Outcomes(self.settings, self.served.name, lambda: self.served.reference,
                        checkpoint_dir(self.settings, "archive-cassandra"))

    def swap_model(self, version: str) -> bool:
        """The alias moved to ``version`` (``self.watcher`` calls this): restart the predict
        query on it between batches; False (still serving the current model) if it cannot be
        loaded, and the watcher asks again at its next check."""
        log.info("alias %s moved to version %s (serving %s); loading it", self.settings.model_alias,
                 version, self.served.version)
        try:
            candidate = load_registered(self.settings, version)
        except Exception:  # keep serving the current model; try again at the next poll
            log.exception("could not load version %s; still serving %s", version, self.served.version)
            return False
        # The shadow model for the new champion in the same restart (after a promotion the
        # challenger is the champion and the previous champion takes its place in shadow).
        wanted = self.wanted_shadow(candidate.version)
        self.restart_predict(candidate, self.shadow_for(wanted) if self.shadow_due(wanted) else None)
        return True

    def restart_predict(self, served: ServedModel, shadow: ShadowModel | None) -> None:
        """Stop the predict query and start it again on these models, from its checkpoint,
        skipping the requests already answered (spark_jobs.frontier): the requests waiting
        meanwhile are answered by the new query, the others not a second time."""
        self.queries["predict"].stop()
        self.served, self.shadow = served, shadow
        self.restart("predict")

    # -- the shadow model --------------------------------------------------------------------
    def wanted_shadow(self, champion_version: str) -> tuple[str, str] | None:
        """(role, version) the registry's aliases name for shadow scoring beside
        ``champion_version`` (serving.shadow_choice); a registry not answering keeps the shadow
        model of now, unless it is that champion."""
        aliases = registry_aliases(self.settings)
        if aliases is None:
            current = shadow_key(self.shadow)
            return None if current is None or current[1] == champion_version else current
        return shadow_choice(self.settings, aliases, champion_version)

    def shadow_due(self, wanted: tuple[str, str] | None) -> bool:
        """False while a version that failed to load waits for its next attempt."""
        return wanted is None or time.monotonic() >= self.shadow_failures.get(wanted, (0, 0.0))[1]

    def shadow_for(self, wanted: tuple[str, str] | None) -> ShadowModel | None:
        """The shadow model for ``wanted`` (role, version): the one loaded already if it is that
        version, else loaded from the registry. None if nothing is wanted or it cannot be loaded:
        that is logged, the champion answers without a shadow model, and the version is tried
        again after a pause (SHADOW_RETRY_S)."""
        if wanted is None:
            return None
        role, version = wanted
        if self.shadow is not None and self.shadow.model.version == version:
            return ShadowModel(role, self.shadow.model)
        try:
            model = load_registered(self.settings, version)
        except Exception:  # never let the shadow model stop the champion's answers
            failures = self.shadow_failures.get(wanted, (0, 0.0))[0] + 1
            pause = SHADOW_RETRY_S[min(failures, len(SHADOW_RETRY_S)) - 1]
            self.shadow_failures[wanted] = (failures, time.monotonic() + pause)
            log.exception("could not load %s version %s for shadow scoring (%s, attempt %d); answering without "
                          "a shadow model, next attempt in %.0f s", self.settings.model_name, version, role,
                          failures, pause)
            return None
        self.shadow_failures.pop(wanted, None)
        return ShadowModel(role, model)

    def follow_shadow(self) -> bool:
        """Ask the registry which model to score in shadow; when that changed (a challenger
        appeared, its alias moved or went), restart the predict query on it between batches,
        as for a champion swap. True if the predict query was restarted."""
        wanted = self.wanted_shadow(self.served.version)
        if wanted == shadow_key(self.shadow) or not self.shadow_due(wanted):
            return False
        shadow = self.shadow_for(wanted)
        if shadow_key(shadow) == shadow_key(self.shadow):
            return False
        log.info("shadow model: %s -> %s; restarting the predict query", describe_shadow(self.shadow),
                 describe_shadow(shadow))
        self.restart_predict(self.served, shadow)
        return True

    def check_queries(self) -> None:
        """Restart each query that died, from its checkpoint, pausing longer after each restart
        that did not last (5, 10, 20, then every 30 s) so a store that stays down causes no
        restart storm."""
        for name, query in list(self.queries.items()):
            if self.stopping.is_set():
                return
            if query.isActive:
                self.failures.pop(name, None)
                continue
            if time.monotonic() < self.retry_at.get(name, 0.0):
                continue
            failures = self.failures[name] = self.failures.get(name, 0) + 1
            self.retry_at[name] = time.monotonic() + min(30.0, 5.0 * 2 ** (failures - 1))
            log.error("query %s stopped: %s; restarting it from its checkpoint (restart %d)", name,
                      first_line(query.exception()), failures)
            self.restart(name)

    def restart(self, name: str) -> bool:
        """Start query ``name`` again. If it cannot start (the parquet sink asks HDFS as it
        starts: an HDFS outage fails here), log it and leave it to the next check: a store
        outage must never end the job, whose predict query answers the users."""
        try:
            self.queries[name] = self.factories[name]()
            return True
        except Exception as exc:  # the store is still down: check_queries tries again later
            log.error("query %s could not start: %s: %s; next attempt in %.0f s", name, type(exc).__name__,
                      first_line(exc), max(0.0, self.retry_at.get(name, 0.0) - time.monotonic()))
            return False

    def run(self) -> None:
        """Every FD_MODEL_POLL_S seconds: restart dead queries, follow the aliases (the champion,
        then the shadow model), write the status. The alias is checked here rather than by ``watcher.follow`` in a thread of its
        own, so a model swap and a query restart never run at the same time."""
        while not self.stopping.wait(self.settings.model_poll_s):
            self.check_queries()
            self.watcher.check()
            self.follow_shadow()
            self.write_status()

    def write_status(self) -> None:
        """What the launcher's readiness probe, the status page and the bench read (flightdelay.status)."""
        job_status.write(self.settings, job_status.JobStatus(
            model=job_status.ModelStatus(self.served.name, self.served.version, self.served.source,
                                         self.served.engine,
                                         *((self.shadow.model.version, self.shadow.role) if self.shadow else ())),
            queries={name: job_status.QueryStatus(q.isActive, str(q.id), **query_progress(q))
                     for name, q in self.queries.items()}))

    def stop(self) -> None:
        self.stopping.set()
        for name, query in self.queries.items():
            try:
                query.stop()
                log.info("query %s stopped", name)
            except Exception:  # stopping is best effort; Spark exits with the process anyway
                log.exception("query %s did not stop cleanly", name)


def shadow_key(shadow: ShadowModel | None) -> tuple[str, str] | None:
    return None if shadow is None else shadow.key


def describe_shadow(shadow: ShadowModel | None) -> str:
    return "none" if shadow is None else f"version {shadow.model.version} ({shadow.role})"


def first_line(error) -> str:
    """The first line of an error; for a Java exception raised through py4j, its own message
    (py4j's says only which call failed)."""
    error = getattr(error, "java_exception", None) or error
    return str(error).strip().split("\n", 1)[0][:300] if error else "no error reported"


def offset_total(offsets) -> int | None:
    """Sum of a Kafka source offset ({"topic": {"partition": offset}}, or its JSON text)."""
    if isinstance(offsets, str):
        offsets = json.loads(offsets)
    if not isinstance(offsets, dict):
        return None
    return sum(int(o) for partitions in offsets.values() for o in partitions.values())


def query_progress(query) -> dict:
    """From the query's last progress report: its batch, rows/s, ``offset`` (the Kafka records
    that batch read up to) and ``backlog``, the records that were already waiting beyond it
    (an archive query behind a burst)."""
    try:
        progress = query.lastProgress
        if not progress:
            return {}
        source = progress["sources"][0]
        end, latest = offset_total(source["endOffset"]), offset_total(source["latestOffset"])
        return {"batch": progress["batchId"], "rows_per_s": round(progress["processedRowsPerSecond"] or 0),
                "offset": end,
                "backlog": None if end is None or latest is None else max(0, latest - end)}
    except Exception:  # progress is informative only; never let it stop the supervisor
        log.debug("no progress for query %s", query.name, exc_info=True)
        return {}


def install_progress_logging(spark: SparkSession) -> None:
    from pyspark.sql.streaming import StreamingQueryListener

    class ProgressLog(StreamingQueryListener):
        def onQueryStarted(self, event):
            log.info("query %s started (id %s)", event.name, event.id)

        def onQueryProgress(self, event):
            p = event.progress
            if p.numInputRows:
                # The parts say where a slow batch, or a real-time batch's end, spent its time.
                parts = ", ".join(f"{k} {v}" for k, v in sorted(p.durationMs.items()) if k != "triggerExecution")
                log.info("query %s batch %s: %d rows, %.0f rows/s, %s ms (%s)", p.name, p.batchId, p.numInputRows,
                         p.processedRowsPerSecond or 0, p.durationMs.get("triggerExecution"), parts)
            for op in p.stateOperators or []:
                dropped = getattr(op, "numRowsDroppedByWatermark", 0)
                if dropped:
                    log.warning("query %s dropped %d rows older than the dedup window", p.name, dropped)

        def onQueryIdle(self, event):
            pass

        def onQueryTerminated(self, event):
            if event.exception:
                log.error("query %s terminated: %s", event.id, event.exception.splitlines()[0])

    spark.streams.addListener(ProgressLog())


def lower_store_writer_priority(nice: int) -> None:
    """Renice this Python process's threads (not the Spark JVM, started before): here run only
    the archive queries' store writers and the supervisor, while the predict query lives in the
    JVM. Threads started later inherit the niceness of the thread that starts them."""
    if nice <= 0:
        return
    for task in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(task), nice)
        except OSError:  # a thread that just ended
            pass
    log.info("store writers run at niceness %d (FD_STORE_NICE); the predict query keeps priority", nice)
