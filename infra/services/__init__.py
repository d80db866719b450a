"""One module per server. ``all_services()`` lists them in start order."""
from __future__ import annotations

import importlib

from flightdelay.config import Settings
from infra.services.base import Service

# name -> "module:Class", in start order (cheap servers first so failures surface early).
REGISTRY = {
    "postgres": "infra.services.postgres:Postgres",
    "mongo": "infra.services.mongo:Mongo",
    "kafka": "infra.services.kafka:Kafka",
    "nifi": "infra.services.nifi:NiFi",
    "mlflow": "infra.services.mlflow_server:MLflowServer",
    "hdfs": "infra.services.hdfs:Hdfs",
    "cassandra": "infra.services.cassandra:Cassandra",
    "spark-master": "infra.services.spark_cluster:SparkMaster",
    "spark-worker": "infra.services.spark_cluster:SparkWorker",
    "streaming": "infra.services.platform:StreamingJob",
    "webapp": "infra.services.platform:WebApp",
    "airflow": "infra.services.airflow:AirflowApiServer",
    "airflow-scheduler": "infra.services.airflow:AirflowScheduler",
    "airflow-dag-processor": "infra.services.airflow:AirflowDagProcessor",
}


# A server that cannot start without others: naming it (SERVICES=mongo, stack.require("mongo"))
# brings them along, in start order. FerretDB stores its data in PostgreSQL.
NEEDS = {"mongo": ("postgres",)}


def _load(spec: str) -> Service:
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)()


def all_services(s: Settings | None = None) -> list[Service]:
    """Every service; with Settings, only those these settings enable (e.g. the Spark cluster
    only with FD_SPARK_CLUSTER=1)."""
    services = [_load(spec) for spec in REGISTRY.values()]
    return services if s is None else [svc for svc in services if svc.enabled(s)]


def by_name(names: list[str]) -> list[Service]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SystemExit(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return [_load(REGISTRY[n]) for n in names]


def with_needs(names: list[str]) -> list[str]:
    """``names`` preceded by the servers they need (NEEDS), each once, in start order."""
    needed = [dep for n in names for dep in NEEDS.get(n, ()) if dep not in names]
    return list(dict.fromkeys([n for n in REGISTRY if n in needed] + list(names)))
