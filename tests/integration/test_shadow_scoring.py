"""Shadow scoring against the real servers (issue 28): a registered version under the alias
``challenger`` scores every valid request beside the champion and publishes to the shadow topic,
never to the response topic; the alias removed, the shadow records stop. The job runs as a real
process (``python -m spark_jobs.predict_stream``) on topics and a model name of its own."""
import dataclasses
import json

import pytest

from flightdelay import registry, schema
from flightdelay.model_dir import SHIPPED_VERSION
from flightdelay.reference import load_reference
from harness.job import JobProcess
from harness.models import discard_model, register_shipped_model, set_alias
from harness.traffic import collect, produce, produce_requests, sample_requests
from harness.wait import wait_for

UNKNOWN_TO_THE_CHALLENGER = "JFK-BOS"  # a route the challenger's reference data lacks
BAD = [(b"bad-carrier", json.dumps({**sample_requests(load_reference(), 1, seed=5)[0], "Carrier": "ZZ"}).encode()),
       (b"bad-json", b"{not json")]


@pytest.fixture
def job(stack, tmp_path):
    """The job as a process on topics and a model name of its own; that model is deleted after."""
    stack.require("kafka", "mongo", "cassandra", "hdfs", "mlflow")
    process = JobProcess(tmp_path)
    yield process
    process.discard()
    discard_model(process.settings, process.settings.model_name)  # its versions and aliases


def by_key(messages) -> dict[str, list[dict]]:
    """Each key's records, in the order they came."""
    records = [(m.key().decode(), json.loads(m.value())) for m in messages]
    return {key: [r for k, r in records if k == key] for key, _ in records}


def test_the_challenger_scores_every_valid_request_in_shadow_until_its_alias_goes(job, spark):
    s = job.settings
    reference = load_reference()
    challenger_reference = dataclasses.replace(
        reference, routes={k: v for k, v in reference.routes.items() if k != UNKNOWN_TO_THE_CHALLENGER})
    version = register_shipped_model(s, s.model_name, challenger_reference)
    set_alias(s, s.model_name, s.challenger_alias, version)  # no champion: the shipped model answers
    job.start()

    origin, dest = UNKNOWN_TO_THE_CHALLENGER.split("-")
    requests = sample_requests(reference, 30, seed=61)
    requests[0].update(Origin=origin, Dest=dest, Carrier="B6")
    produce_requests(s, s.request_topic, requests[:15])
    produce(s, s.request_topic, BAD)
    produce_requests(s, s.request_topic, requests[15:])
    uuids = {r["UUID"] for r in requests}

    answers = by_key(collect(s, s.response_topic, until=lambda ms: {m.key().decode() for m in ms} >= uuids))
    shadow = by_key(collect(s, s.shadow_topic, until=lambda ms: {m.key().decode() for m in ms} >= uuids))
    assert set(answers) == uuids and set(shadow) == uuids       # nothing for the invalid requests
    collect(s, s.dlq_topic, until=lambda ms: len(ms) >= len(BAD))
    for r in requests:
        [answer], [record] = answers[r["UUID"]], shadow[r["UUID"]]
        assert answer["model_version"] == SHIPPED_VERSION and "role" not in answer
        assert tuple(record) == schema.SHADOW_FIELDS
        assert (record["role"], record["model_version"], record["champion_version"]) == \
            ("challenger", version, SHIPPED_VERSION)
        assert {k: record[k] for k in ("UUID", "Carrier", "Origin", "Dest", "FlightDate", "requested_at")} == \
            {k: answer[k] for k in ("UUID", "Carrier", "Origin", "Dest", "FlightDate", "requested_at")}
        if f"{r['Origin']}-{r['Dest']}" == UNKNOWN_TO_THE_CHALLENGER:
            assert record["unscorable"] == f"Dest: unknown route {UNKNOWN_TO_THE_CHALLENGER}"
            assert record["prediction"] is record["label"] is record["probabilities"] is None
            assert answer["prediction"] in schema.LABELS
        else:  # the same model on the same features: the champion's prediction
            assert record["unscorable"] is None
            assert (record["prediction"], record["probabilities"]) == (answer["prediction"], answer["probabilities"])
    assert f"version {version} (challenger, compiled engine) in shadow to {s.shadow_topic}" in job.log.read_text()

    registry.client(s).delete_registered_model_alias(s.model_name, s.challenger_alias)
    wait_for(lambda: f"shadow model: version {version} (challenger) -> none" in job.log.read_text(), 60,
             "the job to drop the shadow model")
    later = sample_requests(reference, 10, seed=62)
    produce_requests(s, s.request_topic, later)
    later_uuids = {r["UUID"] for r in later}
    answered = by_key(collect(s, s.response_topic, until=lambda ms: {m.key().decode() for m in ms} >= later_uuids))
    assert later_uuids <= set(answered)
    # Answered, so a shadow record would have left the same task with the answer: none may come.
    in_shadow = collect(s, s.shadow_topic, until=lambda ms: any(m.key().decode() in later_uuids for m in ms),
                        timeout=10)
    assert not {m.key().decode() for m in in_shadow} & later_uuids
    assert sorted(by_key(in_shadow)) == sorted(uuids) and all(len(v) == 1 for v in by_key(in_shadow).values())
