"""Apache Kafka 4.x, one node in KRaft combined mode (broker + controller), from Maven Central."""
from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from pathlib import Path

from flightdelay import kafka
from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import check_kafka
from infra.process import StackError
from infra.services.base import Service, java, java_env, maven_libs

log = logging.getLogger(__name__)

CONF = REPO_ROOT / "infra" / "kafka"
JVM_OPTS = ["-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile=file:{CONF / 'log4j2.properties'}"]


class Kafka(Service):
    name = "kafka"
    start_timeout = 90.0

    def port(self, s: Settings) -> int:
        return s.kafka_port

    def lib(self, s: Settings) -> Path:
        return s.cache / "kafka" / "lib"

    def install(self, s: Settings) -> None:
        maven_libs(CONF / "pom.xml", self.lib(s), self.name)

    def server_properties(self, s: Settings, workdir: Path) -> str:
        listeners = f"PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.host}:{s.kafka_controller_port}",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(workdir / "data"),
            "num.partitions": str(s.topic_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # The controller fences a broker whose heartbeat it has not handled for this long, and
            # every partition loses its leader until the broker registers again. On a loaded shared
            # machine the controller's own event queue fell 5-10 s behind (its log: "controller
            # event queue overloaded. Timed out heartbeat from broker 1"), which fenced the broker
            # (default 9 s): clients saw leader -1 and the readiness probe "no broker". With one
            # node there is no other broker to fail over to, so a longer lease costs nothing.
            "broker.session.timeout.ms": "30000",
            # Topics are created explicitly by bootstrap(); a typo in a topic name must not
            # silently create a new topic.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def prepare(self, s: Settings, workdir: Path) -> None:
        conf = workdir / "server.properties"
        conf.write_text(self.server_properties(s, workdir))
        if (workdir / "data" / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        print(f"[kafka] formatting KRaft storage (cluster id {cluster_id})", flush=True)
        cmd = [java(s), *JVM_OPTS, "-cp", f"{self.lib(s)}/*", "kafka.tools.StorageTool", "format",
               "-t", cluster_id, "-c", str(conf), "--ignore-formatted"]
        result = subprocess.run(cmd, env=java_env(s), capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"kafka: formatting storage failed:\n{result.stdout}{result.stderr}")

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return [java(s), *JVM_OPTS, "-cp", f"{self.lib(s)}/*", "kafka.Kafka", str(workdir / "server.properties")]

    def env(self, s: Settings) -> dict[str, str]:
        return java_env(s)

    def probe(self, s: Settings) -> None:
        check_kafka(s)

    def bootstrap(self, s: Settings) -> None:
        ensure_topics(s, s.platform_topics)


def new_cluster_id() -> str:
    """Kafka's format: 16 random bytes, URL-safe base64 without padding. An id starting with
    '-' would be read as an option by the storage tool's argument parser, so draw again."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def ensure_topics(s: Settings, topics, partitions: int | None = None) -> None:
    """Create ``topics`` that do not exist yet (idempotent)."""
    from confluent_kafka.admin import NewTopic

    admin = kafka.admin(s)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(t, num_partitions=partitions or s.topic_partitions, replication_factor=1)
              for t in topics if t not in existing]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
            print(f"[kafka] created topic {topic}", flush=True)
        except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise StackError(f"kafka: could not create topic {topic}: {exc}") from exc


def delete_topics(s: Settings, topics) -> None:
    """Delete ``topics`` (a bench's own, once it is done: each one left behind costs the broker
    partitions to watch and disk)."""
    admin = kafka.admin(s)
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for t in topics if t in existing]
    if not doomed:
        return
    for topic, future in admin.delete_topics(doomed, operation_timeout=30).items():
        try:
            future.result()
        except Exception as exc:  # best effort: a topic left behind is only clutter
            print(f"[kafka] could not delete topic {topic}: {exc}", flush=True)
