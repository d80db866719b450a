"""Shadow scoring in the predict query (issue 28): which model is scored in shadow, the shadow
record (schema.SHADOW_FIELDS) the transform makes for every valid request, unscorable requests,
no shadow row for an invalid one, and how the supervisor follows the aliases."""
import dataclasses
import json
import uuid as uuidlib

import pytest

from flightdelay import registry, schema
from flightdelay.config import load_settings
from flightdelay.model_dir import SHIPPED_VERSION
from flightdelay.serving import ServedModel, ShadowModel, load_shipped, shadow_choice
from spark_jobs import supervisor
from spark_jobs.transform import score

KAFKA_ROWS = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
SETTINGS = load_settings({})


def request(carrier, origin, dest, **changes):
    return {"UUID": str(uuidlib.uuid4()), "Carrier": carrier, "Origin": origin, "Dest": dest,
            "FlightDate": "2013-03-14", "CRSDepTime": 905, "CRSArrTime": 1230, "DepDelay": 12.0,
            "FlightNum": 101, "requested_at": 1_700_000_000_000, **changes}


# What the shadow model's reference data lacks, and what it says differently.
SCORABLE = request("UA", "EWR", "IAH")             # its distance differs in the shadow reference
SAME = request("DL", "LGA", "ATL", FlightNum=None)  # identical features: identical scores
UNKNOWN_ROUTE = request("B6", "JFK", "BOS")
UNKNOWN_CARRIER = request("HA", "JFK", "HNL")
UNKNOWN_AIRPORT = request("B6", "JFK", "ACK")
VALID = [SCORABLE, SAME, UNKNOWN_ROUTE, UNKNOWN_CARRIER, UNKNOWN_AIRPORT]
INVALID = [(b"bad-carrier", json.dumps(request("ZZ", "EWR", "IAH")).encode()), (b"bad-json", b"{not json")]
SHADOW_DISTANCE = 9999.0


@pytest.fixture(scope="module")
def champion(spark):
    return load_shipped(SETTINGS)


def shadow_reference(reference):
    routes = {k: v for k, v in reference.routes.items() if k not in ("JFK-BOS", "JFK-ACK")}
    routes["EWR-IAH"] = {**routes["EWR-IAH"], "distance": SHADOW_DISTANCE}
    return dataclasses.replace(
        reference, routes=routes, carriers={k: v for k, v in reference.carriers.items() if k != "HA"},
        airports={k: v for k, v in reference.airports.items() if k != "ACK"})


@pytest.fixture(scope="module")
def challenger(champion):
    return ShadowModel("challenger", dataclasses.replace(champion, version="7", source="mlflow",
                                                         reference=shadow_reference(champion.reference)))


@pytest.fixture(scope="module")
def kafka_rows(spark):
    rows = [(r["UUID"].encode(), json.dumps(r).encode()) for r in VALID] + INVALID
    return spark.createDataFrame([(k, v, "requests", 0, i, None) for i, (k, v) in enumerate(rows)], KAFKA_ROWS)


def by_topic(frame):
    out = {}
    for row in frame.collect():
        out.setdefault(row["topic"], {})[row["key"].decode()] = row["value"]
    return out


@pytest.fixture(scope="module")
def answered_alone(kafka_rows, champion):
    return by_topic(score(kafka_rows, champion, SETTINGS))


@pytest.fixture(scope="module")
def answered_with_shadow(kafka_rows, champion, challenger):
    return by_topic(score(kafka_rows, champion, SETTINGS, challenger))


def without_clock(value):
    record = json.loads(value)
    record.pop("predicted_at")
    return record


def test_without_a_shadow_model_nothing_goes_to_the_shadow_topic(answered_alone):
    s = SETTINGS
    assert set(answered_alone) == {s.response_topic, s.dlq_topic}
    assert set(answered_alone[s.response_topic]) == {r["UUID"] for r in VALID}
    assert set(answered_alone[s.dlq_topic]) == {"bad-carrier", "bad-json"}


def test_the_answers_and_dead_letters_do_not_change_with_a_shadow_model(answered_alone, answered_with_shadow):
    s = SETTINGS
    for topic in (s.response_topic, s.dlq_topic):
        alone, with_shadow = answered_alone[topic], answered_with_shadow[topic]
        assert set(alone) == set(with_shadow)
        for key in alone:
            drop = "predicted_at" if topic == s.response_topic else "rejected_at"
            assert ({k: v for k, v in json.loads(alone[key]).items() if k != drop}
                    == {k: v for k, v in json.loads(with_shadow[key]).items() if k != drop})
    for value in answered_with_shadow[s.response_topic].values():
        assert json.loads(value)["model_version"] == SHIPPED_VERSION and "role" not in json.loads(value)


def test_every_valid_request_gets_one_shadow_record_and_invalid_ones_none(answered_with_shadow):
    shadow = answered_with_shadow[SETTINGS.shadow_topic]
    assert set(shadow) == {r["UUID"] for r in VALID}
    for key, value in shadow.items():
        record = json.loads(value)
        assert tuple(record) == schema.SHADOW_FIELDS                 # every key, in contract order
        assert record["UUID"] == key and record["role"] == "challenger"
        assert record["model_version"] == "7" and record["model_name"] == SETTINGS.model_name
        assert record["champion_version"] == SHIPPED_VERSION


def test_the_shadow_model_scores_with_its_own_reference(answered_with_shadow):
    shadow, answers = answered_with_shadow[SETTINGS.shadow_topic], answered_with_shadow[SETTINGS.response_topic]
    scorable = json.loads(shadow[SCORABLE["UUID"]])
    assert scorable["Distance"] == SHADOW_DISTANCE and json.loads(answers[SCORABLE["UUID"]])["Distance"] == 1400.0
    assert scorable["unscorable"] is None and scorable["prediction"] in schema.LABELS
    assert scorable["label"] == schema.LABELS[scorable["prediction"]]
    # The same model on the same features gives the champion's answer, field for field.
    same, answer = json.loads(shadow[SAME["UUID"]]), json.loads(answers[SAME["UUID"]])
    assert same["FlightNum"] is None and "FlightNum" not in answer   # the answer omits nulls, as before
    assert {k: same[k] for k in answer if k not in ("model_version", "predicted_at")} == \
        {k: v for k, v in answer.items() if k not in ("model_version", "predicted_at")}


@pytest.mark.parametrize("flight, reason", [
    (UNKNOWN_ROUTE, "Dest: unknown route JFK-BOS"),
    (UNKNOWN_CARRIER, "Carrier: unknown airline HA"),
    (UNKNOWN_AIRPORT, "Dest: unknown airport ACK"),
])
def test_a_request_the_shadow_model_cannot_score_gets_a_record_without_prediction(answered_with_shadow, flight,
                                                                                     reason):
    record = json.loads(answered_with_shadow[SETTINGS.shadow_topic][flight["UUID"]])
    assert record["unscorable"] == reason
    assert record["prediction"] is None and record["label"] is None and record["probabilities"] is None
    assert (record["Carrier"], record["Origin"], record["Dest"]) == (flight["Carrier"], flight["Origin"], flight["Dest"])
    answer = json.loads(answered_with_shadow[SETTINGS.response_topic][flight["UUID"]])
    assert answer["prediction"] in schema.LABELS                     # the answer is untouched


def test_the_shadow_record_parses_with_the_shared_ddl(spark, answered_with_shadow):
    from pyspark.sql import functions as F

    values = [(v,) for v in answered_with_shadow[SETTINGS.shadow_topic].values()]
    parsed = (spark.createDataFrame(values, "value string")
              .select(F.from_json("value", schema.SHADOW_DDL).alias("r")).select("r.*").collect())
    assert {r["UUID"] for r in parsed} == {r["UUID"] for r in VALID}
    assert {r["role"] for r in parsed} == {"challenger"}
    assert sum(r["unscorable"] is not None for r in parsed) == 3
    assert all(len(r["probabilities"]) == 4 for r in parsed if r["unscorable"] is None)


def test_the_previous_champion_in_shadow_knowing_every_route_scores_everything(kafka_rows, champion):
    previous = ShadowModel("previous", dataclasses.replace(champion, version="5"))
    shadow = by_topic(score(kafka_rows, champion, SETTINGS, previous))[SETTINGS.shadow_topic]
    records = [json.loads(v) for v in shadow.values()]
    assert len(records) == len(VALID)
    assert {r["role"] for r in records} == {"previous"} and {r["model_version"] for r in records} == {"5"}
    assert all(r["unscorable"] is None and r["prediction"] in schema.LABELS for r in records)


# -- which model is scored in shadow ------------------------------------------------------------
@pytest.mark.parametrize("aliases, champion_version, chosen", [
    ({}, SHIPPED_VERSION, None),
    ({"champion": "3"}, "3", None),
    ({"champion": "3", "challenger": "4"}, "3", ("challenger", "4")),
    ({"challenger": "4"}, SHIPPED_VERSION, ("challenger", "4")),         # no champion: the shipped model answers
    ({"champion": "4", "challenger": "4", "previous": "3"}, "4", ("previous", "3")),  # promoted, not yet moved
    ({"champion": "4", "previous": "3"}, "4", ("previous", "3")),
    ({"champion": "4", "challenger": "5", "previous": "3"}, "4", ("challenger", "5")),  # challenger beats previous
    ({"champion": "3", "previous": "3"}, "3", None),                    # rolled back: previous is the champion
    ({"champion": "4", "challenger": "4"}, "4", None),
])
def test_the_shadow_model_is_the_challenger_else_the_previous_champion(aliases, champion_version, chosen):
    assert shadow_choice(SETTINGS, aliases, champion_version) == chosen


# -- how the supervisor follows it -------------------------------------------------------------
class StubQuery:
    def __init__(self, served, shadow):
        self.served, self.shadow, self.stopped = served, shadow, False

    def stop(self):
        self.stopped = True


class Registry:
    """The registry as the supervisor sees it: aliases (None: not answering) and loadable versions."""

    def __init__(self, monkeypatch):
        self.aliases, self.broken, self.loads = {}, set(), []
        monkeypatch.setattr(supervisor, "registry_aliases", lambda s: None if self.aliases is None else dict(self.aliases))
        monkeypatch.setattr(supervisor, "load_registered", self.load)
        monkeypatch.setattr(registry, "champion_version", lambda s: (self.aliases or {}).get("champion"))

    def load(self, s, version):
        self.loads.append(version)
        if version in self.broken:
            raise OSError(f"artifacts of version {version} missing")
        return ServedModel(s.model_name, version, pipeline=None, reference=None, source="mlflow")


@pytest.fixture
def job(monkeypatch):
    fake = Registry(monkeypatch)
    job = supervisor.PredictionJob(spark=None, settings=SETTINGS)
    job.served = ServedModel(SETTINGS.model_name, SHIPPED_VERSION, None, None, "shipped")
    job.watcher = supervisor.AliasWatcher(SETTINGS, SHIPPED_VERSION, job.swap_model)
    job.factories = {"predict": lambda: StubQuery(job.served.version, supervisor.shadow_key(job.shadow))}
    job.queries = {"predict": job.factories["predict"]()}
    return job, fake


def serving(job):
    query = job.queries["predict"]
    return query.served, query.shadow


def poll(job):
    """One turn of PredictionJob.run's loop, without the query checks."""
    job.watcher.check()
    job.follow_shadow()


def test_the_predict_query_follows_the_challenger_alias(job):
    job, fake = job
    poll(job)
    assert serving(job) == (SHIPPED_VERSION, None)                    # no alias: no shadow model
    fake.aliases = {"challenger": "7"}
    first = job.queries["predict"]
    poll(job)
    assert first.stopped and serving(job) == (SHIPPED_VERSION, ("challenger", "7"))
    restarted = job.queries["predict"]
    poll(job)
    assert job.queries["predict"] is restarted and fake.loads == ["7"]  # unchanged alias: nothing done
    fake.aliases = None                                               # registry down: keep scoring 7
    poll(job)
    assert job.queries["predict"] is restarted
    fake.aliases = {"challenger": "8"}                                # the alias moved
    poll(job)
    assert serving(job) == (SHIPPED_VERSION, ("challenger", "8"))
    fake.aliases = {}                                                 # the alias went: no shadow model
    poll(job)
    assert serving(job) == (SHIPPED_VERSION, None) and job.shadow is None


def test_a_promotion_restarts_once_with_the_previous_champion_in_shadow(job):
    job, fake = job
    fake.aliases = {"champion": "3", "challenger": "4"}
    poll(job)
    assert serving(job) == ("3", ("challenger", "4"))
    fake.aliases = {"champion": "4", "previous": "3"}
    before = job.queries["predict"]
    job.watcher.check()                                               # the champion swap takes the shadow along
    assert before.stopped and serving(job) == ("4", ("previous", "3"))
    after = job.queries["predict"]
    job.follow_shadow()
    assert job.queries["predict"] is after                            # no second restart
    fake.aliases = {"champion": "4"}                                  # probation over
    poll(job)
    assert serving(job) == ("4", None)


def test_a_shadow_model_that_cannot_be_loaded_never_stops_the_answers(job):
    job, fake = job
    fake.aliases = {"challenger": "7"}
    poll(job)
    fake.aliases, fake.broken = {"challenger": "8"}, {"8"}
    poll(job)                                                         # answers go on, without a shadow model
    assert serving(job) == (SHIPPED_VERSION, None) and fake.loads == ["7", "8"]
    answering = job.queries["predict"]
    poll(job)
    assert fake.loads == ["7", "8"] and job.queries["predict"] is answering   # not at every poll
    first_pause = job.shadow_failures[("challenger", "8")][1]
    job.shadow_failures[("challenger", "8")] = (1, 0.0)               # the pause is over
    poll(job)
    assert fake.loads == ["7", "8", "8"] and job.queries["predict"] is answering
    assert job.shadow_failures[("challenger", "8")][1] > first_pause  # and the next one is longer
    fake.broken = set()
    job.shadow_failures[("challenger", "8")] = (2, 0.0)
    poll(job)
    assert serving(job) == (SHIPPED_VERSION, ("challenger", "8")) and not job.shadow_failures
