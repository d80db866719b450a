"""One real protocol request per service: is it answering? Used by the launcher's readiness
probes and by the web app's status page, so both agree on what "up" means.

Each check raises on failure and returns a short description of what answered.
"""
from __future__ import annotations

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
    return f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topics"


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
