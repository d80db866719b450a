"""Apache NiFi 1.18.0 on Java 17: the prediction archive (Kafka -> 10-second .txt files).

Maven Central serves NiFi's NARs and jars but no binary distribution, so the runtime is
assembled from them (infra/nifi/*pom.xml), and the Kafka NAR, which is not served at all, is built
once from the ``org.apache.nifi:nifi:1.18.0:zip:source-release`` artifact that Central does serve.
Both go to FD_CACHE_DIR. The process started and tracked is NiFi's bootstrap (RunNiFi ``run``):
it starts NiFi as its child in the same process group, restarts it if it dies, and on SIGTERM
shuts it down gracefully, so the launcher's group SIGTERM is a clean stop.
"""
from __future__ import annotations

import fcntl
import logging
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings
from flightdelay.health import check_nifi
from infra.process import StackError
from infra.services.base import MAVEN_DEPENDENCY_PLUGIN, Service, java, java_env, maven_libs

log = logging.getLogger(__name__)

NIFI_VERSION = "1.18.0"
POMS = REPO_ROOT / "infra" / "nifi"
KAFKA_NAR = f"nifi-kafka-2-6-nar-{NIFI_VERSION}.nar"
KAFKA_NAR_MODULE = "nifi-nar-bundles/nifi-kafka-bundle/nifi-kafka-2-6-nar"
SOURCE_RELEASE = f"org.apache.nifi:nifi:{NIFI_VERSION}:zip:source-release"
# Only the NAR and the modules it needs (-am); tests, checks and docs are not needed to run it.
BUILD_FLAGS = ["-DskipTests", "-Dmaven.test.skip=true", "-Dcheckstyle.skip", "-Drat.skip", "-Denforcer.skip",
               "-Dspotbugs.skip", "-Dmaven.javadoc.skip", "-Dmaven.source.skip"]


def nifi_home(s: Settings) -> Path:
    return s.cache / "nifi" / NIFI_VERSION


def lib_dir(s: Settings) -> Path:
    return nifi_home(s) / "lib"


def bootstrap_dir(s: Settings) -> Path:
    # NiFi itself reads "lib/bootstrap" relative to its working directory: the layout of the bin zip.
    return lib_dir(s) / "bootstrap"


def kafka_nar_dir(s: Settings) -> Path:
    return nifi_home(s) / "kafka"


class NiFi(Service):
    name = "nifi"
    start_timeout = 300.0  # first start unpacks ~220 MB of NARs on a shared 2-core machine
    stop_grace = 60.0      # the bootstrap gives NiFi 20 s (graceful.shutdown.seconds), then kills it
    # Off the users' path (it archives what the job already answered), so it yields CPU first.
    archive_store = True
    start_in_background = True  # its ~40 s start-up overlaps the other servers' in `make up`

    def port(self, s: Settings) -> int:
        return s.nifi_port

    def url(self, s: Settings) -> str:
        return f"{s.nifi_url}/nifi"

    def install(self, s: Settings) -> None:
        # lib/ first: re-fetching it clears lib/java11 and lib/bootstrap, which are fetched next.
        maven_libs(POMS / "pom.xml", lib_dir(s), self.name)
        maven_libs(POMS / "java11" / "pom.xml", lib_dir(s) / "java11", self.name)
        maven_libs(POMS / "bootstrap" / "pom.xml", bootstrap_dir(s), self.name)
        build_kafka_nar(s, kafka_nar_dir(s))

    def prepare(self, s: Settings, workdir: Path) -> None:
        from nifi import deploy

        link = workdir / "lib"  # NiFi's working directory must have lib/ (it opens lib/bootstrap)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(lib_dir(s), target_is_directory=True)
        deploy.write_conf(s, workdir, lib=lib_dir(s), extensions=kafka_nar_dir(s), java=java(s))
        deploy.write_flow(s, workdir / "conf" / "flow.json.gz")
        # The bootstrap's status file of a NiFi that was killed would make it look for that one.
        shutil.rmtree(workdir / "run", ignore_errors=True)
        s.nifi_archive.mkdir(parents=True, exist_ok=True)

    def command(self, s: Settings, workdir: Path) -> list[str]:
        conf = workdir / "conf"
        return [java(s), "-Xms32m", "-Xmx48m", "-cp", f"{conf}:{bootstrap_dir(s)}/*",
                f"-Dorg.apache.nifi.bootstrap.config.file={conf / 'bootstrap.conf'}",
                f"-Dorg.apache.nifi.bootstrap.config.log.dir={s.state / 'logs'}",
                f"-Dorg.apache.nifi.bootstrap.config.pid.dir={workdir / 'run'}",
                "org.apache.nifi.bootstrap.RunNiFi", "run"]

    def env(self, s: Settings) -> dict[str, str]:
        return java_env(s)

    def probe(self, s: Settings) -> None:
        check_nifi(s)

    def bootstrap(self, s: Settings) -> None:
        """The REST API answers before the flow has started; wait until every processor of the
        deployed flow runs (an invalid processor, e.g. a missing NAR, fails here, not silently)."""
        from nifi import deploy

        deploy.wait_until_running(s, timeout=120.0)


def build_kafka_nar(s: Settings, dest: Path) -> Path:
    """Build ``nifi-kafka-2-6-nar`` from NiFi's source release (Maven Central) once; cached."""
    nar = dest / KAFKA_NAR
    if nar.exists():
        return nar
    if shutil.which("mvn") is None:
        raise StackError("nifi: Maven (mvn) is needed to build the Kafka NAR; apt-get install maven")
    work = s.cache / "nifi" / "build"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make up` on the same cache waits for the first build
        if nar.exists():
            return nar
        began = time.monotonic()
        print(f"[nifi] building {KAFKA_NAR} from the NiFi {NIFI_VERSION} source release "
              f"(first run only, 5-10 min on 2 cores); log {work / 'build.log'}", flush=True)
        tree = unpack_source_release(work)
        module = tree / KAFKA_NAR_MODULE
        run_reactor_build(s, tree, work / "build.log")
        built = module / "target" / KAFKA_NAR
        if not built.exists():
            raise StackError(f"nifi: the build finished without {built}; see {work / 'build.log'}")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dest / (KAFKA_NAR + ".part"))
        (dest / (KAFKA_NAR + ".part")).rename(nar)
        shutil.rmtree(tree, ignore_errors=True)  # ~600 MB of sources and targets; the NAR is all we keep
        print(f"[nifi] built {nar} ({nar.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - began:.0f} s",
              flush=True)
    return nar


def unpack_source_release(work: Path) -> Path:
    zipped = work / f"nifi-{NIFI_VERSION}-source-release.zip"
    if not zipped.exists():
        cmd = ["mvn", "-B", "-q", f"{MAVEN_DEPENDENCY_PLUGIN}:copy", f"-Dartifact={SOURCE_RELEASE}",
               f"-DoutputDirectory={work}"]
        result = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"nifi: could not fetch {SOURCE_RELEASE}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    tree = work / f"nifi-{NIFI_VERSION}"
    shutil.rmtree(tree, ignore_errors=True)
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(work)
    return tree


def run_reactor_build(s: Settings, tree: Path, log_path: Path) -> None:
    """``mvn -pl <kafka nar> -am package``, one progress line per reactor module."""
    cmd = ["mvn", "-B", "-pl", KAFKA_NAR_MODULE, "-am", *BUILD_FLAGS, "package"]
    building = re.compile(r"\[INFO\] Building (\S+) \S+\s+\[(\d+)/(\d+)\]")
    env = {**java_env(s), "MAVEN_OPTS": "-Xmx1g"}
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            out.write(line)
            match = building.search(line)
            if match:
                print(f"[nifi] build {match.group(2)}/{match.group(3)} {match.group(1)}", flush=True)
        code = proc.wait()
    if code != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise StackError(f"nifi: building {KAFKA_NAR} failed (exit {code}); see {log_path}\n{tail}")

