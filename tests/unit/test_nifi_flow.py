"""The NiFi flow definition and conf as the launcher renders them (no NiFi needed)."""
import gzip
import json

import pytest

from flightdelay.config import load_settings
from nifi import deploy

CONSUME, MERGE, NAME, PUT = ("org.apache.nifi.processors.kafka.pubsub.ConsumeKafka_2_6",
                             "org.apache.nifi.processors.standard.MergeContent",
                             "org.apache.nifi.processors.standard.ExecuteStreamCommand",
                             "org.apache.nifi.processors.standard.PutFile")


@pytest.fixture
def settings(tmp_path):
    return load_settings({"FD_KAFKA_PORT": "19092", "FD_NIFI_PORT": "18443", "FD_RESPONSE_TOPIC": "resp-x",
                          "FD_NIFI_CONSUMER_GROUP": "grp-x", "FD_STATE_DIR": str(tmp_path / "state")})


def processors_by_type(dataflow):
    return {p["type"]: p for p in dataflow["rootGroup"]["processors"]}


def test_the_flow_is_kafka_merge_name_putfile(settings):
    dataflow = deploy.render_dataflow(settings)
    procs = processors_by_type(dataflow)
    assert set(procs) == {CONSUME, MERGE, NAME, PUT}
    assert all(p["scheduledState"] == "RUNNING" for p in procs.values())
    edges = {(c["source"]["id"], c["destination"]["id"], tuple(c["selectedRelationships"]))
             for c in dataflow["rootGroup"]["connections"]}
    ids = {t: p["identifier"] for t, p in procs.items()}
    assert (ids[CONSUME], ids[MERGE], ("success",)) in edges
    assert (ids[MERGE], ids[NAME], ("merged",)) in edges
    assert (ids[NAME], ids[PUT], ("original",)) in edges
    # Nothing is dropped: failures loop back, only MergeContent's originals and PutFile's
    # successes end (their content lives on in the merged FlowFile / the written file).
    assert (ids[PUT], ids[NAME], ("failure",)) in edges
    assert (ids[MERGE], ids[MERGE], ("failure",)) in edges
    assert procs[MERGE]["autoTerminatedRelationships"] == ["original"]
    assert procs[PUT]["autoTerminatedRelationships"] == ["success"]


def test_bins_close_by_age_every_ten_seconds_one_record_per_line(settings):
    merge = processors_by_type(deploy.render_dataflow(settings))[MERGE]
    props = merge["properties"]
    assert props["Max Bin Age"] == "10 sec"
    assert int(props["Minimum Number of Entries"]) >= 10**9  # never closes on count
    assert props["Demarcator File"] == "\n" and props["Footer File"] == "\n"
    # MergeContent checks a bin's age only on a run that bins nothing new: it must run more often
    # than ConsumeKafka delivers, or a steady stream keeps one bin open forever.
    consume = processors_by_type(deploy.render_dataflow(settings))[CONSUME]
    assert merge["schedulingPeriod"] == "100 millis" and consume["schedulingPeriod"] == "250 millis"
    assert merge["yieldDuration"] == "100 millis"
    assert consume["properties"]["message-demarcator"] == "\n"
    assert consume["properties"]["Commit Offsets"] == "true"


def test_parameters_come_from_settings(settings):
    dataflow = deploy.render_dataflow(settings)
    (context,) = dataflow["parameterContexts"]
    values = {p["name"]: p["value"] for p in context["parameters"]}
    assert values == {"kafka.bootstrap.servers": "127.0.0.1:19092", "kafka.topic": "resp-x",
                      "kafka.group.id": "grp-x", "archive.directory": str(settings.state / "nifi-archive")}
    assert dataflow["rootGroup"]["parameterContextName"] == context["name"]
    flat = json.dumps(dataflow["rootGroup"]["processors"])
    assert "9092" not in flat and "/" not in json.dumps([p["properties"].get("Directory") for p in
                                                         dataflow["rootGroup"]["processors"] if "Directory" in p["properties"]])


def test_a_parameter_without_a_setting_is_an_error(settings):
    definition = deploy.load_definition()
    definition["parameterContexts"]["flightdelay"]["parameters"].append({"name": "typo.param", "value": None})
    with pytest.raises(ValueError, match="typo.param"):
        deploy.render_dataflow(settings, definition)


def test_written_flow_and_conf_have_no_placeholder_left(settings, tmp_path):
    workdir = tmp_path / "nifi"
    deploy.write_conf(settings, workdir, lib=tmp_path / "lib", extensions=tmp_path / "kafka", java="/usr/bin/java")
    deploy.write_flow(settings, workdir / "conf" / "flow.json.gz")
    props = (workdir / "conf" / "nifi.properties").read_text()
    assert "nifi.web.http.host=127.0.0.1\n" in props and "nifi.web.http.port=18443\n" in props
    assert "nifi.web.https.port=\n" in props
    assert f"nifi.nar.library.directory.kafka={tmp_path / 'kafka'}\n" in props
    for name in ("nifi.properties", "bootstrap.conf", "logback.xml", "state-management.xml"):
        assert "${" not in (workdir / "conf" / name).read_text(), name
    key = deploy.sensitive_key(workdir)
    assert len(key) >= 12 and f"nifi.sensitive.props.key={key}\n" in props
    deploy.write_conf(settings, workdir, lib=tmp_path / "lib", extensions=tmp_path / "kafka", java="/usr/bin/java")
    assert deploy.sensitive_key(workdir) == key  # stable: NiFi must decrypt its flow after a restart
    with gzip.open(workdir / "conf" / "flow.json.gz", "rt") as fh:
        assert json.load(fh)["rootGroup"]["identifier"] == deploy.load_definition()["flowContents"]["identifier"]


def test_differences_names_what_the_running_flow_changed(settings, monkeypatch):
    dataflow = deploy.render_dataflow(settings)
    params = {p["name"]: p["value"] for p in dataflow["parameterContexts"][0]["parameters"]}
    running = [{"id": p["identifier"], "name": p["name"], "type": p["type"], "state": "RUNNING",
                "schedulingPeriod": p["schedulingPeriod"], "validationErrors": [],
                "properties": {k: deploy.resolve_parameters(v, params) for k, v in p["properties"].items()}}
               for p in dataflow["rootGroup"]["processors"]]
    monkeypatch.setattr(deploy, "running_processors", lambda s: running)
    assert deploy.differences(settings) == []
    merge = next(p for p in running if p["type"] == MERGE)
    merge["properties"]["Max Bin Age"] = "30 sec"
    running.pop(next(i for i, p in enumerate(running) if p["type"] == PUT))
    diffs = deploy.differences(settings)
    assert any("Max Bin Age" in d and "30 sec" in d for d in diffs)
    assert any("Write the archive file" in d and "not in the running flow" in d for d in diffs)
