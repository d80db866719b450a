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
    "monitor": "infra.services.platform:Monitor",
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


def cluster_nodes(s: Settings) -> dict[str, list[Service]]:
    """FD_CLUSTER=1: the nodes that run instead of each of these servers (each a service of its
    own: its address, data directory, log and pid file), in start order."""
    from infra.services.cassandra import CassandraNode
    from infra.services.hdfs import HdfsDataNode, HdfsNameNode
    from infra.services.kafka import KafkaNode
    from infra.services.spark_cluster import SparkWorkerNode

    return {
        "kafka": [KafkaNode(i, host) for i, host in enumerate(s.kafka_brokers, 1)],
        "hdfs": [HdfsNameNode(), *(HdfsDataNode(i, host) for i, host in enumerate(s.hdfs_datanodes, 1))],
        "cassandra": [CassandraNode(i, host) for i, host in enumerate(s.cassandra_nodes, 1)],
        "spark-worker": [SparkWorkerNode(i, host) for i, host in enumerate(s.spark_workers, 1)],
    }


def as_cluster(s: Settings) -> Settings:
    """``s``'s environment with FD_CLUSTER=1: where the cluster's nodes run."""
    from flightdelay.config import load_settings

    return s if s.cluster else load_settings(cluster=1)


def all_services(s: Settings | None = None) -> list[Service]:
    """Every service in start order; with Settings, only those these settings enable (e.g. the
    Spark cluster only with FD_SPARK_CLUSTER=1, the clusters' nodes instead of the single
    servers with FD_CLUSTER=1). Without, every single server and every cluster node (what
    `down` may have to stop)."""
    nodes = cluster_nodes(as_cluster(s if s is not None else _environment())) if s is None or s.cluster else {}
    services = []
    for name, spec in REGISTRY.items():
        if s is None or not s.cluster or name not in nodes:
            services.append(_load(spec))
        if name in nodes and (s is None or s.cluster):
            services += nodes[name]
    return services if s is None else [svc for svc in services if svc.enabled(s)]


def _environment() -> Settings:
    from flightdelay.config import load_settings

    return load_settings()


def by_name(names: list[str], s: Settings | None = None) -> list[Service]:
    """The services ``names`` (default settings: the environment's). With FD_CLUSTER=1 the name
    of a clustered server means all its nodes (``kafka``: ``kafka-1`` ...); a node's own name
    means that node."""
    s = s if s is not None else _environment()
    nodes = cluster_nodes(as_cluster(s))
    by_node = {svc.name: svc for group in nodes.values() for svc in group}
    unknown = [n for n in names if n not in REGISTRY and n not in by_node]
    if unknown:
        raise SystemExit(f"unknown service(s) {', '.join(unknown)}; known: {', '.join([*REGISTRY, *by_node])}")
    out = []
    for n in names:
        if n in by_node:
            out.append(by_node[n])
        elif s.cluster and n in nodes:
            out += nodes[n]
        else:
            out.append(_load(REGISTRY[n]))
    return out


def start_order(svc: Service) -> tuple[int, int]:
    """Where ``svc`` starts: its server's place in REGISTRY, then its node number."""
    return list(REGISTRY).index(svc.cluster or svc.name), svc.node


def with_needs(names: list[str]) -> list[str]:
    """``names`` preceded by the servers they need (NEEDS), each once, in start order."""
    needed = [dep for n in names for dep in NEEDS.get(n, ()) if dep not in names]
    return list(dict.fromkeys([n for n in REGISTRY if n in needed] + list(names)))
