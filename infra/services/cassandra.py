"""Apache Cassandra 5.0 on loopback, from the cassandra-all jars on Maven Central: one node
(``cassandra``), or with FD_CLUSTER=1 one node per address of FD_CASSANDRA_HOSTS (``cassandra-1``
..., three by default) in one datacenter, every one of them a seed (any node restarts alone), one
token each, spread evenly, and hinted handoff on.

The bin tarball is not served by Maven Central, so this runs what ``bin/cassandra -f`` would:
``java <jvm17-server.options> -javaagent:jamm -cp lib/* org.apache.cassandra.service.CassandraDaemon``
in the foreground, with a cassandra.yaml rendered from infra/cassandra/cassandra.yaml into the
workdir (data, commitlog, hints, saved caches also live there, so data survives restarts).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from string import Template

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import check_cassandra, check_cassandra_node
from flightdelay.stores import cassandra as cassandra_store
from infra.process import StackError
from infra.services.base import ClusterNode, Service, java, java_env, maven_libs

log = logging.getLogger(__name__)

CONF = REPO_ROOT / "infra" / "cassandra"
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"

# From Cassandra 5.0's conf/jvm-server.options and conf/jvm17-server.options, minus what does not
# suit a small shared dev box: no -XX:+AlwaysPreTouch (it would fault in the whole heap at start),
# no -XX:+UseNUMA, no heap dumps; plus a 1 GiB heap.
JVM_OPTS = [
    "-Xms1g", "-Xmx1g", "-Xss256k",
    "-ea", "-da:net.openhft...",
    "-XX:+UseThreadPriorities", "-XX:+UseTLAB", "-XX:+ResizeTLAB", "-XX:+PerfDisableSharedMem",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1", "-XX:G1HeapRegionSize=16m",
    "-XX:G1RSetUpdatingPauseTimePercent=5", "-XX:MaxGCPauseMillis=300", "-XX:InitiatingHeapOccupancyPercent=70",
    "-Djava.net.preferIPv4Stack=true",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    # Chronicle (audit log / full query log) would report usage to Google Analytics: never.
    "-Dchronicle.analytics.disable=true",
    "-Dcassandra.superuser_setup_delay_ms=0",
    "-Dcassandra-foreground=yes",
]
# One node, nobody to gossip with: do not wait for gossip to settle at start, nor announce the
# shutdown to peers (2 s) at stop. A node of several does both: the others stop sending it
# requests as soon as it says it is going, instead of after their failure detector's verdict.
SINGLE_NODE_OPTS = ["-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.shutdown_announce_in_ms=0"]
TOKEN_RING = 2**64

class Cassandra(Service):
    name = "cassandra"
    archive_store = True
    start_timeout = 180.0  # 15-25 s on 2 cores (first boot a few s more); more on a busy box
    stop_grace = 60.0  # SIGTERM runs Cassandra's drain (flushes memtables); usually a few seconds

    def port(self, s: Settings) -> int:
        return s.cassandra_port

    def lib(self, s: Settings) -> Path:
        return s.cache / "cassandra" / "lib"

    def install(self, s: Settings) -> None:
        maven_libs(CONF / "pom.xml", self.lib(s), self.name)

    def config_file(self, workdir: Path) -> Path:
        return workdir / "conf" / "cassandra.yaml"

    def enabled(self, s: Settings) -> bool:
        return not s.cluster

    def yaml_values(self, s: Settings) -> dict:
        return {"cluster_name": "flightdelay-local", "seeds": f"{s.host}:{s.cassandra_storage_port}",
                "initial_token": 0, "hinted_handoff": "false"}

    def prepare(self, s: Settings, workdir: Path) -> None:
        for sub in ("conf", "data", "commitlog", "saved_caches", "hints", "cdc_raw", "triggers", "logs"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        yaml = Template((CONF / "cassandra.yaml").read_text()).substitute(
            host=self.host(s), storage_port=s.cassandra_storage_port, native_port=s.cassandra_port,
            workdir=str(workdir.resolve()), **self.yaml_values(s))
        self.config_file(workdir).write_text(yaml)

    def jmx_port(self, s: Settings) -> int:
        return s.cassandra_jmx_port

    def node_opts(self) -> list[str]:
        return SINGLE_NODE_OPTS

    def command(self, s: Settings, workdir: Path) -> list[str]:
        lib = self.lib(s)
        jamm = sorted(lib.glob("jamm-*.jar"))
        if not jamm:
            raise StackError(f"cassandra: no jamm-*.jar in {lib}; remove {lib} and run `python -m infra install cassandra`")
        wd = workdir.resolve()
        return [
            *no_memory_lock(),
            java(s), *JVM_OPTS, *self.node_opts(),
            f"-javaagent:{jamm[-1]}",
            f"-XX:ErrorFile={wd / 'logs' / 'hs_err_pid%p.log'}",
            f"-Dcassandra.config={self.config_file(wd).as_uri()}",
            f"-Dcassandra.storagedir={wd}",
            f"-Dcassandra.logdir={wd / 'logs'}",
            f"-Dcassandra.triggers_dir={wd / 'triggers'}",
            f"-Dlogback.configurationFile={CONF / 'logback.xml'}",
            # Local-only JMX (for nodetool), bound to 127.0.0.1 by Cassandra itself.
            f"-Dcassandra.jmx.local.port={self.jmx_port(s)}",
            f"-Djava.rmi.server.hostname={s.host}",
            "-cp", f"{lib}/*", MAIN_CLASS,
        ]

    def env(self, s: Settings) -> dict[str, str]:
        return java_env(s)

    def probe(self, s: Settings) -> None:
        check_cassandra(s, timeout=3.0)

    def bootstrap(self, s: Settings) -> None:
        """The keyspace and prediction tables of flightdelay/stores/cassandra.cql (idempotent)."""
        try:
            with cassandra_store.quiet_driver():  # other nodes of a cluster may still be starting
                cassandra_store.apply_schema(s)
        except (ValueError, RuntimeError) as exc:
            raise StackError(f"cassandra: {exc}") from exc
        print(f"[cassandra] {cassandra_store.SCHEMA_FILE.name} applied to keyspace {s.cassandra_keyspace}", flush=True)


class CassandraNode(ClusterNode, Cassandra):
    """Node ``node`` of the FD_CLUSTER=1 cluster, on its own address ``host``: its own data,
    commit log and hints directories, the native and storage ports of every node; only its
    JMX port (bound to 127.0.0.1 whatever the node's address) is FD_CASSANDRA_JMX_PORT + 100 * node."""

    prefix = cluster = "cassandra"
    # A node restarted under load beside two others, three brokers, two DataNodes and the job (all
    # on 2 cores, the node at FD_STORE_NICE) took 174 s to open its native port (make test-cluster).
    start_timeout = 360.0

    def url(self, s: Settings) -> str:
        return f"{self._host}:{s.cassandra_port}"

    def yaml_values(self, s: Settings) -> dict:
        nodes = s.cassandra_nodes
        return {"cluster_name": "flightdelay-cluster",
                "seeds": ",".join(f"{h}:{s.cassandra_storage_port}" for h in nodes),
                "initial_token": -2**63 + (self.node - 1) * (TOKEN_RING // len(nodes)),
                "hinted_handoff": "true"}

    def jmx_port(self, s: Settings) -> int:
        return s.cassandra_jmx_port + 100 * self.node

    def node_opts(self) -> list[str]:
        return []

    def probe(self, s: Settings) -> None:
        check_cassandra_node(s, self._host, timeout=3.0)


def no_memory_lock() -> list[str]:
    """A command prefix that keeps Cassandra from locking all its memory in RAM.

    CassandraDaemon always calls mlockall(MCL_CURRENT). With CAP_IPC_LOCK (e.g. as root) that
    succeeds and faults in the whole committed heap and every other mapping at once (RSS and
    start-up time: docs/decisions.md). Without the capability the call fails with ENOMEM
    (one warning in the log), exactly as it does for an ordinary user. ``setpriv`` (util-linux)
    drops the capability (which needs CAP_SETPCAP) and then execs java, so the pid stays the
    server's pid.
    """
    setpriv = shutil.which("setpriv")
    caps = _effective_capabilities()
    if setpriv is None or not (caps >> CAP_IPC_LOCK) & 1 or not (caps >> CAP_SETPCAP) & 1:
        return []
    return [setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--"]


CAP_SETPCAP, CAP_IPC_LOCK = 8, 14  # linux/capability.h


def _effective_capabilities() -> int:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0
