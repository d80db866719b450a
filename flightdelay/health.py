"""One real protocol request per service: is it answering? Used by the launcher's readiness
probes and by the web app's status page, so both agree on what "up" means.

Each check raises on failure and returns a short description of what answered.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import urllib.request

from flightdelay.config import Settings

log = logging.getLogger(__name__)

# urllib without proxies: every service is on loopback and a proxy variable must not reroute it.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 2.0) -> bytes:
    with _http.open(url, timeout=timeout) as resp:
        return resp.read()


def check_kafka(s: Settings, timeout: float = 2.0) -> str:
    from flightdelay import kafka

    metadata = kafka.admin(s, {"socket.connection.setup.timeout.ms": int(timeout * 1000)}).list_topics(timeout=timeout)
    if not metadata.brokers:
        raise RuntimeError("no broker in the metadata answer")
    text = f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topics"
    if len(s.kafka_brokers) > 1:
        text += f", {len(under_replicated(s, metadata))} under-replicated partitions of the platform's topics"
    return text


def under_replicated(s: Settings, metadata) -> list[str]:
    """Partitions of the platform's topics with fewer in-sync replicas than copies."""
    out = []
    for name in s.platform_topics:
        topic = metadata.topics.get(name)
        for p in (topic.partitions.values() if topic else ()):
            if len(p.isrs) < len(p.replicas):
                out.append(f"{name}[{p.id}]")
    return out


def check_kafka_broker(s: Settings, host: str, node_id: int, timeout: float = 2.0) -> str:
    """One broker of several: it answers on its own address and the cluster counts it as
    registered (a fenced broker is left out of the metadata); what it leads."""
    from flightdelay import kafka

    only = dataclasses.replace(s, kafka_hosts=host)
    metadata = kafka.admin(only, {"socket.connection.setup.timeout.ms": int(timeout * 1000)}).list_topics(timeout=timeout)
    if node_id not in metadata.brokers:
        raise RuntimeError(f"broker {node_id} answers but is not registered (fenced or starting); "
                           f"registered: {sorted(metadata.brokers)}")
    partitions = [p for name in s.platform_topics if name in metadata.topics
                  for p in metadata.topics[name].partitions.values()]
    leads = sum(1 for p in partitions if p.leader == node_id)
    in_sync = sum(1 for p in partitions if node_id in p.isrs)
    return (f"broker {node_id}: leader of {leads}, in sync on {in_sync} of {len(partitions)} platform partitions"
            + (", controller" if metadata.controller_id == node_id else ""))


def check_mongo(s: Settings, timeout: float = 2.0) -> str:
    from flightdelay.stores import mongo

    with mongo.client(s, timeout_ms=int(timeout * 1000)) as client:
        client.admin.command("ping")
        return f"ping ok, server {client.server_info().get('version', '?')}"


def check_hdfs(s: Settings, timeout: float = 2.0) -> str:
    listing = json.loads(http_get(f"{s.webhdfs_url}/webhdfs/v1/?op=LISTSTATUS&user.name={s.hdfs_user}", timeout))
    return f"WebHDFS lists {len(listing['FileStatuses']['FileStatus'])} entries in /"


def check_mlflow(s: Settings, timeout: float = 2.0) -> str:
    body = http_get(f"{s.mlflow_uri}/health", timeout).decode().strip()
    if body != "OK":
        raise RuntimeError(f"/health answered {body!r}")
    return "/health OK"


def check_spark_ui(s: Settings, timeout: float = 2.0) -> str:
    apps = json.loads(http_get(f"{s.spark_ui_url}/api/v1/applications", timeout))
    return ", ".join(a["name"] for a in apps) or "no application"


def check_cassandra(s: Settings, timeout: float = 3.0) -> str:
    from flightdelay.stores import cassandra

    with cassandra.quiet_driver():
        cluster, session = cassandra.session(s, timeout=timeout, metadata=False)
        try:
            row = session.execute("SELECT release_version FROM system.local", timeout=timeout).one()
        finally:
            cluster.shutdown()
    if row is None or not row.release_version:
        raise RuntimeError("system.local has no release_version")
    return f"Cassandra {row.release_version}"


def check_cassandra_node(s: Settings, host: str, timeout: float = 3.0) -> str:
    """One node of several, asked alone: its version and how many peers it sees."""
    from flightdelay.stores import cassandra

    with cassandra.quiet_driver():
        cluster, session = cassandra.session(s, timeout=timeout, metadata=False, node=host)
        try:
            row = session.execute("SELECT release_version, data_center FROM system.local", timeout=timeout).one()
            peers = len(session.execute("SELECT peer FROM system.peers_v2", timeout=timeout).all())
        finally:
            cluster.shutdown()
    if row is None or not row.release_version:
        raise RuntimeError("system.local has no release_version")
    return f"Cassandra {row.release_version}, {row.data_center}, {peers} peer(s)"


def namenode_info(s: Settings, timeout: float = 2.0) -> dict:
    """The NameNode's own view of its DataNodes (its JMX bean NameNodeInfo)."""
    url = f"{s.webhdfs_url}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo"
    beans = json.loads(http_get(url, timeout)).get("beans") or []
    if not beans:
        raise RuntimeError("the NameNode has no NameNodeInfo bean yet")
    return beans[0]


def check_hdfs_datanode(s: Settings, host: str, timeout: float = 2.0) -> str:
    """A DataNode answers on its own HTTP port, and the NameNode counts it live (heartbeats;
    a DataNode just gone stays live there for up to a minute). The NameNode names a DataNode
    by the hostname it registered (dfs.datanode.hostname)."""
    http_get(f"http://{host}:{s.hdfs_datanode_http_port}/jmx?qry=Hadoop:service=DataNode,name=DataNodeInfo", timeout)
    info = namenode_info(s, timeout)
    live = json.loads(info.get("LiveNodes") or "{}")
    mine = {name: node for name, node in live.items() if name.split(":")[0] == host}
    if not mine:
        dead = [name for name in json.loads(info.get("DeadNodes") or "{}") if name.split(":")[0] == host]
        raise RuntimeError(f"DataNode {host} is {'dead (no heartbeat)' if dead else 'not registered'}")
    node = next(iter(mine.values()))
    return (f"live, last heartbeat {node.get('lastContact', '?')} s ago, {node.get('numBlocks', '?')} blocks, "
            f"{int(node.get('used', 0)) / 2**20:.0f} MB used")


def check_spark_master(s: Settings, timeout: float = 2.0) -> str:
    state = json.loads(http_get(f"{s.spark_master_web_url}/json/", timeout))
    if state.get("status") != "ALIVE":
        raise RuntimeError(f"master status {state.get('status')}")
    alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
    return f"{len(alive)} worker(s) alive, {len(state.get('activeapps', []))} application(s)"


def check_spark_worker(s: Settings, host: str, timeout: float = 2.0) -> str:
    """A worker as the master sees it (registered and alive), found by its UI's address."""
    state = json.loads(http_get(f"{s.spark_master_web_url}/json/", timeout))
    mine = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"
            and w.get("webuiaddress", "").endswith(f"//{host}:{s.spark_worker_ui_port}")]
    if not mine:
        raise RuntimeError(f"no live worker at {host} registered with the master")
    w = mine[0]
    return f"{w.get('coresused', 0)}/{w.get('cores', 0)} cores and {w.get('memoryused', 0)}/{w.get('memory', 0)} MB in use"


def node_checks(s: Settings) -> dict[str, list[dict]]:
    """The nodes of each server that runs as several (FD_CLUSTER=1, or docker-compose's host
    lists), by the name of the single server they replace, as rows of the status page (name,
    check, url, port). Node ``i`` of Kafka is broker id ``i``."""
    nodes = {}
    if len(s.kafka_brokers) > 1:
        nodes["kafka"] = [{"name": f"broker {i} ({host})", "url": None, "port": s.kafka_port,
                           "check": functools.partial(check_kafka_broker, host=host, node_id=i)}
                          for i, host in enumerate(s.kafka_brokers, 1)]
    if len(s.cassandra_nodes) > 1:
        nodes["cassandra"] = [{"name": f"node {i} ({host})", "url": None, "port": s.cassandra_port,
                               "check": functools.partial(check_cassandra_node, host=host)}
                              for i, host in enumerate(s.cassandra_nodes, 1)]
    if s.hdfs_datanodes:
        nodes["hdfs"] = [{"name": f"DataNode {i} ({host})", "url": f"http://{host}:{s.hdfs_datanode_http_port}",
                          "port": s.hdfs_datanode_http_port, "check": functools.partial(check_hdfs_datanode, host=host)}
                         for i, host in enumerate(s.hdfs_datanodes, 1)]
    if s.spark_standalone or len(s.spark_workers) > 1:
        nodes["spark"] = [{"name": "Spark master", "check": check_spark_master, "url": s.spark_master_web_url,
                           "port": s.spark_master_ui_port}] + [
            {"name": f"Spark worker {i} ({host})", "url": f"http://{host}:{s.spark_worker_ui_port}",
             "port": s.spark_worker_ui_port, "check": functools.partial(check_spark_worker, host=host)}
            for i, host in enumerate(s.spark_workers, 1)]
    return nodes


def check_nifi(s: Settings, timeout: float = 2.0) -> str:
    about = json.loads(http_get(f"{s.nifi_url}/nifi-api/flow/about", timeout))
    return f"NiFi {about['about']['version']}"


def airflow_health(s: Settings, timeout: float = 2.0) -> dict:
    """Airflow's own health report: metadatabase, scheduler, dag_processor, triggerer."""
    return json.loads(http_get(f"{s.airflow_url}/api/v2/monitor/health", timeout))


def check_airflow(s: Settings, timeout: float = 2.0) -> str:
    status = airflow_health(s, timeout)
    if status.get("metadatabase", {}).get("status") != "healthy":
        raise RuntimeError(f"metadatabase {status.get('metadatabase')}")
    return ", ".join(f"{k} {v.get('status') or 'not running'}" for k, v in status.items() if isinstance(v, dict))
