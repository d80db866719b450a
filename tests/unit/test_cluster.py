"""FD_CLUSTER=1 without servers: the settings every client reads (brokers, contact points,
replication, consistency), the nodes the launcher runs and in which order, and what each node is
configured with (addresses, ports, tokens, quorum)."""
from pathlib import Path

import pytest

from flightdelay import kafka
from flightdelay.config import load_settings
from flightdelay.stores import cassandra
from infra import launcher
from infra.services import all_services, by_name, cluster_nodes

CLUSTER = {"FD_CLUSTER": "1"}


def test_the_single_node_default_is_unchanged():
    s = load_settings(environ={})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert (s.topic_replication, s.topic_min_insync) == (1, 1)
    assert s.cassandra_nodes == ["127.0.0.1"] and s.keyspace_replication == 1
    assert s.hdfs_datanodes == [] and s.dfs_replication == 1 and s.hdfs_url == "hdfs://127.0.0.1:8020"
    assert not s.spark_standalone and s.spark_master_url == "local[4]"
    assert s.checkpoints == s.state / "spark" / "checkpoints"
    names = [svc.name for svc in all_services(s)]
    assert {"kafka", "cassandra", "hdfs"} <= set(names)
    assert not [n for n in names if n.startswith(("kafka-", "cassandra-", "hdfs-", "spark-"))]


def test_cluster_mode_puts_every_node_on_its_own_loopback_address():
    s = load_settings(environ=CLUSTER)
    assert s.kafka_bootstrap == "127.0.0.11:9092,127.0.0.12:9092,127.0.0.13:9092"
    assert (s.topic_replication, s.topic_min_insync) == (3, 2)
    assert s.cassandra_nodes == ["127.0.0.21", "127.0.0.22", "127.0.0.23"] and s.keyspace_replication == 3
    assert s.hdfs_url == "hdfs://127.0.0.30:8020" and s.webhdfs_url == "http://127.0.0.30:9870"
    assert s.hdfs_datanodes == ["127.0.0.31", "127.0.0.32"] and s.dfs_replication == 2
    assert s.spark_master_url == "spark://127.0.0.40:7077" and s.spark_workers == ["127.0.0.41", "127.0.0.42"]
    # The job's checkpoints hold offsets of other topics than the single broker's.
    assert s.checkpoints != load_settings(environ={}).checkpoints
    hosts = [*s.kafka_brokers, *s.cassandra_nodes, s.hdfs_host, *s.hdfs_datanodes, s.spark_master_host, *s.spark_workers]
    assert len(set(hosts)) == len(hosts) and all(h.startswith("127.") for h in hosts) and s.host not in hosts


def test_lists_and_factors_are_settings_of_their_own():
    """What docker-compose sets: its own host names, no FD_CLUSTER (no local nodes to run)."""
    s = load_settings(environ={"FD_KAFKA_HOSTS": "kafka-1,kafka-2, kafka-3", "FD_CASSANDRA_HOSTS": "c1,c2",
                               "FD_KAFKA_MIN_INSYNC_REPLICAS": "1", "FD_CASSANDRA_WRITE_CONSISTENCY": "ONE"})
    assert s.kafka_bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert (s.topic_replication, s.topic_min_insync) == (3, 1)
    assert s.keyspace_replication == 2 and s.cassandra_write_consistency == "ONE"
    assert load_settings(environ={**CLUSTER, "FD_KAFKA_REPLICATION": "2"}).topic_min_insync == 1


def test_every_producer_writes_with_acks_all_and_idempotence():
    s = load_settings(environ=CLUSTER)
    config = kafka.producer_config(s, {"linger.ms": 5})
    assert config["acks"] == "all" and config["enable.idempotence"] is True and config["linger.ms"] == 5
    assert config["bootstrap.servers"] == s.kafka_bootstrap
    with pytest.raises(ValueError, match="acks"):
        kafka.producer_config(s, {"acks": "1"})
    with pytest.raises(ValueError, match="idempotence"):
        kafka.producer_config(s, {"enable.idempotence": False})
    sink = kafka.spark_sink_options(s)
    assert sink["kafka.acks"] == "all" and sink["kafka.enable.idempotence"] == "true"
    assert sink["kafka.bootstrap.servers"] == s.kafka_bootstrap
    assert "kafka.acks" not in kafka.spark_options(s)  # the source's consumers would warn about it


def test_the_launcher_runs_the_nodes_instead_of_the_single_servers_in_start_order():
    s = load_settings(environ=CLUSTER)
    names = [svc.name for svc in all_services(s)]
    assert not {"kafka", "cassandra", "hdfs", "spark-worker"} & set(names)
    assert names.index("kafka-1") < names.index("kafka-3") < names.index("hdfs-namenode") \
        < names.index("hdfs-datanode-1") < names.index("hdfs-datanode-2") < names.index("cassandra-1") \
        < names.index("spark-master") < names.index("spark-worker-1") < names.index("spark-worker-2") \
        < names.index("streaming")
    # `down` (no settings) covers single servers and nodes alike; the name of a clustered
    # server means its nodes in cluster mode, a node's name that node.
    everything = {svc.name for svc in all_services()}
    assert {"kafka", "kafka-2", "cassandra-3", "hdfs", "hdfs-datanode-2", "spark-worker", "spark-worker-2"} <= everything
    assert [svc.name for svc in by_name(["kafka"], s)] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [svc.name for svc in by_name(["kafka"], load_settings(environ={}))] == ["kafka"]
    assert [svc.name for svc in by_name(["cassandra-2"], load_settings(environ={}))] == ["cassandra-2"]
    with pytest.raises(SystemExit):
        by_name(["kafka-9"], s)


def test_a_quorum_starts_together_then_is_waited_for(monkeypatch):
    s = load_settings(environ=CLUSTER)
    calls = []
    monkeypatch.setattr(launcher, "start", lambda s, svc, wait=True: calls.append(("start", svc.name, wait)) or True)
    monkeypatch.setattr(launcher, "finish_start", lambda s, svc, began=None: calls.append(("ready", svc.name)))
    monkeypatch.setattr(launcher, "is_up", lambda s, svc: False)
    launcher.up(s, by_name(["kafka", "cassandra"], s))
    assert calls == [("start", "kafka-1", False), ("start", "kafka-2", False), ("start", "kafka-3", False),
                     ("ready", "kafka-1"), ("ready", "kafka-2"), ("ready", "kafka-3"),
                     ("start", "cassandra-1", True), ("start", "cassandra-2", True), ("start", "cassandra-3", True)]


def test_down_stops_nodes_in_reverse_start_order(monkeypatch):
    stopped = []
    monkeypatch.setattr(launcher, "stop", lambda s, svc: stopped.append(svc.name) or True)
    s = load_settings(environ=CLUSTER)
    launcher.down(s, by_name(["spark-worker", "kafka", "hdfs", "webapp"], s))
    assert stopped[:6] == ["webapp", "spark-worker-2", "spark-worker-1", "hdfs-datanode-2", "hdfs-datanode-1",
                           "hdfs-namenode"]
    assert sorted(stopped[6:]) == ["kafka-1", "kafka-2", "kafka-3"]  # together: a quorum stops as one


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_each_broker_is_a_voter_of_one_static_quorum_with_replicated_internal_topics():
    s = load_settings(environ=CLUSTER)
    brokers = cluster_nodes(s)["kafka"]
    props = [properties(b.server_properties(s, Path("/x") / b.name)) for b in brokers]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {"1@127.0.0.11:9093,2@127.0.0.12:9093,3@127.0.0.13:9093"}
    assert props[1]["listeners"] == "PLAINTEXT://127.0.0.12:9092,CONTROLLER://127.0.0.12:9093"
    for p in props:
        assert p["default.replication.factor"] == p["offsets.topic.replication.factor"] == "3"
        assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "2"
        assert p["unclean.leader.election.enable"] == "false"
    assert len({p["log.dirs"] for p in props}) == 3
    single = properties(by_name(["kafka"], load_settings(environ={}))[0].server_properties(load_settings(environ={}), Path("/x")))
    assert single["controller.quorum.voters"] == "1@127.0.0.1:9093" and single["default.replication.factor"] == "1"


def test_cassandra_nodes_share_seeds_split_the_ring_and_hint(tmp_path):
    s = load_settings(environ={**CLUSTER, "FD_STATE_DIR": str(tmp_path)})
    nodes = cluster_nodes(s)["cassandra"]
    values = [n.yaml_values(s) for n in nodes]
    assert len({v["initial_token"] for v in values}) == 3 and values[0]["initial_token"] == -2**63
    assert {v["seeds"] for v in values} == {"127.0.0.21:7000,127.0.0.22:7000,127.0.0.23:7000"}
    assert {v["hinted_handoff"] for v in values} == {"true"}
    assert len({n.jmx_port(s) for n in nodes}) == 3  # JMX binds 127.0.0.1 whatever the node's address
    nodes[1].prepare(s, tmp_path / nodes[1].name)
    yaml = (tmp_path / nodes[1].name / "conf" / "cassandra.yaml").read_text()
    assert "listen_address: 127.0.0.22" in yaml and "hinted_handoff_enabled: true" in yaml


def test_the_keyspace_gets_the_replication_of_the_settings():
    [keyspace, *_] = cassandra.schema_statements("flight_delay", 3, "datacenter1")
    assert "'NetworkTopologyStrategy', 'datacenter1': 3" in keyspace
    assert cassandra.consistency("quorum") == cassandra.consistency("QUORUM")
    with pytest.raises(ValueError, match="QUORUMM"):
        cassandra.consistency("QUORUMM")


def test_datanodes_each_have_their_own_address_data_port_and_directory():
    s = load_settings(environ=CLUSTER)
    namenode, *datanodes = cluster_nodes(s)["hdfs"]
    commands = [" ".join(d.command(s, Path("/state") / d.name)) for d in datanodes]
    assert "dfs.datanode.address=127.0.0.31:9866" in commands[0] and "dfs.datanode.address=127.0.0.32:9876" in commands[1]
    assert all("dfs.datanode.hostname=127.0.0.3" in c and "dfs.replication=2" in c for c in commands)
    assert "/state/hdfs-datanode-2/data" in commands[1]
    nn = " ".join(namenode.command(s, Path("/state/hdfs-namenode")))
    assert "dfs.namenode.rpc-address=127.0.0.30:8020" in nn and "org.apache.hadoop.hdfs.server.namenode.NameNode" in nn


def test_the_status_page_has_a_row_per_node_in_cluster_mode():
    from webapp.pages import service_checks

    rows = service_checks(load_settings(environ=CLUSTER))
    nodes = [r["name"] for r in rows if r.get("node")]
    assert nodes == ["broker 1 (127.0.0.11)", "broker 2 (127.0.0.12)", "broker 3 (127.0.0.13)",
                     "node 1 (127.0.0.21)", "node 2 (127.0.0.22)", "node 3 (127.0.0.23)",
                     "DataNode 1 (127.0.0.31)", "DataNode 2 (127.0.0.32)",
                     "Spark master", "Spark worker 1 (127.0.0.41)", "Spark worker 2 (127.0.0.42)"]
    assert [r["name"] for r in rows].index("broker 1 (127.0.0.11)") == [r["name"] for r in rows].index("Kafka") + 1
    assert not [r for r in service_checks(load_settings(environ={})) if r.get("node")]

