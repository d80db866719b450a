"""docker-compose.yml against the code: it validates, its containers use only real settings, every
server the platform connects to is there on the port Settings expects, the images are the
versions the local stack pins, the Dockerfiles copy what exists, docs/deployment.md describes the file.

No Docker engine exists on the project's machines: these checks are what can be verified here.
`docker-compose` (Debian's 1.29.2, installed by `make docker-compose`, a prerequisite of
`make test`) validates the file; a missing tool is a failure, not a skip.
"""
import dataclasses
import re
import shutil
import subprocess

import pytest
import yaml

from flightdelay.config import REPO_ROOT, SERVER_HOSTS, Settings, env_name, load_settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
DEPLOYMENT_DOC = REPO_ROOT / "docs" / "deployment.md"
FIELDS = {env_name(f.name) for f in dataclasses.fields(Settings)}

# The servers each host setting names, and the ports clients use there (a list: every node).
PORTS_OF_HOST = {
    "kafka_brokers": ("kafka_port",),
    "mongo_host": ("mongo_port",),
    "cassandra_nodes": ("cassandra_port",),
    "hdfs_host": ("hdfs_rpc_port", "hdfs_http_port"),
    "hdfs_datanodes": ("hdfs_datanode_port", "hdfs_datanode_http_port"),
    "mlflow_host": ("mlflow_port",),
    "nifi_host": ("nifi_port",),
    "airflow_host": ("airflow_port",),
    "spark_master_host": ("spark_master_port", "spark_master_ui_port"),
    "spark_workers": ("spark_worker_ui_port",),
    "streaming_host": ("spark_ui_port",),
}
# The host settings a list of nodes replaces (the clusters).
LISTED = {"kafka_host": "kafka_hosts", "cassandra_host": "cassandra_hosts"}
STORES = ("kafka-1", "kafka-2", "kafka-3", "mongo", "cassandra-1", "cassandra-2", "cassandra-3", "hdfs-namenode",
          "hdfs-datanode-1", "hdfs-datanode-2", "mlflow")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def platform_services(services):
    """The containers running the project's own code (its images, configured by FD_*)."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def env_of(svc) -> dict[str, str]:
    env = svc.get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_docker_compose_validates_the_file():
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: `make docker-compose` installs Debian's package"
    result = subprocess.run([tool, "-f", str(COMPOSE), "config", "-q"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_validator_rejects_what_it_must(tmp_path):
    """The check above can fail: 1.29 rejects keys it does not know (e.g. healthcheck.start_interval)."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: `make docker-compose` installs Debian's package"
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  a:\n    image: busybox\n    healthcheck:\n      test: [CMD, 'true']\n"
                   "      start_interval: 5s\n")
    result = subprocess.run([tool, "-f", str(bad), "config", "-q"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0


def test_every_fd_variable_a_container_sets_is_a_setting(services):
    for name, svc in services.items():
        unknown = {k for k in env_of(svc) if k.startswith("FD_")} - FIELDS
        assert not unknown, f"{name} sets {unknown}, which no Settings field reads"
    for dockerfile in (REPO_ROOT / "docker").glob("*.Dockerfile"):
        assigned = set(re.findall(r"\b(FD_[A-Z0-9_]+)=", dockerfile.read_text()))
        assert assigned <= FIELDS, f"{dockerfile.name}: {assigned - FIELDS}"


def test_every_server_the_platform_connects_to_is_there_on_the_settings_port(services):
    for name, svc in platform_services(services).items():
        s = load_settings(environ=env_of(svc))
        for host_field, port_fields in PORTS_OF_HOST.items():
            targets = getattr(s, host_field)
            for target in targets if isinstance(targets, list) else [targets]:
                assert target in services, f"{name}: {host_field} names {target}, no service of the file"
                exposed = {int(p) for p in services[target].get("expose", [])}
                for port_field in port_fields:
                    assert getattr(s, port_field) in exposed, \
                        f"{name} expects {target} on {env_name(port_field)}={getattr(s, port_field)}; it exposes {exposed}"


def test_the_platform_containers_name_every_server(services):
    """No platform container falls back to FD_HOST for a server (0.0.0.0 in the image)."""
    for name, svc in platform_services(services).items():
        missing = [env_name(h) for h in SERVER_HOSTS if env_name(LISTED.get(h, h)) not in env_of(svc)]
        assert not missing, f"{name} does not set {missing}"


def test_compose_runs_the_clusters_make_test_cluster_tests(services):
    """The same nodes, copies and consistency as FD_CLUSTER=1, named by the same settings."""
    s = load_settings(environ=env_of(services["webapp"]))
    local = load_settings(environ={"FD_CLUSTER": "1"})
    assert s.kafka_brokers == ["kafka-1", "kafka-2", "kafka-3"] and len(local.kafka_brokers) == 3
    assert (s.topic_replication, s.topic_min_insync) == (local.topic_replication, local.topic_min_insync) == (3, 2)
    assert len(s.cassandra_nodes) == len(local.cassandra_nodes) == 3
    assert s.keyspace_replication == local.keyspace_replication == 3
    assert (s.cassandra_write_consistency, s.cassandra_read_consistency) == ("QUORUM", "QUORUM")
    assert len(s.hdfs_datanodes) == len(local.hdfs_datanodes) == 2 and s.dfs_replication == local.dfs_replication == 2
    assert len(s.spark_workers) == len(local.spark_workers) == 2
    voters = {env_of(services[b])["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in s.kafka_brokers}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert {env_of(services[b])["KAFKA_NODE_ID"] for b in s.kafka_brokers} == {"1", "2", "3"}
    for b in s.kafka_brokers:
        env = env_of(services[b])
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    hadoop = env_of(services["hdfs-namenode"])
    assert hadoop["HDFS-SITE.XML_dfs.replication"] == str(s.dfs_replication)
    for dn in s.hdfs_datanodes:
        assert env_of(services[dn])["HDFS-SITE.XML_dfs.datanode.hostname"] == dn


def test_the_streaming_job_runs_on_the_spark_cluster(services):
    s = load_settings(environ=env_of(services["streaming"]))
    assert s.spark_master_url == "spark://spark-master:7077"
    assert s.spark_driver_host == "streaming" and s.spark_ui_url == "http://streaming:4040"
    assert "spark-master" in services
    for worker in s.spark_workers:
        assert "spark://spark-master:7077" in services[worker]["command"] and worker in services[worker]["command"]
        assert set(services["streaming"]["depends_on"]) >= {worker}


def test_servers_have_healthchecks_and_dependents_wait_for_them(services):
    for name, svc in services.items():
        one_shot = svc.get("restart") == "no"
        assert one_shot or "healthcheck" in svc, f"{name} has no healthcheck"
        assert "start_interval" not in svc.get("healthcheck", {}), "Debian's docker-compose 1.29 rejects it"
        for dep, how in (svc.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if services[dep].get("restart") == "no" else "service_healthy"
            assert how == {"condition": expected}, f"{name} -> {dep}: {how}"


def test_every_store_keeps_its_data_in_a_named_volume(compose, services):
    for name in STORES:
        named = [v.split(":")[0] for v in services[name].get("volumes", [])]
        assert any(v in compose["volumes"] for v in named), f"{name} has no named volume"


def test_the_init_service_runs_the_launchers_bootstrap(services):
    assert services["init"]["command"] == ["python", "-m", "infra", "bootstrap"]
    waits_for = set(services["init"]["depends_on"])
    assert set(STORES) - {"hdfs-namenode"} <= waits_for


def pinned(path, pattern):
    return re.search(pattern, (REPO_ROOT / path).read_text()).group(1)


def tag(services, name):
    return services[name]["image"].rsplit(":", 1)[1]


def test_images_are_the_versions_the_local_stack_pins(services):
    assert tag(services, "kafka-1") == pinned("infra/kafka/pom.xml", r"<artifactId>kafka_2.13</artifactId>\s*<version>([^<]+)")
    assert tag(services, "cassandra-1") == pinned("infra/cassandra/pom.xml",
                                                  r"<artifactId>cassandra-all</artifactId>\s*<version>([^<]+)")
    spark = pinned("requirements.txt", r"(?m)^pyspark==(\S+)$")
    assert tag(services, "spark-master").startswith(spark + "-")
    for group in (("kafka-1", "kafka-2", "kafka-3"), ("cassandra-1", "cassandra-2", "cassandra-3"),
                  ("spark-master", "spark-worker-1", "spark-worker-2"), ("hdfs-namenode", "hdfs-datanode-1", "hdfs-datanode-2")):
        assert len({services[name]["image"] for name in group}) == 1, group
    assert tag(services, "nifi") == pinned("infra/services/nifi.py", r'NIFI_VERSION = "([^"]+)"')
    assert tag(services, "mlflow") == "v" + pinned("requirements.txt", r"(?m)^mlflow==(\S+)$")
    airflow = pinned("infra/services/airflow.py", r'AIRFLOW_VERSION = "([^"]+)"')
    assert f"FROM apache/airflow:{airflow}-python3.11" in (REPO_ROOT / "docker/airflow.Dockerfile").read_text()
    # apache/hadoop has no image of the exact client version: the same major line, wire-compatible.
    hadoop = pinned("infra/hdfs/pom.xml", r"<hadoop.version>([^<]+)")
    assert tag(services, "hdfs-namenode").split(".")[0] == hadoop.split(".")[0]


def copy_sources(dockerfile):
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            args = [w for w in words[1:] if not w.startswith("--")]
            yield from args[:-1]


def test_dockerfiles_copy_what_exists_and_is_not_ignored(services):
    ignored = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    dockerfiles = {REPO_ROOT / svc["build"]["dockerfile"] for svc in services.values() if "build" in svc}
    assert dockerfiles == set((REPO_ROOT / "docker").glob("*.Dockerfile"))
    for dockerfile in dockerfiles:
        sources = list(copy_sources(dockerfile))
        assert sources, dockerfile
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
            assert source.rstrip("/") not in ignored, f"{dockerfile.name}: COPY {source} is in .dockerignore"


def documented_table():
    """The service table of the "Docker Compose" section of docs/deployment.md:
    {service: (image, container ports, host ports)}."""
    text = DEPLOYMENT_DOC.read_text()
    section = text.split("\n## Docker Compose\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] and not set(cells[0]) <= set("-:") and cells[0] != "Service":
            ports = lambda cell: {int(p) for p in re.findall(r"\d+", cell)}  # noqa: E731
            rows[cells[0]] = (cells[1], ports(cells[2]), ports(cells[3]))
    return rows


def test_the_documented_table_matches_the_file(services):
    table = documented_table()
    assert set(table) == set(services)
    for name, svc in services.items():
        image, exposed, published = table[name]
        expected_image = svc["image"] if "build" not in svc else f"built: {svc['build']['dockerfile']}"
        assert image == expected_image, name
        assert exposed == {int(p) for p in svc.get("expose", [])}, name
        assert published == {int(p.split(":")[0]) for p in svc.get("ports", [])}, name


def test_customary_ports_are_published(services):
    published = {int(p.split(":")[0]) for svc in services.values() for p in svc.get("ports", [])}
    assert {5001, 9870, 8443, 8080, 8180, 5000, 4040} <= published


def test_the_nifi_flow_action_writes_what_the_launcher_deploys(tmp_path):
    """The compose nifi-flow container runs `python -m infra nifi-flow FILE`: the same flow the
    local launcher renders, with the settings of the container (here: a Kafka named kafka)."""
    import gzip
    import json

    from infra import launcher
    from nifi import deploy

    s = load_settings(environ={"FD_KAFKA_HOSTS": "kafka-1,kafka-2", "FD_NIFI_ARCHIVE_DIR": "/nifi-archive"})
    target = tmp_path / "flow.json.gz"
    assert launcher.write_nifi_flow(s, [str(target)]) == 0
    written = json.loads(gzip.decompress(target.read_bytes()))
    assert written == deploy.render_dataflow(s)
    values = {p["name"]: p["value"] for ctx in written["parameterContexts"] for p in ctx["parameters"]}
    assert values["kafka.bootstrap.servers"] == "kafka-1:9092,kafka-2:9092" and values["archive.directory"] == "/nifi-archive"
