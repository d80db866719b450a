"""What every server module provides, and the fetch helpers they share."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings
from infra.process import StackError

log = logging.getLogger(__name__)

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


class Service:
    """A server the platform needs. Subclasses fill in the hooks; the launcher drives them."""

    name: str = ""
    start_timeout: float = 120.0
    stop_grace: float = 30.0
    # A store only the archive queries write to: it runs at FD_STORE_NICE so that, on one
    # shared machine, a burst of archiving never takes CPU from the path that answers users.
    archive_store: bool = False
    # Nothing later in the start order needs it: `make up` starts the next servers meanwhile.
    start_in_background: bool = False
    # A node of a cluster (FD_CLUSTER=1): the registry name of the server it is a node of (its
    # place in the start order) and its number there.
    cluster: str = ""
    node: int = 0
    # No node of the cluster answers before a majority of them runs (Kafka's controller quorum):
    # `up` starts them all before waiting for any.
    quorum: bool = False

    def enabled(self, s: Settings) -> bool:
        """Part of ``make up`` with these settings (a service named explicitly always is)."""
        return True

    def host(self, s: Settings) -> str:
        """The address it listens on."""
        return s.host

    def nice(self, s: Settings) -> int:
        return s.store_nice if self.archive_store else 0

    def port(self, s: Settings) -> int:
        raise NotImplementedError

    def url(self, s: Settings) -> str:
        return f"{s.host}:{self.port(s)}"

    def install(self, s: Settings) -> None:
        """Fetch what the server needs into the cache; fast no-op when already there."""

    def prepare(self, s: Settings, workdir: Path) -> None:
        """Write config files / format storage in ``workdir`` before each start."""

    def command(self, s: Settings, workdir: Path) -> list[str]:
        raise NotImplementedError

    def env(self, s: Settings) -> dict[str, str]:
        return dict(os.environ)

    def probe(self, s: Settings) -> None:
        """Raise unless the server answers a real protocol request."""
        raise NotImplementedError

    def bootstrap(self, s: Settings) -> None:
        """Create topics / keyspaces / collections the platform uses; idempotent."""


class ClusterNode:
    """Node ``node`` of an FD_CLUSTER=1 cluster, on its own loopback address ``host``: listed
    first among the bases of a node class (``class KafkaNode(ClusterNode, Kafka)``), so that its
    name, address and switch win over the single server's."""

    prefix = ""  # the node's name is <prefix>-<node>

    def __init__(self, node: int, host: str):
        self.node, self._host = node, host
        self.name = f"{self.prefix}-{node}"

    def enabled(self, s: Settings) -> bool:
        return bool(s.cluster)

    def host(self, s: Settings) -> str:
        return self._host


def java(s: Settings) -> str:
    return str(Path(s.java17_home) / "bin" / "java")


def java_env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["JAVA_HOME"] = s.java17_home
    return env


def fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.read_bytes())
    return digest.hexdigest()[:16]


def maven_libs(pom: Path, dest: Path, name: str) -> Path:
    """Resolve the runtime dependencies of ``pom`` into ``dest`` (once per pom content)."""
    marker = dest / ".complete"
    stamp = fingerprint(pom)
    if marker.exists() and marker.read_text() == stamp:
        return dest
    if shutil.which("mvn") is None:
        raise StackError(f"{name}: Maven (mvn) is needed to fetch jars from Maven Central; apt-get install maven")
    print(f"[{name}] fetching jars from Maven Central into {dest} (first run only)...", flush=True)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    cmd = ["mvn", "-B", "-q", "-f", str(pom), f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={dest}"]
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"{name}: Maven could not fetch the jars of {pom}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    jars = list(dest.glob("*.jar"))
    print(f"[{name}] {len(jars)} jars, {sum(j.stat().st_size for j in jars) / 1e6:.0f} MB", flush=True)
    marker.write_text(stamp)
    return dest
