"""Clients of the platform's stores, configured from Settings in one place."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from flightdelay.config import Settings


def cassandra_session(s: Settings, *, keyspace: str | None = None, timeout: float = 10.0,
                      metadata: bool = True):
    """Return ``(cluster, session)`` for the local node; the caller calls ``cluster.shutdown()``."""
    from cassandra import ProtocolVersion
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([s.host]),
                               request_timeout=timeout)
    # Protocol v5 is Cassandra 5.0's default; naming it avoids the driver's downgrade warnings.
    cluster = Cluster(contact_points=[s.host], port=s.cassandra_port, protocol_version=ProtocolVersion.V5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=timeout, control_connection_timeout=timeout,
                      schema_metadata_enabled=metadata, token_metadata_enabled=metadata)
    try:
        return cluster, cluster.connect(keyspace)
    except Exception:
        cluster.shutdown()
        raise


@contextmanager
def quiet_cassandra_driver():
    """Silence cassandra-driver's logging while probing a node that may still be starting
    (the driver logs every refused connection as a warning or error)."""
    driver_log = logging.getLogger("cassandra")
    previous = driver_log.level
    driver_log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        driver_log.setLevel(previous)


def mongo_client(s: Settings, timeout_ms: int = 5000):
    from pymongo import MongoClient

    return MongoClient(s.mongo_uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)


def hdfs_client(s: Settings, timeout: float = 30.0):
    """HdfsCLI over WebHDFS. Its requests session ignores HTTP(S)_PROXY variables: every
    service is on loopback and a proxy must not reroute the DataNode redirects."""
    import requests
    from hdfs import InsecureClient

    session = requests.Session()
    session.trust_env = False
    return InsecureClient(s.webhdfs_url, user=s.hdfs_user, timeout=timeout, session=session)
