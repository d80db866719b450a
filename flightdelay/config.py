"""Every host, port, topic and path of the platform, from environment variables.

Each setting is read from ``FD_<NAME>`` (for example ``FD_KAFKA_PORT``) and has one documented
default. ``python -m flightdelay.config`` prints the table of settings, their variables and
their current values. Nothing here does I/O at import time; the module needs only the standard
library so the launcher can use it before any dependency is installed.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "FD_"


# Settings naming where a server is found; empty means FD_HOST.
SERVER_HOSTS = ("kafka_host", "hdfs_host", "cassandra_host", "mongo_host", "mlflow_host", "nifi_host",
                "airflow_host", "spark_master_host", "streaming_host")

# FD_CLUSTER=1: where each node runs when its setting is empty. The whole 127.0.0.0/8 range is
# loopback, so every node gets an address of its own and the servers' usual ports, as on hosts
# of their own; the first addresses stay free for the single-node servers.
CLUSTER_ADDRESSES = {
    "kafka_hosts": "127.0.0.11,127.0.0.12,127.0.0.13",
    "cassandra_hosts": "127.0.0.21,127.0.0.22,127.0.0.23",
    "hdfs_host": "127.0.0.30",
    "hdfs_datanode_hosts": "127.0.0.31,127.0.0.32",
    "spark_master_host": "127.0.0.40",
    "spark_worker_hosts": "127.0.0.41,127.0.0.42",
}


def _setting(default, doc: str):
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    # Where things live
    cache_dir: str = _setting(str(Path.home() / ".cache" / "flightdelay"),
                              "downloads: virtualenv, jars, built binaries (outside the clone)")
    state_dir: str = _setting(str(REPO_ROOT / ".run"),
                              "runtime state: data, logs and pid files of the local servers")
    host: str = _setting("127.0.0.1", "address every local server binds to, and where clients find a server "
                                      "whose own *_HOST setting is empty")
    bench_results_dir: str = _setting(str(REPO_ROOT / "bench" / "results"),
                                      "where each bench appends its figures (one JSON line per run) for docs/performance.md")
    java17_home: str = _setting("/usr/lib/jvm/java-17-openjdk-amd64", "JDK for Kafka, HDFS, Cassandra, Spark")
    cluster: int = _setting(0, "1: Kafka, Cassandra, HDFS and Spark run as multi-node clusters, each node on its own "
                               "loopback address (FD_KAFKA_HOSTS, FD_CASSANDRA_HOSTS, FD_HDFS_DATANODE_HOSTS, "
                               "FD_SPARK_WORKER_HOSTS); make up/down/status run them (docs/deployment.md)")

    # Where clients find each server (empty: FD_HOST). One machine: leave them empty; containers or
    # several hosts: the server's name on the network, e.g. FD_KAFKA_HOST=kafka.
    kafka_host: str = _setting("", "host of the Kafka broker (empty: FD_HOST)")
    hdfs_host: str = _setting("", "host of the HDFS NameNode (empty: FD_HOST)")
    cassandra_host: str = _setting("", "host of the Cassandra contact point (empty: FD_HOST)")
    mongo_host: str = _setting("", "host of the MongoDB wire server (empty: FD_HOST)")
    mlflow_host: str = _setting("", "host of the MLflow tracking server (empty: FD_HOST)")
    nifi_host: str = _setting("", "host of NiFi's REST API (empty: FD_HOST)")
    airflow_host: str = _setting("", "host of the Airflow API server (empty: FD_HOST)")
    spark_master_host: str = _setting("", "host of the Spark standalone master (empty: FD_HOST)")
    streaming_host: str = _setting("", "host of the streaming job, whose Spark UI is probed (empty: FD_HOST)")
    spark_driver_host: str = _setting("", "address this process's Spark driver gives its executors "
                                          "(empty: FD_HOST)")

    # Kafka
    kafka_port: int = _setting(9092, "Kafka broker listener")
    kafka_controller_port: int = _setting(9093, "Kafka KRaft controller listener")
    request_topic: str = _setting("flight-delay-ml-request", "topic of prediction requests")
    response_topic: str = _setting("flight-delay-ml-response", "topic of predictions")
    dlq_topic: str = _setting("flight-delay-ml-dlq", "dead-letter topic for malformed requests and outcomes")
    outcome_topic: str = _setting("flight-delay-ml-outcome", "topic of flight outcomes (what each flight really did)")
    scored_topic: str = _setting("flight-delay-ml-scored", "topic of predictions scored against their flight's outcome")
    shadow_topic: str = _setting("flight-delay-ml-shadow", "topic of the shadow predictions (a challenger, or a "
                                                           "previous champion on probation): never sent to a user")
    topic_partitions: int = _setting(2, "partitions of each platform topic")
    kafka_hosts: str = _setting("", "Kafka brokers, comma-separated: clients bootstrap from every one, FD_CLUSTER=1 "
                                    "runs a broker on each (empty: FD_KAFKA_HOST; FD_CLUSTER=1: "
                                    + CLUSTER_ADDRESSES["kafka_hosts"] + ")")
    kafka_replication: int = _setting(0, "replication factor of the platform's topics (0: one copy per broker, at most 3)")
    kafka_min_insync_replicas: int = _setting(0, "min.insync.replicas of the platform's topics: an acks=all write "
                                                 "needs this many copies (0: replication factor - 1, at least 1)")
    kafka_session_timeout_ms: int = _setting(8000, "a broker of several that misses heartbeats this long is fenced and "
                                                   "its partition leaders move (one broker: 30 s, no one to move to)")

    # HDFS
    hdfs_rpc_port: int = _setting(8020, "HDFS NameNode RPC")
    hdfs_http_port: int = _setting(9870, "HDFS NameNode HTTP / WebHDFS")
    hdfs_user: str = _setting("root", "user for WebHDFS calls")
    prediction_archive_path: str = _setting("/user/spark/prediction", "HDFS parquet archive of predictions")
    scored_archive_path: str = _setting("/user/spark/scored", "HDFS parquet archive of scored predictions")
    hdfs_datanode_hosts: str = _setting("", "DataNodes FD_CLUSTER=1 runs, comma-separated, each a process of its own "
                                            "(empty: one DataNode inside the NameNode's process; FD_CLUSTER=1: "
                                            + CLUSTER_ADDRESSES["hdfs_datanode_hosts"] + ")")
    hdfs_datanode_port: int = _setting(9866, "DataNode data transfer port (FD_CLUSTER=1: the n-th DataNode adds "
                                             "10 * (n - 1): the NameNode tells DataNodes of one machine apart by it)")
    hdfs_datanode_http_port: int = _setting(9864, "DataNode HTTP port (WebHDFS reads and writes are redirected there)")
    hdfs_datanode_ipc_port: int = _setting(9867, "DataNode IPC port")
    hdfs_replication: int = _setting(0, "dfs.replication of the files the platform writes (0: one copy per DataNode, "
                                        "at most 3)")

    # Cassandra
    cassandra_port: int = _setting(9042, "Cassandra CQL native transport")
    cassandra_storage_port: int = _setting(7000, "Cassandra inter-node storage port")
    cassandra_jmx_port: int = _setting(7199, "Cassandra JMX (local only; FD_CLUSTER=1: node n on this + 100 * n)")
    cassandra_keyspace: str = _setting("flight_delay", "Cassandra keyspace of the platform")
    cassandra_batch_rows: int = _setting(20, "rows per unlogged batch written by the archive query")
    cassandra_hosts: str = _setting("", "Cassandra contact points, comma-separated; FD_CLUSTER=1 runs a node on each "
                                        "(empty: FD_CASSANDRA_HOST; FD_CLUSTER=1: "
                                        + CLUSTER_ADDRESSES["cassandra_hosts"] + ")")
    cassandra_datacenter: str = _setting("datacenter1", "the Cassandra datacenter of the nodes (the keyspace's "
                                                        "replication and the clients' local datacenter)")
    cassandra_replication: int = _setting(0, "replication factor of the keyspace (0: one copy per node, at most 3)")
    cassandra_write_consistency: str = _setting("QUORUM", "consistency level of every write: QUORUM with replication "
                                                          "3 stays correct with one node down (one replica: ONE)")
    cassandra_read_consistency: str = _setting("QUORUM", "consistency level of every read: with QUORUM writes, a "
                                                         "QUORUM read sees every acknowledged write")

    # MongoDB wire (FerretDB)
    mongo_port: int = _setting(27017, "MongoDB wire protocol (FerretDB)")
    mongo_database: str = _setting("agile_data_science", "MongoDB database")
    mongo_collection: str = _setting("flight_delay_ml_response", "MongoDB collection of predictions")
    mongo_backend: str = _setting("postgresql", "FerretDB storage: postgresql (indexed history queries) or sqlite; "
                                         "mongodb: a real MongoDB server (docker-compose), its own indexes")

    # PostgreSQL (FerretDB's storage; loopback only, trust authentication)
    postgres_port: int = _setting(15432, "PostgreSQL under FerretDB (not 5432: Debian's package may run its own cluster there)")
    postgres_user: str = _setting("postgres", "system user the PostgreSQL server runs as (never root)")

    # MLflow
    mlflow_port: int = _setting(5000, "MLflow tracking server and model registry")
    model_name: str = _setting("flight_delay_rf", "registered model name")
    model_alias: str = _setting("champion", "registry alias the streaming job serves")
    challenger_alias: str = _setting("challenger", "registry alias of a version retrained on observed outcomes, "
                                                   "waiting for a decision on live evidence (never served to users)")
    previous_alias: str = _setting("previous", "registry alias of the champion before the last promotion: scored "
                                               "in shadow during the new champion's probation, served again on a "
                                               "rollback")
    observed_holdout_fraction: float = _setting(0.2, "retraining on observed outcomes holds out the newest flight "
                                                     "dates holding at least this share of them for evaluation")

    # Spark and the streaming job
    spark_master: str = _setting("local[4]", "Spark master; real-time mode holds one task slot per Kafka partition")
    spark_cluster: int = _setting(0, "1: run Spark as a standalone cluster (master + worker; make up starts "
                                     "both) and submit to spark://FD_SPARK_MASTER_HOST:FD_SPARK_MASTER_PORT "
                                     "instead of FD_SPARK_MASTER")
    spark_master_port: int = _setting(7077, "Spark standalone master RPC (FD_SPARK_CLUSTER=1)")
    spark_master_ui_port: int = _setting(8080, "Spark standalone master web UI and /json/ (FD_SPARK_CLUSTER=1)")
    spark_worker_ui_port: int = _setting(8081, "Spark standalone worker web UI (FD_SPARK_CLUSTER=1)")
    spark_worker_hosts: str = _setting("", "Spark workers, comma-separated, one process each (empty: one worker on "
                                           "FD_HOST; FD_CLUSTER=1: " + CLUSTER_ADDRESSES["spark_worker_hosts"] + ")")
    spark_worker_cores: int = _setting(4, "task slots a worker offers: real-time mode holds one per Kafka "
                                          "partition for the predict query, the archive queries need more")
    spark_worker_memory: str = _setting("1g", "memory a worker offers its executors")
    spark_executor_memory: str = _setting("768m", "heap of each executor on the cluster")
    spark_daemon_memory: str = _setting("256m", "heap of the standalone master and worker daemons")
    spark_driver_memory: str = _setting("2g", "Spark driver memory (local mode: all of Spark)")
    predict_engine: str = _setting("compiled", "how the job evaluates the model: compiled (the forest as flat "
                                    "arrays in a JVM UDF, same predictions, a fraction of the CPU) or mllib "
                                    "(PipelineModel.transform)")
    predict_trigger: str = _setting("realtime", "predict query trigger: realtime or microbatch")
    realtime_interval: str = _setting("15 minutes", "real-time batch length: checkpoint interval, max replay after a "
                                      "crash; each batch end pauses answers for seconds (docs/streaming-job.md)")
    predict_linger_ms: int = _setting(0, "Kafka linger of the predict query's answers (ms); 0 measured faster than "
                                         "5 at 100/s and 1,000/s (docs/streaming-job.md)")
    predict_warmup_requests: int = _setting(20000, "synthetic requests the predict path answers on private topics "
                                                   "before the job reports up, so the JIT has compiled it "
                                                   "(spark_jobs.warmup; 0: no warm-up)")
    predict_warmup_timeout_s: float = _setting(120.0, "the warm-up gives up after this many seconds and the job "
                                                      "starts anyway")
    store_trigger: str = _setting("5 seconds", "trigger of the MongoDB and Cassandra archive queries (each "
                                               "micro-batch costs planning, listener events and checkpoint "
                                               "files whatever its size: docs/streaming-job.md)")
    archive_trigger: str = _setting("60 seconds", "trigger of the HDFS parquet archive query (one file per date per trigger)")
    max_offsets_per_trigger: int = _setting(50000, "Kafka records per micro-batch (backpressure)")
    archive_max_offsets_per_trigger: int = _setting(
        2_000_000, "Kafka records per parquet archive micro-batch (FD_ARCHIVE_TRIGGER's long trigger: "
                   "with 60 s, 2,000,000 keeps up with 33,000/s; FD_MAX_OFFSETS_PER_TRIGGER's 50,000 "
                   "capped the archive at 833/s)")
    archive_dedup_window: str = _setting("2 hours", "window of requested_at in which the archive drops repeated UUIDs")
    model_poll_s: float = _setting(10.0, "seconds between checks of the registry alias")
    starting_offsets: str = _setting("earliest", "where a query without a checkpoint starts reading")
    outcome_horizon_s: float = _setting(7 * 86400.0, "join horizon: a prediction is scored against an outcome "
                                                     "reported within this many seconds of its request")
    outcome_window_s: int = _setting(60, "length of the wall-time windows of the live metrics (seconds)")
    outcome_cache_partitions: int = _setting(20000, "route-days whose outcome reports the join keeps in memory "
                                                    "(least recently used beyond)")
    answer_path_nice: int = _setting(-10, "CPU niceness of the predict query's task threads (and the Kafka producer "
                                           "thread they start) inside the job's JVM, relative to its store queries' "
                                           "tasks at the JVM's own: a request is answered first, archived after "
                                           "(flightdelay/jvm/AnswerPathPriority.java; needs root; 0: all equal)")
    store_nice: int = _setting(10, "CPU niceness of the stores (Cassandra, FerretDB, HDFS) and the job's "
                                   "store writers: on one shared machine the answer path gets the CPU first; 0: equal")

    # Drift monitor (python -m monitor): live windows of predictions against the served model's training reference
    monitor_topic: str = _setting("flight-delay-ml-monitor", "topic of the drift monitor's scores, one message per window")
    monitor_group: str = _setting("flightdelay-monitor", "Kafka consumer group of the drift monitor")
    monitor_starting_offsets: str = _setting("latest", "where the monitor starts reading the response topic without "
                                                       "committed offsets: latest (live only) or earliest")
    monitor_window_s: float = _setting(60.0, "a window closes after this many seconds (or FD_MONITOR_WINDOW_N)")
    monitor_window_n: int = _setting(1000, "a window closes after this many predictions (or FD_MONITOR_WINDOW_S)")
    monitor_min_window: int = _setting(300, "predictions of one model version a window needs for a drift verdict "
                                            "(fewer: scores stored, verdict 'insufficient'; PSI's bias is ~bins/n)")
    monitor_psi_moderate: float = _setting(0.1, "PSI from which a feature's shift is 'moderate'")
    monitor_psi_significant: float = _setting(0.25, "PSI from which a feature's shift is 'significant' (an alert)")
    monitor_psi_epsilon: float = _setting(1e-4, "share given to an empty bin in PSI (ln(0) otherwise)")
    monitor_top_routes: int = _setting(20, "routes of the reference's route mix; the others are one bin 'other'")
    monitor_min_outcomes: int = _setting(200, "matched outcomes needed before live accuracy is judged")
    monitor_accuracy_drop: float = _setting(0.05, "live accuracy this far below the holdout's (0.05: 5 points) "
                                                  "is an alert")
    monitor_accuracy_lookback_s: float = _setting(3600.0, "live accuracy of a window: the live metrics' wall windows "
                                                          "of this many seconds before its end")
    monitor_retrain_on_alert: int = _setting(1, "1: a window that alerts starts the retraining DAG through "
                                                "flightdelay.retrain_trigger (cool-down FD_RETRAIN_COOLDOWN_S); 0: "
                                                "alerts are only published and stored")
    promote_min_outcomes: int = _setting(500, "paired outcomes (the same flights scored for champion and "
                                              "challenger) before the promotion rule decides")
    promote_max_outcomes: int = _setting(20000, "paired outcomes after which a challenger without a significant "
                                                "win is refused")
    promote_alpha: float = _setting(0.01, "level of the paired test (McNemar's exact test on the discordant pairs) "
                                          "for promotion and rollback")
    probation_outcomes: int = _setting(2000, "paired outcomes a newly promoted champion is watched against its "
                                             "predecessor (shadow role 'previous') before the probation ends")
    monitor_backoff_max_s: float = _setting(30.0, "longest wait between retries while Kafka, Cassandra or MLflow "
                                                  "does not answer")

    # Web app
    webapp_result_timeout_s: float = _setting(10.0, "seconds the page waits for a prediction before saying so")
    webapp_publish_timeout_s: float = _setting(30.0, "seconds a submission waits for Kafka's acknowledgement before "
                                                     "the submitter is told to retry (503): longer than a broker "
                                                     "failover (FD_KAFKA_SESSION_TIMEOUT_MS, then the election: "
                                                     "11.9-13.4 s measured on 2 cores), which it rides out")
    webapp_rate_limit: str = _setting("600 per minute", "submissions per client address, every route together")
    webapp_sync_wait_max_s: float = _setting(10.0, "longest wait of a synchronous prediction request (?wait=, /classify)")
    webapp_secret_key: str = _setting("", "Flask secret key (CSRF tokens); empty: generated once into the state dir")
    webapp_max_request_bytes: int = _setting(16384, "largest request body or Socket.IO message accepted (413 beyond)")
    webapp_allowed_origins: str = _setting("", "extra origins (comma-separated) allowed to open Socket.IO connections; "
                                               "the app's own origin always is")
    webapp_max_connections: int = _setting(15000, "connections the web process holds at once, idle websockets "
                                                  "included (at most its open-file limit less 1,000); 503 beyond")
    webapp_max_connections_per_client: int = _setting(200, "connections one client address may hold at once; "
                                                           "429 beyond")
    webapp_header_timeout_s: float = _setting(10.0, "seconds a client has to send a request's headers (also the "
                                                    "idle time allowed between two requests on a kept-alive connection)")
    webapp_body_timeout_s: float = _setting(10.0, "seconds a client has to send a request's body; 408 beyond")

    # NiFi prediction archive
    nifi_consumer_group: str = _setting("flightdelay-nifi-archive", "Kafka consumer group of NiFi's ConsumeKafka")
    nifi_archive_dir: str = _setting("", "directory of NiFi's 10-second prediction files; empty: <state_dir>/nifi-archive")
    nifi_heap: str = _setting("512m", "NiFi JVM heap (-Xms and -Xmx)")

    # Platform processes
    webapp_port: int = _setting(5001, "Flask web app")
    spark_ui_port: int = _setting(4040, "Spark UI of the streaming job")
    nifi_port: int = _setting(8443, "NiFi UI and REST API, plain HTTP on loopback (the original platform's NiFi port)")
    airflow_port: int = _setting(8180, "Airflow API server and UI (the original platform's port)")
    airflow_worker_log_port: int = _setting(8793, "Airflow worker log server (LocalExecutor task logs)")
    airflow_triggerer_log_port: int = _setting(8794, "Airflow triggerer log server")
    airflow_parallelism: int = _setting(2, "Airflow LocalExecutor worker processes (tasks at once)")
    airflow_user: str = _setting("admin", "Airflow UI user; its password is generated once, printed by make up")
    retrain_dag_id: str = _setting("retrain_flight_delay", "the retraining DAG that alerts start "
                                                          "(flightdelay.retrain_trigger)")
    retrain_cooldown_s: float = _setting(3600.0, "after an alert's retraining run ends, further alerts start no "
                                                 "new run for this many seconds")
    retrain_sample: float = _setting(0.0, "an alert's retraining run trains on this random fraction of the base "
                                          "flights (0: all of them; the observed flights are always all used)")

    def __post_init__(self):
        # frozen: set once, while constructing
        for name in ("hdfs_host", "spark_master_host"):
            if self.cluster and not getattr(self, name):
                object.__setattr__(self, name, CLUSTER_ADDRESSES[name])
        for name in (*SERVER_HOSTS, "spark_driver_host"):
            if not getattr(self, name):
                object.__setattr__(self, name, self.host)

    def _hosts(self, name: str, single: list[str]) -> list[str]:
        """A comma-separated host list setting; empty: the cluster's addresses, or ``single``."""
        value = getattr(self, name) or (CLUSTER_ADDRESSES[name] if self.cluster else "")
        return [h.strip() for h in value.split(",") if h.strip()] or single

    @property
    def kafka_brokers(self) -> list[str]:
        return self._hosts("kafka_hosts", [self.kafka_host])

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"{host}:{self.kafka_port}" for host in self.kafka_brokers)

    @property
    def topic_replication(self) -> int:
        return self.kafka_replication or min(3, len(self.kafka_brokers))

    @property
    def topic_min_insync(self) -> int:
        return self.kafka_min_insync_replicas or max(1, self.topic_replication - 1)

    @property
    def cassandra_nodes(self) -> list[str]:
        return self._hosts("cassandra_hosts", [self.cassandra_host])

    @property
    def keyspace_replication(self) -> int:
        return self.cassandra_replication or min(3, len(self.cassandra_nodes))

    @property
    def hdfs_datanodes(self) -> list[str]:
        """DataNodes of their own (empty: the one inside the NameNode's process)."""
        return self._hosts("hdfs_datanode_hosts", [])

    @property
    def dfs_replication(self) -> int:
        return self.hdfs_replication or min(3, max(1, len(self.hdfs_datanodes)))

    @property
    def spark_standalone(self) -> bool:
        """Spark sessions submit to a standalone master (FD_SPARK_CLUSTER=1 or FD_CLUSTER=1)."""
        return bool(self.spark_cluster or self.cluster)

    @property
    def spark_workers(self) -> list[str]:
        return self._hosts("spark_worker_hosts", [self.host])

    @property
    def hdfs_url(self) -> str:
        return f"hdfs://{self.hdfs_host}:{self.hdfs_rpc_port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.hdfs_host}:{self.hdfs_http_port}"

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://{self.mongo_host}:{self.mongo_port}/?directConnection=true"

    @property
    def postgres_url(self) -> str:
        """FerretDB's PostgreSQL database (one PostgreSQL schema per MongoDB database)."""
        return f"postgres://{self.postgres_user}@{self.host}:{self.postgres_port}/ferretdb"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{self.mlflow_host}:{self.mlflow_port}"

    @property
    def nifi_url(self) -> str:
        return f"http://{self.nifi_host}:{self.nifi_port}"

    @property
    def spark_ui_url(self) -> str:
        return f"http://{self.streaming_host}:{self.spark_ui_port}"

    @property
    def spark_master_url(self) -> str:
        """Where Spark sessions are submitted: the standalone master, or FD_SPARK_MASTER."""
        if self.spark_standalone:
            return f"spark://{self.spark_master_host}:{self.spark_master_port}"
        return self.spark_master

    @property
    def spark_master_web_url(self) -> str:
        return f"http://{self.spark_master_host}:{self.spark_master_ui_port}"

    @property
    def platform_topics(self) -> tuple[str, ...]:
        return (self.request_topic, self.response_topic, self.dlq_topic, self.outcome_topic, self.scored_topic,
                self.monitor_topic, self.shadow_topic)

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir)

    @property
    def state(self) -> Path:
        return Path(self.state_dir)

    @property
    def nifi_archive(self) -> Path:
        return Path(self.nifi_archive_dir) if self.nifi_archive_dir else self.state / "nifi-archive"

    @property
    def platform_python(self) -> Path:
        """The platform's interpreter (virtualenv made by the Makefile): training runs there."""
        return self.cache / "venv" / "bin" / "python"

    @property
    def airflow_venv(self) -> Path:
        """Airflow's own virtualenv: it pins libraries (e.g. fastapi) that MLflow wants newer."""
        return self.cache / "airflow-venv"

    @property
    def airflow_home(self) -> Path:
        return self.state / "airflow"

    @property
    def airflow_passwords_file(self) -> Path:
        """The Airflow UI/API user's password, generated once by the launcher (mode 600)."""
        return self.airflow_home / "simple_auth_manager_passwords.json"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.airflow_host}:{self.airflow_port}"

    @property
    def checkpoints(self) -> Path:
        """The streaming job's checkpoints. They hold offsets of one Kafka cluster's topics, so
        FD_CLUSTER=1 (other brokers, other topics) keeps checkpoints of its own."""
        return self.state / "spark" / ("checkpoints-cluster" if self.cluster else "checkpoints")

    @property
    def streaming_status_file(self) -> Path:
        """Written by the streaming job every poll: its queries and the model it serves."""
        return self.state / "streaming" / "status.json"


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_settings(environ: dict[str, str] | None = None, **overrides) -> Settings:
    """Build Settings from ``environ`` (default: os.environ); keyword overrides win."""
    environ = os.environ if environ is None else environ
    values = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is None:
            continue
        values[f.name] = _parse(f, raw)
    values.update(overrides)
    return Settings(**values)


def _parse(f: dataclasses.Field, raw: str):
    for name, kind in (("int", int), ("float", float)):
        if f.type in (name, kind):
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{env_name(f.name)}={raw!r} is not a number ({name})") from None
    return raw


def describe(settings: Settings) -> str:
    rows = [f"{'variable':<30} {'value':<45} meaning"]
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        shown = "(set)" if "secret" in f.name and value else str(value)
        rows.append(f"{env_name(f.name):<30} {shown:<45} {f.metadata['doc']}")
    return "\n".join(rows)


if __name__ == "__main__":
    print(describe(load_settings()))
