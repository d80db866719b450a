"""Apache Kafka 4.x in KRaft combined mode (broker + controller), from Maven Central.

One node by default (``kafka``). With FD_CLUSTER=1, one node per address of FD_KAFKA_HOSTS
(``kafka-1`` ...; three by default), each broker and controller at once, the controllers a
static quorum of all of them (``controller.quorum.voters``): the cluster answers while a
majority runs. The platform's topics get FD_KAFKA_REPLICATION copies (one per broker, at most
3) and min.insync.replicas FD_KAFKA_MIN_INSYNC_REPLICAS (copies - 1), the internal topics
(consumer offsets, transactions) the same.
"""
from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from pathlib import Path

from flightdelay import kafka
from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import check_kafka, check_kafka_broker
from infra.process import StackError, until
from infra.services.base import ClusterNode, Service, java, java_env, maven_libs

log = logging.getLogger(__name__)

CONF = REPO_ROOT / "infra" / "kafka"
JVM_OPTS = ["-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile=file:{CONF / 'log4j2.properties'}"]


class Kafka(Service):
    name = "kafka"
    start_timeout = 90.0

    def enabled(self, s: Settings) -> bool:
        return not s.cluster

    def port(self, s: Settings) -> int:
        return s.kafka_port

    def lib(self, s: Settings) -> Path:
        return s.cache / "kafka" / "lib"

    def install(self, s: Settings) -> None:
        maven_libs(CONF / "pom.xml", self.lib(s), self.name)

    def server_properties(self, s: Settings, workdir: Path) -> str:
        return broker_properties(s, workdir, node_id=1, host=s.host, voters=[s.host],
                                 # The controller fences a broker whose heartbeat it has not handled
                                 # for this long, and every partition loses its leader until the broker
                                 # registers again. On a loaded shared machine the controller's own event
                                 # queue fell 5-10 s behind (its log: "controller event queue overloaded.
                                 # Timed out heartbeat from broker 1"), which fenced the broker (default
                                 # 9 s): clients saw leader -1 and the readiness probe "no broker". With
                                 # one node there is no other broker to fail over to, so a longer lease
                                 # costs nothing.
                                 session_timeout_ms=30000)

    def cluster_id(self, s: Settings) -> str:
        return new_cluster_id()

    def prepare(self, s: Settings, workdir: Path) -> None:
        conf = workdir / "server.properties"
        conf.write_text(self.server_properties(s, workdir))
        if (workdir / "data" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id(s)
        print(f"[{self.name}] formatting KRaft storage (cluster id {cluster_id})", flush=True)
        cmd = [java(s), *JVM_OPTS, "-cp", f"{self.lib(s)}/*", "kafka.tools.StorageTool", "format",
               "-t", cluster_id, "-c", str(conf), "--ignore-formatted"]
        result = subprocess.run(cmd, env=java_env(s), capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"{self.name}: formatting storage failed:\n{result.stdout}{result.stderr}")

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return [java(s), *JVM_OPTS, "-cp", f"{self.lib(s)}/*", "kafka.Kafka", str(workdir / "server.properties")]

    def env(self, s: Settings) -> dict[str, str]:
        return java_env(s)

    def probe(self, s: Settings) -> None:
        check_kafka(s)

    def bootstrap(self, s: Settings) -> None:
        ensure_topics(s, s.platform_topics)


class KafkaNode(ClusterNode, Kafka):
    """A broker (and KRaft controller) of the FD_CLUSTER=1 cluster."""

    prefix = cluster = "kafka"
    quorum = True  # no node answers before a majority of the controllers runs

    def url(self, s: Settings) -> str:
        return f"{self._host}:{s.kafka_port}"

    def server_properties(self, s: Settings, workdir: Path) -> str:
        return broker_properties(s, workdir, node_id=self.node, host=self._host, voters=s.kafka_brokers,
                                 session_timeout_ms=s.kafka_session_timeout_ms)

    def cluster_id(self, s: Settings) -> str:
        """Every node is formatted with the same cluster id, kept beside their directories."""
        path = s.state / "kafka-cluster.id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def probe(self, s: Settings) -> None:
        check_kafka_broker(s, self._host, self.node)

    def bootstrap(self, s: Settings) -> None:
        """The topics, once as many brokers as they have copies are registered (the first
        node is up before the others have registered)."""
        wait_for_brokers(s, s.topic_replication)
        ensure_topics(s, s.platform_topics)


def broker_properties(s: Settings, workdir: Path, *, node_id: int, host: str, voters: list[str],
                      session_timeout_ms: int) -> str:
    listeners = f"PLAINTEXT://{host}:{s.kafka_port},CONTROLLER://{host}:{s.kafka_controller_port}"
    copies, min_isr = str(s.topic_replication), str(s.topic_min_insync)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": ",".join(f"{i}@{h}:{s.kafka_controller_port}" for i, h in enumerate(voters, 1)),
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(workdir / "data"),
        "num.partitions": str(s.topic_partitions),
        "default.replication.factor": copies,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": copies,
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": copies,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": copies,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        # How long a broker that stopped heart-beating keeps its partitions: a killed broker's
        # leaders move to the other replicas after this, and it leaves their in-sync sets.
        "broker.session.timeout.ms": str(session_timeout_ms),
        # A replica that was not in sync never becomes leader: an acknowledged write is never lost.
        "unclean.leader.election.enable": "false",
        # Topics are created explicitly by bootstrap(); a typo in a topic name must not
        # silently create a new topic.
        "auto.create.topics.enable": "false",
        "log.retention.hours": "168",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def wait_for_brokers(s: Settings, count: int, timeout: float = 90.0) -> None:
    until(lambda: len(kafka.admin(s).list_topics(timeout=5).brokers) >= count, timeout,
          f"{count} Kafka brokers to register (the copies of each topic)")


def new_cluster_id() -> str:
    """Kafka's format: 16 random bytes, URL-safe base64 without padding. An id starting with
    '-' would be read as an option by the storage tool's argument parser, so draw again."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def ensure_topics(s: Settings, topics, partitions: int | None = None) -> None:
    """flightdelay.kafka.ensure_topics, saying what it created; a refusal stops the launcher."""
    try:
        created = kafka.ensure_topics(s, topics, partitions)
    except RuntimeError as exc:
        raise StackError(str(exc)) from exc
    for topic in created:
        print(f"[kafka] created topic {topic}", flush=True)
