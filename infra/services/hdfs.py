"""HDFS: one NameNode and one DataNode in a single JVM, RPC on 8020 and WebHDFS on 9870; with
FD_CLUSTER=1 a NameNode and one DataNode per address of FD_HDFS_DATANODE_HOSTS, each a process
of its own (``hdfs-namenode``, ``hdfs-datanode-1`` ...), files written with FD_HDFS_REPLICATION
copies (one per DataNode, at most 3).

The server is ``org.apache.hadoop.test.MiniDFSClusterManager`` from the shaded
``hadoop-client-minicluster`` jar (Hadoop 3.5.0, the same client version pyspark 4.2.0 bundles):
a real NameNode and DataNode, without the Hadoop distribution tarball. Its storage lives in the
workdir (``FD_STATE_DIR/hdfs/data``) and is formatted on the first start only, so data survives a
restart. Every address is on ``Settings.host``; the DataNode registers under that address too,
so WebHDFS redirects (``Location`` of a CREATE/OPEN) stay on loopback.

The cluster's daemons are Hadoop's own ``NameNode`` and ``DataNode`` main classes from the same
jar, configured with ``-D`` options (no hdfs-site.xml). MiniDFSCluster would not do there: it
gives the NameNode the RPC address 127.0.0.1 whatever it binds to, and the NameNode hands that
address to the DataNodes' WebHDFS. On one machine every DataNode connects to the NameNode from
127.0.0.1 whatever address it listens on, and the NameNode keys DataNodes by that address and
their data port: each DataNode gets a data port of its own, and clients reach DataNodes by the
name they register (``dfs.datanode.hostname``, their own address), not by that address.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import check_hdfs_datanode
from flightdelay.stores import parquet
from infra.process import StackError, until
from infra.services.base import ClusterNode, Service, fingerprint, java, java_env, maven_libs

POM = REPO_ROOT / "infra" / "hdfs" / "pom.xml"
CONF_DIR = REPO_ROOT / "infra" / "hdfs" / "conf"  # log4j.properties
MAIN_CLASS = "org.apache.hadoop.test.MiniDFSClusterManager"
SHADED_JAR = "hadoop-client-minicluster-*.jar"
HEAP = "-Xmx768m"

# Hadoop 3.5 on Java 17 needs these; bin/hadoop adds them itself (HADOOP-19310), a raw `java` must.
JPMS_FLAGS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    *(f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in (
        "java.lang", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
        "java.util.concurrent", "java.util.zip", "sun.nio.ch", "sun.security.util", "sun.security.x509")),
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
]

# An HTTP client that never goes through a proxy from the environment: the stack is loopback only.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def lib_dir(s: Settings) -> Path:
    return s.cache / "hdfs" / "lib"


def store_uncompressed(jar: Path) -> None:
    """Rewrite ``jar`` in place with its entries stored, not deflated.

    At start-up Jersey finds the WebHDFS resources by streaming through every entry of the jar
    that holds their package, the 56 MB shaded minicluster jar; inflating it costs a third of the
    start-up CPU, every start. Done once, after the download.
    """
    tmp = jar.with_suffix(".stored.tmp")
    with zipfile.ZipFile(jar) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            out = copy.copy(info)
            out.compress_type = zipfile.ZIP_STORED
            zout.writestr(out, data)
    os.replace(tmp, jar)


def data_dir(workdir: Path) -> Path:
    return workdir / "data"


def is_formatted(workdir: Path) -> bool:
    """True once a NameNode storage directory exists (MiniDFSCluster names them name-<nn>-<n>)."""
    return any(data_dir(workdir).glob("name*/current/VERSION"))


def hadoop_conf(s: Settings, workdir: Path) -> dict[str, str]:
    """Configuration handed to the cluster with ``-D`` (MiniDFSCluster sets the storage dirs)."""
    return {
        "hdfs.minidfs.basedir": str(data_dir(workdir)),
        "hadoop.tmp.dir": str(workdir / "tmp"),
        "dfs.permissions.enabled": "false",
        "dfs.replication": str(s.dfs_replication),
        # Register the DataNode under the loopback address, not the machine's hostname: WebHDFS
        # redirects clients to the DataNode by the name it registered with.
        "dfs.datanode.hostname": s.host,
        "dfs.namenode.rpc-bind-host": s.host,
        "dfs.namenode.http-bind-host": s.host,
        "dfs.namenode.safemode.extension": "0",
        "dfs.client.block.write.replace-datanode-on-failure.policy": "NEVER",
    }


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with _http.open(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


def webhdfs_url(s: Settings, path: str, op: str, **params: str) -> str:
    query = urllib.parse.urlencode({"op": op, "user.name": s.hdfs_user, **params})
    return f"{s.webhdfs_url}/webhdfs/v1{urllib.parse.quote(path)}?{query}"


def namesystem_state(s: Settings) -> dict:
    url = f"{s.webhdfs_url}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
    beans = _get_json(url).get("beans") or []
    if not beans:
        raise StackError("hdfs: NameNode JMX has no FSNamesystemState bean yet")
    return beans[0]


class Hdfs(Service):
    name = "hdfs"
    archive_store = True
    start_timeout = 180.0
    stop_grace = 30.0

    def enabled(self, s: Settings) -> bool:
        return not s.cluster

    def port(self, s: Settings) -> int:
        return s.hdfs_rpc_port

    def url(self, s: Settings) -> str:
        return f"{s.hdfs_url} (WebHDFS {s.webhdfs_url})"

    def install(self, s: Settings) -> None:
        lib = maven_libs(POM, lib_dir(s), self.name)
        marker, stamp = lib / ".stored", fingerprint(POM)  # maven_libs wipes lib when the pom changes
        if marker.exists() and marker.read_text() == stamp:
            return
        for jar in lib.glob(SHADED_JAR):
            print(f"[{self.name}] storing {jar.name} uncompressed (faster start-up, first run only)", flush=True)
            store_uncompressed(jar)
        marker.write_text(stamp)

    def prepare(self, s: Settings, workdir: Path) -> None:
        data_dir(workdir).mkdir(parents=True, exist_ok=True)
        (workdir / "tmp").mkdir(exist_ok=True)
        (workdir / "ready.json").unlink(missing_ok=True)
        if not is_formatted(workdir):
            print(f"[{self.name}] first start: formatting {data_dir(workdir)}", flush=True)

    def command(self, s: Settings, workdir: Path) -> list[str]:
        cmd = [
            java(s), HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{CONF_DIR / 'log4j.properties'}",
            f"-Dtest.build.data={workdir / 'tmp'}",
            *JPMS_FLAGS,
            "-cp", f"{CONF_DIR}:{lib_dir(s)}/*",
            MAIN_CLASS,
            "-nnport", str(s.hdfs_rpc_port),
            "-httpport", str(s.hdfs_http_port),
            "-datanodes", "1",
            "-writeConfig", str(workdir / "hdfs-site.generated.xml"),
            "-writeDetails", str(workdir / "ready.json"),  # written once the cluster is active
        ]
        if not is_formatted(workdir):
            cmd.append("-format")
        for key, value in hadoop_conf(s, workdir).items():
            cmd += ["-D", f"{key}={value}"]
        return cmd

    def env(self, s: Settings) -> dict[str, str]:
        env = java_env(s)
        for var in ("HADOOP_CONF_DIR", "HADOOP_HOME", "HADOOP_USER_NAME"):
            env.pop(var, None)
        return env

    def probe(self, s: Settings) -> None:
        """Ready = a DataNode is live, safe mode is off and WebHDFS lists ``/``."""
        state = namesystem_state(s)
        if int(state.get("NumLiveDataNodes", 0)) < 1:
            raise StackError("hdfs: no live DataNode registered yet")
        if state.get("FSState") != "Operational":
            raise StackError(f"hdfs: NameNode is in {state.get('FSState')}")
        listing = _get_json(webhdfs_url(s, "/", "LISTSTATUS"))
        if "FileStatuses" not in listing:
            raise StackError(f"hdfs: unexpected LISTSTATUS answer {listing}")

    def bootstrap(self, s: Settings) -> None:
        make_archive_dir(s, self.name)


def make_archive_dir(s: Settings, name: str) -> None:
    """Create the prediction archive directory (flightdelay.stores.parquet; idempotent)."""
    from hdfs import HdfsError

    try:
        parquet.ensure_archive_dir(s)
    except HdfsError as exc:
        raise StackError(f"hdfs: MKDIRS {s.prediction_archive_path} failed: {exc}") from exc
    print(f"[{name}] archive directory {s.hdfs_url}{s.prediction_archive_path} ready", flush=True)


# -- FD_CLUSTER=1: a NameNode and DataNodes, one process each ----------------------------------
def daemon_command(s: Settings, heap: str, main_class: str, conf: dict[str, str], *args: str) -> list[str]:
    cmd = [java(s), heap, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true",
           "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{CONF_DIR / 'log4j.properties'}", *JPMS_FLAGS,
           "-cp", f"{CONF_DIR}:{lib_dir(s)}/*", main_class]
    for key, value in conf.items():
        cmd += ["-D", f"{key}={value}"]
    return cmd + list(args)


def cluster_conf(s: Settings, workdir: Path) -> dict[str, str]:
    """What the NameNode and every DataNode (and the DataNodes' own clients: WebHDFS writes
    through them) share."""
    return {
        "fs.defaultFS": s.hdfs_url,
        "hadoop.tmp.dir": str(workdir / "tmp"),
        "dfs.permissions.enabled": "false",
        "dfs.replication": str(s.dfs_replication),
        "dfs.client.use.datanode.hostname": "true",
        "dfs.datanode.use.datanode.hostname": "true",
        # With one DataNode of two left, a write goes on with one copy; the NameNode adds the
        # second when the other is back.
        "dfs.client.block.write.replace-datanode-on-failure.policy": "NEVER",
    }


class HdfsNameNode(Hdfs):
    """The NameNode of the FD_CLUSTER=1 cluster on FD_HDFS_HOST, RPC and WebHDFS on the usual
    ports. A DataNode that stops heart-beating is stale (no new blocks, read last) after 10 s
    and dead (its blocks copied again elsewhere) after 60 s, not 10.5 minutes."""

    name = "hdfs-namenode"
    cluster = "hdfs"
    HEAP = "-Xmx384m"

    def enabled(self, s: Settings) -> bool:
        return bool(s.cluster)

    def prepare(self, s: Settings, workdir: Path) -> None:
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        if (workdir / "name" / "current" / "VERSION").exists():
            return
        print(f"[{self.name}] first start: formatting {workdir / 'name'}", flush=True)
        cmd = daemon_command(s, self.HEAP, NAMENODE_CLASS, self.conf(s, workdir), "-format", "-nonInteractive", "-force")
        result = subprocess.run(cmd, env=self.env(s), capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise StackError(f"{self.name}: formatting failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")

    def conf(self, s: Settings, workdir: Path) -> dict[str, str]:
        return {
            **cluster_conf(s, workdir),
            "dfs.namenode.name.dir": (workdir / "name").as_uri(),
            "dfs.namenode.rpc-address": f"{s.hdfs_host}:{s.hdfs_rpc_port}",
            "dfs.namenode.http-address": f"{s.hdfs_host}:{s.hdfs_http_port}",
            "dfs.namenode.safemode.extension": "0",
            "dfs.namenode.datanode.registration.ip-hostname-check": "false",
            "dfs.namenode.heartbeat.recheck-interval": "15000",
            "dfs.namenode.stale.datanode.interval": "10000",
            "dfs.namenode.avoid.write.stale.datanode": "true",
            "dfs.namenode.avoid.read.stale.datanode": "true",
        }

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return daemon_command(s, self.HEAP, NAMENODE_CLASS, self.conf(s, workdir))

    def probe(self, s: Settings) -> None:
        """Answers (its DataNodes are services of their own; it leaves safe mode once they report)."""
        namesystem_state(s)
        listing = _get_json(webhdfs_url(s, "/", "LISTSTATUS"))
        if "FileStatuses" not in listing:
            raise StackError(f"hdfs: unexpected LISTSTATUS answer {listing}")

    def bootstrap(self, s: Settings) -> None:
        """Nothing yet: the archive directory is made once a DataNode reported (safe mode)."""


class HdfsDataNode(ClusterNode, Service):
    """A DataNode of the FD_CLUSTER=1 cluster."""

    cluster = "hdfs"
    prefix = "hdfs-datanode"
    archive_store = True
    start_timeout = 120.0
    stop_grace = 30.0
    HEAP = "-Xmx256m"

    def port(self, s: Settings) -> int:
        return s.hdfs_datanode_port + 10 * (self.node - 1)

    def url(self, s: Settings) -> str:
        return f"{self._host}:{self.port(s)} (HTTP http://{self._host}:{s.hdfs_datanode_http_port})"

    def install(self, s: Settings) -> None:
        Hdfs().install(s)

    def prepare(self, s: Settings, workdir: Path) -> None:
        for sub in ("data", "tmp"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)

    def command(self, s: Settings, workdir: Path) -> list[str]:
        return daemon_command(s, self.HEAP, DATANODE_CLASS, {
            **cluster_conf(s, workdir),
            "dfs.datanode.data.dir": (workdir / "data").as_uri(),
            "dfs.datanode.hostname": self._host,
            "dfs.datanode.address": f"{self._host}:{self.port(s)}",
            "dfs.datanode.http.address": f"{self._host}:{s.hdfs_datanode_http_port}",
            "dfs.datanode.ipc.address": f"{self._host}:{s.hdfs_datanode_ipc_port}",
        })

    def env(self, s: Settings) -> dict[str, str]:
        return Hdfs().env(s)

    def probe(self, s: Settings) -> None:
        check_hdfs_datanode(s, self._host)

    def bootstrap(self, s: Settings) -> None:
        """The archive directory, once the NameNode has left safe mode (the DataNodes reported
        the blocks it knows of)."""
        until(lambda: namesystem_state(s).get("FSState") == "Operational", 120, "the NameNode to leave safe mode")
        make_archive_dir(s, self.name)


NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"
