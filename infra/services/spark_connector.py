"""Spark's Kafka connector jars, resolved offline into the cache for ``flightdelay.spark``.

Not a server: the launcher installs it before starting anything, so every SparkSession the
project builds (streaming job, tests) finds the jars without Ivy ever reaching the network.
"""
from __future__ import annotations

import re
from pathlib import Path

from flightdelay.config import REPO_ROOT, Settings
from infra.services.base import maven_libs

POM = REPO_ROOT / "infra" / "spark" / "pom.xml"
_VERSIONED = re.compile(r"^(?P<artifact>.+?)-\d+\.[\w.\-]*\.jar$")


def artifact_id(jar_name: str) -> str:
    match = _VERSIONED.match(jar_name)
    return match.group("artifact") if match else jar_name


def pyspark_jar_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def install_spark_connector(s: Settings) -> Path:
    """Resolve the connector, then drop every jar pyspark already ships (pyspark's version wins,
    two versions of one library on the classpath is how NoSuchMethodError happens)."""
    lib = s.cache / "spark-kafka" / "lib"
    marker = lib / ".complete"
    fresh = not marker.exists()
    maven_libs(POM, lib, "spark-kafka")
    if fresh or any(artifact_id(j.name) in _shipped() for j in lib.glob("*.jar")):
        shipped = _shipped()
        for jar in lib.glob("*.jar"):
            if artifact_id(jar.name) in shipped:
                jar.unlink()
    return lib


def _shipped() -> set[str]:
    return {artifact_id(j.name) for j in pyspark_jar_dir().glob("*.jar")}
