"""The promotion decider (monitor/decider.py) without servers: the topics' messages parsed, shadow
predictions paired with their scored records once per UUID, counts rebuilt after a restart, the
registry moved and every decision recorded, a Cassandra outage survived; with stand-ins for the
store (the tables of flightdelay/stores/promotion.py) and the registry."""
import json

import pytest

from flightdelay import promotion
from flightdelay.config import load_settings
from monitor.decider import Decider, Malformed, parse_scored, parse_shadow

SHADOW, SCORED = "t-shadow", "t-scored"


@pytest.fixture
def s(tmp_path):
    return load_settings({"FD_STATE_DIR": str(tmp_path), "FD_SHADOW_TOPIC": SHADOW, "FD_SCORED_TOPIC": SCORED,
                          "FD_MODEL_NAME": "m", "FD_PROMOTE_MIN_OUTCOMES": "100", "FD_PROMOTE_MAX_OUTCOMES": "1000",
                          "FD_PROMOTE_ALPHA": "0.01", "FD_PROBATION_OUTCOMES": "300"})


class Msg:
    offsets = {}

    def __init__(self, topic, record):
        self._topic = topic
        self._value = record if isinstance(record, bytes) else json.dumps(record).encode()
        self._offset = Msg.offsets[topic] = Msg.offsets.get(topic, -1) + 1

    def error(self):
        return None

    def value(self):
        return self._value

    def topic(self):
        return self._topic

    def partition(self):
        return 0

    def offset(self):
        return self._offset


class Store:
    """The decider's tables in memory; every call fails while ``down``."""

    def __init__(self):
        self.down = False
        self.shadows, self.pairs, self.contests, self.events = {}, {}, {}, []
        self.lookups = 0

    def check(self):
        if self.down:
            raise ConnectionError("Cassandra down")

    def write_shadows(self, shadows):
        self.check()
        for p in shadows:
            self.shadows[(p["uuid"], p["shadow_version"])] = p

    def shadows_of(self, uuids):
        self.check()
        self.lookups += 1
        found = {}
        for (uuid, _), p in self.shadows.items():
            if uuid in uuids:
                found.setdefault(uuid, []).append(p)
        return found

    def write_pairs(self, pairs):
        self.check()
        for p in pairs:
            self.pairs.setdefault(p.contest, {})[p.uuid] = p

    def pairs_of(self, contest):
        self.check()
        return [(u, p.champion_correct, p.shadow_correct) for u, p in self.pairs.get(contest, {}).items()]

    def write_contest(self, model_name, d):
        self.check()
        self.contests[(d.champion_version, d.shadow_version)] = d

    def write_event(self, model_name, d, served, decided_at):
        self.check()
        self.events.append((d.action, d.subject_version, served, d))

    def reset(self):
        pass


class Registry:
    def __init__(self, champion="3", challenger=None, previous=None, holdout=(0.55, 0.53, "3")):
        self.alias = {"champion": champion, "challenger": challenger, "previous": previous}
        self.holdouts = {"4": promotion.Holdout(*holdout)}
        self.tags = {}
        self.down = False

    def aliases(self):
        if self.down:
            raise ConnectionError("MLflow down")
        return dict(self.alias)

    def holdout(self, version):
        return self.holdouts.get(version, promotion.Holdout())

    def set_alias(self, alias, version):
        self.alias[alias] = version

    def delete_alias(self, alias):
        self.alias[alias] = None

    def tag(self, version, tags, on_run=False):
        self.tags.setdefault(version, {}).update(tags)


def shadow_msg(uuid, prediction, version="4", champion="3", role="challenger"):
    return Msg(SHADOW, {"UUID": uuid, "model_name": "m", "model_version": version, "role": role,
                        "champion_version": champion, "prediction": prediction, "label": "x", "requested_at": 1,
                        "predicted_at": 2})


def scored_msg(uuid, prediction, actual, version="3", status="scored"):
    return Msg(SCORED, {"UUID": uuid, "model_name": "m", "model_version": version, "prediction": prediction,
                        "status": status, "actual": actual, "correct": prediction == actual})


def contest(n, champion_right, shadow_right, start=0, **kw):
    """``n`` requests: shadow predictions then their scored records; who is right per index."""
    shadows, scored = [], []
    for i in range(start, start + n):
        actual = 2
        shadows.append(shadow_msg(f"u{i}", actual if shadow_right(i) else 0, **{k: v for k, v in kw.items()
                                                                                if k in ("version", "champion", "role")}))
        scored.append(scored_msg(f"u{i}", actual if champion_right(i) else 1, actual,
                                 version=kw.get("champion", "3")))
    return shadows, scored


def decider(s, store, registry, clock=lambda: 0.0):
    return Decider(s, store=store, registry_=registry, clock=clock)


def test_messages_are_parsed_defensively():
    assert parse_shadow(json.dumps({"UUID": "u", "model_name": "m", "model_version": 4, "role": "previous",
                                    "champion_version": "5", "prediction": None, "unscorable": "route"}).encode()) == {
        "uuid": "u", "model_name": "m", "shadow_version": "4", "role": "previous", "champion_version": "5",
        "prediction": None, "unscorable": "route", "requested_at": None, "predicted_at": None}
    # Spark's to_json leaves null fields out
    assert parse_shadow(json.dumps({"UUID": "u", "model_name": "m", "model_version": "4", "role": "challenger",
                                    "champion_version": "3"}).encode())["unscorable"] == "no prediction"
    for bad in (b"{", b"[]", None, json.dumps({"UUID": "u", "role": "boss"}).encode(),
                json.dumps({"UUID": "u", "model_name": "m", "model_version": "4", "role": "challenger",
                            "champion_version": "3", "prediction": 7}).encode()):
        with pytest.raises(Malformed):
            parse_shadow(bad)
    assert parse_scored(json.dumps({"UUID": "u", "model_name": "m", "model_version": "3", "status": "cancelled",
                                    "prediction": 1, "actual": None}).encode())["actual"] is None
    with pytest.raises(Malformed):
        parse_scored(json.dumps({"UUID": "u", "model_name": "m", "model_version": "3", "status": "lost"}).encode())


def test_without_challenger_or_previous_nothing_is_stored_looked_up_or_moved(s):
    store, reg = Store(), Registry()
    d = decider(s, store, reg)
    d.turn([])   # reads the aliases: none but the champion
    _, scored = contest(200, lambda i: True, lambda i: True)
    assert d.turn(scored, now=1.0) == [] and d.turn([], now=60.0) == []
    assert store.lookups == 0 and not store.pairs and not store.events and not store.contests
    assert reg.alias == {"champion": "3", "challenger": None, "previous": None} and not reg.tags


def test_a_clearly_better_challenger_is_promoted_and_recorded(s):
    store, reg = Store(), Registry(challenger="4")
    d = decider(s, store, reg)
    shadows, scored = contest(300, lambda i: i % 4 == 0, lambda i: i % 4 != 3)  # 25% against 75% right
    assert d.turn(shadows + scored[:50], now=0.0) == []          # 50 pairs: below the minimum
    assert store.contests[("3", "4")].action == promotion.WAIT
    (taken,) = d.turn(scored[50:], now=2.0)
    assert taken.action == promotion.PROMOTE and taken.figures["n"] == 300
    assert reg.alias == {"champion": "4", "challenger": None, "previous": "3"}
    assert reg.tags["4"]["decision"] == "promote" and "promote_at" in reg.tags["4"]
    assert json.loads(reg.tags["4"]["decision_figures"])["shadow_only"] == taken.figures["shadow_only"]
    assert reg.tags["4"]["promotion_reason"].startswith("promote on live evidence")
    assert [(a, v, served) for a, v, served, _ in store.events] == [("promote", "4", "4")]
    assert store.contests[("3", "4")].action == promotion.PROMOTE
    assert d.last["action"] == "promote" and d.status()["decisions"] == 1


def test_a_request_read_twice_is_counted_once_and_counts_survive_a_restart(s):
    store, reg = Store(), Registry(challenger="4")
    d = decider(s, store, reg)
    shadows, scored = contest(60, lambda i: False, lambda i: True)
    d.turn(shadows + scored, now=0.0)
    d.turn(shadows + scored, now=2.0)     # redelivered: the same 60 pairs
    assert store.contests[("3", "4")].figures["n"] == 60
    again = decider(s, store, reg)        # a restarted monitor reads the pairs back
    more_shadows, more_scored = contest(60, lambda i: False, lambda i: True, start=60)
    (taken,) = again.turn(more_shadows + more_scored, now=0.0)
    assert taken.action == promotion.PROMOTE and taken.figures["n"] == 120 and taken.figures["shadow_only"] == 120


def test_a_scored_record_read_before_its_shadow_prediction_waits_for_it(s):
    store, reg = Store(), Registry(challenger="4")
    d = decider(s, store, reg)
    d.turn([], now=0.0)
    shadows, scored = contest(10, lambda i: True, lambda i: True)
    d.turn(scored, now=1.0)
    assert len(d.waiting) == 10 and not store.pairs
    d.turn(shadows, now=2.0)              # not due for another look yet
    d.turn([], now=7.0)
    assert len(store.pairs[("m", "3", "4")]) == 10 and not d.waiting and d.counts["unpaired"] == 0


def test_a_challenger_worse_on_the_holdout_is_refused_however_good_live(s):
    store, reg = Store(), Registry(challenger="4", holdout=(0.50, 0.53, "3"))
    d = decider(s, store, reg)
    shadows, scored = contest(200, lambda i: False, lambda i: True)
    (taken,) = d.turn(shadows + scored, now=0.0)
    assert taken.action == promotion.REFUSE and "worse on the holdout" in taken.why
    assert reg.alias == {"champion": "3", "challenger": None, "previous": None}
    assert reg.tags["4"]["decision"] == "refuse" and [e[0] for e in store.events] == ["refuse"]


def test_a_champion_on_probation_is_rolled_back_when_its_predecessor_is_better(s):
    store, reg = Store(), Registry(champion="4", previous="3")
    d = decider(s, store, reg)
    shadows, scored = contest(150, lambda i: i % 3 == 0, lambda i: True, version="3", champion="4", role="previous")
    (taken,) = d.turn(shadows + scored, now=0.0)
    assert taken.action == promotion.ROLLBACK and taken.subject_version == "4"
    assert reg.alias == {"champion": "3", "challenger": None, "previous": None}
    assert reg.tags["4"]["decision"] == "rollback" and reg.tags["3"]["live_version"] == "3"
    assert [(a, v, served) for a, v, served, _ in store.events] == [("rollback", "4", "3")]


def test_a_probation_passes(s):
    store, reg = Store(), Registry(champion="4", previous="3")
    d = decider(s, store, reg)
    shadows, scored = contest(300, lambda i: i % 2 == 0, lambda i: i % 2 == 0, version="3", champion="4",
                              role="previous")
    (taken,) = d.turn(shadows + scored, now=0.0)
    assert taken.action == promotion.PASS and reg.alias == {"champion": "4", "challenger": None, "previous": None}


def test_a_cassandra_outage_keeps_the_batch_and_its_offsets(s):
    store, reg = Store(), Registry(challenger="4")
    d = decider(s, store, reg)
    committed = []
    d.commit = committed.append
    store.down = True
    shadows, scored = contest(120, lambda i: False, lambda i: True)
    assert d.turn(shadows + scored, now=0.0) == []
    assert len(d.pending) == 1 and not committed and not store.pairs
    store.down = False
    assert d.turn([], now=0.5) == []       # backing off
    (taken,) = d.turn([], now=2.0)
    assert taken.action == promotion.PROMOTE and not d.pending and committed == [{(SHADOW, 0): 120 + shadows[0].offset(),
                                                                                  (SCORED, 0): 120 + scored[0].offset()}]


def test_an_mlflow_outage_decides_nothing_until_it_answers(s):
    store, reg = Store(), Registry(challenger="4")
    d = decider(s, store, reg)
    reg.down = True
    shadows, scored = contest(120, lambda i: False, lambda i: True)
    assert d.turn(shadows + scored, now=0.0) == [] and len(store.pairs[("m", "3", "4")]) == 120
    reg.down = False
    assert d.turn([], now=0.5) == []
    assert [t.action for t in d.turn([], now=11.0)] == [promotion.PROMOTE]


def test_nothing_is_moved_when_the_aliases_moved_since_the_judgement(s):
    class Moving(Registry):
        calls = 0

        def aliases(self):
            self.calls += 1
            if self.calls == 2:   # between judging and acting, someone named another challenger
                self.alias["challenger"] = "5"
            return super().aliases()

    store, reg = Store(), Moving(challenger="4")
    d = decider(s, store, reg)
    shadows, scored = contest(120, lambda i: False, lambda i: True)
    assert d.turn(shadows + scored, now=0.0) == []
    assert reg.alias == {"champion": "3", "challenger": "5", "previous": None} and not store.events and not reg.tags


def test_a_contest_that_began_after_the_aliases_were_read_is_judged_without_waiting_for_the_next_read(s):
    store, reg = Store(), Registry()
    d = decider(s, store, reg)
    d.turn([], now=0.0)                       # no challenger yet
    reg.alias["challenger"] = "4"             # the DAG registers one; the job starts scoring it in shadow
    shadows, scored = contest(120, lambda i: False, lambda i: True)
    d.turn(shadows, now=1.0)
    (taken,) = d.turn(scored, now=6.0)        # the scored records come in a batch of their own
    assert taken.action == promotion.PROMOTE and taken.figures["n"] == 120


def test_pairs_arriving_just_after_a_decision_are_judged_a_second_later_not_ten(s):
    store, reg = Store(), Registry(challenger="4")
    d = decider(s, store, reg)
    d.turn([], now=0.0)
    shadows, scored = contest(120, lambda i: False, lambda i: True)
    assert d.turn(shadows + scored, now=0.5) == []     # judged at most once a second
    assert [t.action for t in d.turn([], now=1.2)] == [promotion.PROMOTE]
