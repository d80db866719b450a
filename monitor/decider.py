"""The promotion decider: promotion, refusal, rollback and the end of a probation, on live evidence.

Off the user's path, in the monitor process (a thread of its own): it reads the shadow topic (the
challenger's, or during a probation the previous champion's, predictions of every request) and
the scored topic (the champion's predictions against the flights' outcomes), in a consumer group
of its own (``<FD_MONITOR_GROUP>-decider``):

* every shadow prediction is stored (Cassandra ``shadow_by_uuid``), since its request's outcome
  comes minutes to days later;
* a scored record (status 'scored') finds the shadow prediction of its UUID and makes a *pair*
  (``shadow_pairs``, one row per UUID and contest: at-least-once topics count it once; the counts
  are read back from there after a restart). A scored record read before its shadow prediction
  (the two topics are read side by side) waits up to WAIT_S for it while a shadow model exists;
* after each batch the rule (flightdelay/promotion.py) judges the contests the registry's aliases
  name: champion against ``challenger``, and champion against ``previous`` (its probation), and
  acts: promote (champion -> the challenger, previous -> the former champion, challenger removed),
  refuse (challenger removed), roll back (champion -> previous, previous removed), pass (previous
  removed). Each is recorded as MLflow version tags, a ``model_events`` row and one log line;
  where each contest stands is kept in ``model_contests`` for the model page.

With no challenger and no previous alias (the default) it stores nothing and changes nothing.
Offsets are committed only once a batch is stored: Cassandra away, the batch is kept and tried
again after a backoff (up to FD_MONITOR_BACKOFF_MAX_S); MLflow away, no decision until it answers.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time

from flightdelay import kafka, promotion, registry
from flightdelay.config import Settings
from flightdelay.model_dir import SHIPPED_VERSION
from flightdelay.schema import LABELS, SCORE_STATUSES
from flightdelay.stores.promotion import PromotionStore
from monitor.windows import Malformed, json_object

log = logging.getLogger(__name__)

POLL_S = 0.5
MAX_MESSAGES = 2000
DECIDE_S = 10.0        # the aliases are asked for (and the rule run) at least this often
DECIDE_AFTER_PAIRS_S = 1.0  # new pairs are judged at most this often
UNKNOWN_CONTEST_S = 5.0     # pairs of a contest the aliases read do not name: read them again, at most this often
WAIT_S = 120.0         # how long a scored record waits for its shadow prediction
WAIT_RETRY_S = 5.0     # how often the waiting ones look again
WAITING_MAX = 100_000  # scored records kept waiting (then the oldest are given up)


# -- the messages ------------------------------------------------------------------------------
def _text(record: dict, name: str) -> str:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise Malformed(f"no {name}")
    return str(value)


def _label(record: dict, name: str) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in LABELS:
        raise Malformed(f"{name} {value!r} is not a label class")
    return int(value)


def _millis(record: dict, name: str) -> int | None:
    value = record.get(name)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_shadow(value: bytes | None) -> dict:
    """A shadow-topic message: uuid, model_name, shadow_version (its model_version), role,
    champion_version, prediction (None when unscorable), unscorable, requested_at, predicted_at."""
    record = json_object(value)
    role = record.get("role")
    if role not in (promotion.CHALLENGER, promotion.PREVIOUS):
        raise Malformed(f"role {role!r}")
    prediction = _label(record, "prediction")
    unscorable = record.get("unscorable")
    return {"uuid": _text(record, "UUID"), "model_name": _text(record, "model_name"),
            "shadow_version": _text(record, "model_version"), "role": role,
            "champion_version": _text(record, "champion_version"), "prediction": prediction,
            "unscorable": None if prediction is not None else str(unscorable or "no prediction"),
            "requested_at": _millis(record, "requested_at"), "predicted_at": _millis(record, "predicted_at")}


def parse_scored(value: bytes | None) -> dict:
    """A scored-topic message: uuid, model_name, model_version, status, prediction, actual."""
    record = json_object(value)
    status = record.get("status")
    if status not in SCORE_STATUSES:
        raise Malformed(f"status {status!r}")
    return {"uuid": _text(record, "UUID"), "model_name": _text(record, "model_name"),
            "model_version": _text(record, "model_version"), "status": status,
            "prediction": _label(record, "prediction"), "actual": _label(record, "actual")}


class Unavailable(Exception):
    """A store (``what``: 'cassandra' or 'mlflow') failed while deciding."""

    def __init__(self, what: str, exc: Exception):
        super().__init__(f"{what}: {type(exc).__name__}: {exc}")
        self.what, self.exc = what, exc


def through(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, its failure an Unavailable naming the store."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # any client error of that store
        raise Unavailable(what, exc) from exc


# -- the registry, as the decider reads and moves it -------------------------------------------
class Registry:
    """The aliases and tags of ``s.model_name`` through flightdelay.registry (one MLflow client)."""

    def __init__(self, s: Settings):
        self.s = s
        self._client = None

    def client(self):
        if self._client is None:
            self._client = registry.client(self.s)
        return self._client

    def aliases(self) -> dict[str, str | None]:
        """champion (the shipped model's version when the registry has none), challenger, previous."""
        s, c = self.s, self.client()
        return {"champion": registry.alias_version(s, s.model_alias, c) or SHIPPED_VERSION,
                "challenger": registry.alias_version(s, s.challenger_alias, c),
                "previous": registry.alias_version(s, s.previous_alias, c)}

    def holdout(self, version: str) -> promotion.Holdout:
        found = registry.holdout_comparison(self.s, version, self.client())
        return promotion.Holdout(found["holdout_accuracy"], found["champion_holdout_accuracy"],
                                 found["evaluated_against"])

    def set_alias(self, alias: str, version: str) -> None:
        registry.set_alias(self.s, alias, version, self.client())

    def delete_alias(self, alias: str) -> None:
        registry.delete_alias(self.s, alias, self.client())

    def tag(self, version: str, tags: dict[str, str], on_run: bool = False) -> None:
        registry.set_version_tags(self.s, version, tags, on_run=on_run, mlflow_client=self.client())


def decision_tags(d: promotion.Decision, decided_at: dt.datetime) -> dict[str, str]:
    """The MLflow tags of the version a decision is about: the last decision, and when each kind
    of decision was taken (a version promoted then passing its probation keeps both)."""
    when = decided_at.isoformat(timespec="seconds")
    other = d.champion_version if d.role == promotion.CHALLENGER else d.shadow_version
    return {"decision": d.action, "decided_at": when, "decision_why": d.why[:4900],
            "decision_figures": json.dumps(d.figures, sort_keys=True), "decision_against": other,
            f"{d.action}_at": when}


# -- the decider -------------------------------------------------------------------------------
class Decider:
    def __init__(self, s: Settings, *, store: PromotionStore | None = None, registry_: Registry | None = None,
                 clock=time.monotonic):
        from monitor.service import Backoff  # the monitor's own backoff (here, not at the top: service imports us)

        self.s = s
        self.rule = promotion.Rule.from_settings(s)
        self.store = store or PromotionStore(s)
        self.registry = registry_ or Registry(s)
        self.clock = clock
        self.cassandra = Backoff(s.monitor_backoff_max_s)
        self.mlflow = Backoff(s.monitor_backoff_max_s)
        self.books: dict[tuple[str, str, str], promotion.PairBook] = {}
        self.waiting: dict[str, tuple[dict, float, float]] = {}   # uuid -> (scored, give up at, next look)
        self.pending: list = []            # a batch not stored yet: (shadows, scored, offsets)
        self.events: list[tuple] = []      # event rows not stored yet
        self.aliases: dict | None = None   # as last read
        self.holdouts: dict[str, promotion.Holdout] = {}
        self.contest_written: dict[tuple, tuple] = {}
        self.next_decide = 0.0
        self.last_decided = float("-inf")
        self.shadow_seen_at = self.aliases_read_at = float("-inf")
        self.paired_contests: set = set()   # contests that got pairs since the last decision
        self.undecided = False              # pairs came since the last decision
        self.last: dict | None = None      # the last decision taken, for the status file
        self.counts = {"shadow": 0, "scored": 0, "malformed": 0, "paired": 0, "unpaired": 0, "unscorable": 0,
                       "other_champion": 0, "decisions": 0, "registry_failed": 0, "cassandra_failed": 0}
        self.consumer = None
        self.kafka_down = False
        self.assigned: list[str] = []

    # -- Kafka -------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.consumer = kafka.consumer(self.s, f"{self.s.monitor_group}-decider", {
            "auto.offset.reset": self.s.monitor_starting_offsets, "enable.auto.commit": True,
            "enable.auto.offset.store": False, "error_cb": self.kafka_error})
        self.consumer.subscribe([self.s.shadow_topic, self.s.scored_topic], on_assign=self.on_assign)

    def kafka_error(self, err) -> None:
        """librdkafka's client-level errors (brokers down ...): one line when it starts failing."""
        if not self.kafka_down:
            log.warning("decider: Kafka: %s (the consumer keeps reconnecting)", err)
        self.kafka_down = True

    def on_assign(self, consumer, partitions) -> None:
        self.assigned = sorted({f"{p.topic}[{p.partition}]" for p in partitions} | set(self.assigned))
        log.info("decider reading %s", ", ".join(self.assigned))

    def take(self, messages) -> tuple[list[dict], list[dict], dict]:
        """(shadow predictions, scored records, next offset per partition) of a batch."""
        shadows, scored, offsets = [], [], {}
        for msg in messages:
            if msg.error():
                log.warning("Kafka: %s", msg.error())
                continue
            if self.kafka_down:
                log.info("decider: Kafka answers again")
                self.kafka_down = False
            offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
            try:
                if msg.topic() == self.s.shadow_topic:
                    shadows.append(parse_shadow(msg.value()))
                    self.counts["shadow"] += 1
                else:
                    record = parse_scored(msg.value())
                    self.counts["scored"] += 1
                    if record["status"] == "scored" and record["actual"] is not None:
                        scored.append(record)
            except Malformed as exc:
                self.counts["malformed"] += 1
                log.debug("malformed message at %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), exc)
        return shadows, scored, offsets

    def commit(self, offsets: dict) -> None:
        if self.consumer is None or not offsets:
            return
        from confluent_kafka import TopicPartition

        self.consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()])

    # -- a batch -----------------------------------------------------------------------------------
    def shadow_expected(self, now: float) -> bool:
        """Whether a scored record without its shadow prediction may yet get one: a shadow model
        is named by the registry as last read (or it could not be read), or shadow predictions
        came within WAIT_S (the aliases read may be older than the contest)."""
        return (self.aliases is None or bool(self.aliases.get("challenger") or self.aliases.get("previous"))
                or now - self.shadow_seen_at < WAIT_S)

    def store_batch(self, shadows: list[dict], scored: list[dict], now: float) -> list[promotion.Pair]:
        """Store the shadow predictions, pair the scored records (the batch's and the waiting ones
        due for another look) and store the pairs; raises when Cassandra fails (nothing is lost:
        the batch is tried again)."""
        if shadows:
            self.store.write_shadows(shadows)
            self.shadow_seen_at = now
        due = [rec for rec, _, next_look in self.waiting.values() if next_look <= now]
        if not self.shadow_expected(now):
            scored = []   # no shadow model and none in this batch: nothing to pair these with
        candidates = scored + due
        if not candidates:
            return []
        found = self.store.shadows_of([r["uuid"] for r in candidates])
        pairs = []
        for record in candidates:
            made = [promotion.pair_of(sh, record) for sh in found.get(record["uuid"], [])]
            if not made:
                self.wait_or_give_up(record, now)
                continue
            self.waiting.pop(record["uuid"], None)
            for pair, why in made:
                if pair is not None:
                    pairs.append(pair)
                elif why == "unscorable":
                    self.counts["unscorable"] += 1
                elif why == "other champion":
                    self.counts["other_champion"] += 1
        self.store.write_pairs(pairs)
        for pair in pairs:
            self.paired_contests.add(pair.contest)
            book = self.books.get(pair.contest)
            if book is not None:
                book.add(pair.uuid, pair.champion_correct, pair.shadow_correct)
        self.counts["paired"] += len(pairs)
        return pairs

    def wait_or_give_up(self, record: dict, now: float) -> None:
        uuid = record["uuid"]
        give_up_at = self.waiting[uuid][1] if uuid in self.waiting else now + WAIT_S
        if now >= give_up_at or not self.shadow_expected(now):
            self.waiting.pop(uuid, None)
            self.counts["unpaired"] += 1   # no shadow prediction of it came
            return
        self.waiting[uuid] = (record, give_up_at, now + WAIT_RETRY_S)
        while len(self.waiting) > WAITING_MAX:
            self.waiting.pop(next(iter(self.waiting)))
            self.counts["unpaired"] += 1

    def turn(self, messages, now: float | None = None) -> list[promotion.Decision]:
        """Store a batch, then decide: after new pairs (at most every DECIDE_AFTER_PAIRS_S), and
        every DECIDE_S whatever came (the aliases may have moved). The decisions taken."""
        now = self.clock() if now is None else now
        if messages:
            self.pending.append(self.take(messages))
        elif not self.pending and any(next_look <= now for _, _, next_look in self.waiting.values()):
            self.pending.append(([], [], {}))   # the waiting scored records look again
        self.undecided = self.store_pending(now) > 0 or self.undecided
        self.store_events(now)
        if now >= self.next_decide or (self.undecided and now >= self.last_decided + DECIDE_AFTER_PAIRS_S):
            return self.decide(now)
        return []

    def store_pending(self, now: float) -> int:
        """Store the batches read (oldest first) and commit their offsets; the pairs made."""
        paired = 0
        while self.pending and self.cassandra.ready(now):
            shadows, scored, offsets = self.pending[0]
            try:
                paired += len(self.store_batch(shadows, scored, now))
            except Exception as exc:  # Cassandra away: keep the batch (its offsets uncommitted), retry later
                self.cassandra_failed(exc, now)
                break
            self.pending.pop(0)
            self.commit(offsets)
            if self.cassandra.delay:
                log.info("Cassandra answers again: the decider's batches are stored")
            self.cassandra.succeeded()
        return paired

    def cassandra_failed(self, exc: Exception, now: float) -> None:
        self.counts["cassandra_failed"] += 1
        delay = self.cassandra.failed(now)
        log.warning("decider: Cassandra: %s: %s; %d batches and %d events waiting, next try in %.0f s",
                    type(exc).__name__, str(exc)[:200], len(self.pending), len(self.events), delay)
        self.store.reset()

    # -- deciding ----------------------------------------------------------------------------------
    def decide(self, now: float) -> list[promotion.Decision]:
        """Judge the contests the aliases name and act on what the rule says; the decisions taken
        (at most one: the aliases it moved are read again before the next)."""
        self.last_decided, self.undecided = now, False
        if not self.mlflow.ready(now) or not self.cassandra.ready(now):
            return []
        try:
            known = self.current_contests(self.aliases) if self.aliases is not None else {}
            unknown = not self.paired_contests <= set(known) and now >= self.aliases_read_at + UNKNOWN_CONTEST_S
            if now >= self.next_decide or self.aliases is None or unknown:
                # (unknown: pairs of a contest the aliases read do not name, which may be older than it)
                self.aliases = through("mlflow", self.registry.aliases)
                self.aliases_read_at, self.next_decide = now, now + DECIDE_S
            self.paired_contests = set()
            self.drop_aliases_on_the_champion()
            contests = self.current_contests(self.aliases)
            self.books = {k: v for k, v in self.books.items() if k in contests}
            for contest, role in contests.items():
                decision = self.judge(contest, role)
                acted = decision.action in promotion.ACTIONS and self.act(decision, now)
                if acted or decision.action == promotion.WAIT:
                    through("cassandra", self.write_contest, decision)
                if acted:
                    self.next_decide = now   # read the moved aliases at the next turn
                    return [decision]
        except Unavailable as u:  # no decision until it answers; the pairs are stored meanwhile
            if u.what == "cassandra":
                self.cassandra_failed(u.exc, now)
            else:
                self.registry_failed(u.exc, now)
            return []
        if self.mlflow.delay:
            log.info("MLflow answers again: the decider decides")
        self.mlflow.succeeded()
        return []

    def registry_failed(self, exc: Exception, now: float) -> list:
        self.counts["registry_failed"] += 1
        delay = self.mlflow.failed(now)
        log.warning("decider: registry %s: %s: %s; no decision, next try in %.0f s", self.s.mlflow_uri,
                    type(exc).__name__, str(exc)[:200], delay)
        return []

    def drop_aliases_on_the_champion(self) -> None:
        """A challenger or previous alias on the champion's own version (left by a decision cut
        short, or set by hand) names no contest: removed."""
        for role, alias in ((promotion.CHALLENGER, self.s.challenger_alias), (promotion.PREVIOUS, self.s.previous_alias)):
            if self.aliases.get(role) is not None and self.aliases[role] == self.aliases["champion"]:
                through("mlflow", self.registry.delete_alias, alias)
                log.info("alias %s removed: it named the champion v%s itself", alias, self.aliases["champion"])
                self.aliases[role] = None

    def current_contests(self, aliases: dict) -> dict[tuple[str, str, str], str]:
        """(model_name, champion, shadow) -> role of the contests the aliases name; the probation
        first (a rollback outranks a promotion)."""
        champion, found = aliases["champion"], {}
        for role in (promotion.PREVIOUS, promotion.CHALLENGER):
            version = aliases.get(role)
            if version is not None and version != champion:
                found[(self.s.model_name, champion, version)] = role
        return found

    def book(self, contest: tuple[str, str, str]) -> promotion.PairBook:
        """The contest's pairs, read back from Cassandra the first time (after a start, or when a
        contest begins): every pair stored before, by this process or an earlier one."""
        if contest not in self.books:
            book = promotion.PairBook()
            for uuid, champion_correct, shadow_correct in through("cassandra", self.store.pairs_of, contest):
                book.add(uuid, champion_correct, shadow_correct)
            self.books[contest] = book
        return self.books[contest]

    def judge(self, contest: tuple[str, str, str], role: str) -> promotion.Decision:
        _, champion, shadow = contest
        pairs = self.book(contest).pairs()
        if role == promotion.CHALLENGER:
            if pairs.n < self.rule.min_outcomes:   # no need to ask MLflow for the holdout yet
                return promotion.judge_challenger(pairs, promotion.Holdout(), self.rule, champion, shadow)
            return promotion.judge_challenger(pairs, self.holdout(shadow), self.rule, champion, shadow)
        return promotion.judge_probation(pairs, self.rule, champion, shadow)

    def holdout(self, version: str) -> promotion.Holdout:
        if version not in self.holdouts:
            self.holdouts[version] = through("mlflow", self.registry.holdout, version)
        return self.holdouts[version]

    def write_contest(self, d: promotion.Decision) -> None:
        """Where the contest stands, when its figures or state changed."""
        key = (d.champion_version, d.shadow_version)
        state = (d.action, d.figures["n"], d.figures["champion_holdout"])
        if self.contest_written.get(key) != state:
            self.store.write_contest(self.s.model_name, d)
            self.contest_written[key] = state

    def act(self, d: promotion.Decision, now: float) -> bool:
        """Move the aliases as ``d`` says if they are still what it was judged on; record it."""
        current = through("mlflow", self.registry.aliases)
        alias = self.s.challenger_alias if d.role == promotion.CHALLENGER else self.s.previous_alias
        if current["champion"] != d.champion_version or current.get(d.role) != d.shadow_version:
            log.info("aliases moved since the %s of v%s was judged (%s); judged again next turn", d.action,
                     d.subject_version, current)
            return False
        served = d.champion_version
        if d.action in (promotion.PROMOTE, promotion.ROLLBACK):
            # The decisive move first: once the champion alias moved, the decision is taken and
            # recorded even if a later step fails (decide() removes an alias left on the champion).
            through("mlflow", self.registry.set_alias, self.s.model_alias, d.shadow_version)
            served = d.shadow_version
        try:
            if d.action == promotion.PROMOTE and d.champion_version == SHIPPED_VERSION:
                through("mlflow", self.registry.delete_alias, self.s.previous_alias)  # not in the registry: no probation
            elif d.action == promotion.PROMOTE:
                through("mlflow", self.registry.set_alias, self.s.previous_alias, d.champion_version)
            through("mlflow", self.registry.delete_alias, alias)   # the shadow of this contest stops
        except Unavailable as u:
            if served == d.champion_version:
                raise   # nothing moved: nothing taken
            log.warning("%s of v%s: champion alias moved to v%s, the other aliases not (%s)", d.action,
                        d.subject_version, served, u)
        self.record(d, served, now)
        return True

    def record(self, d: promotion.Decision, served: str, now: float) -> None:
        decided_at = dt.datetime.now(dt.timezone.utc)
        self.counts["decisions"] += 1
        self.last = {**d.as_dict(), "served_version": served, "decided_at": decided_at.isoformat(timespec="seconds")}
        log.info("decision %s: %s v%s (%s, champion v%s, shadow v%s), served: v%s; n=%d b=%d c=%d p_better=%.3g "
                 "p_worse=%.3g: %s", d.action.upper(), self.s.model_name, d.subject_version, d.role,
                 d.champion_version, d.shadow_version, served, d.figures["n"], d.figures["champion_only"],
                 d.figures["shadow_only"], d.figures["p_shadow_better"], d.figures["p_champion_better"], d.why)
        self.events.append((d, served, decided_at))
        try:
            self.registry.tag(d.subject_version, decision_tags(d, decided_at))
            if d.action in (promotion.PROMOTE, promotion.ROLLBACK):  # the model page says why it is live
                self.registry.tag(served, {"promoted": "true", "live_version": served, "promotion_reason":
                                           f"{d.action} on live evidence: {d.why}"[:4900]}, on_run=True)
        except Exception as exc:  # the aliases have moved: the event row still says what happened
            log.warning("decision %s of v%s taken but its MLflow tags not all set: %s: %s", d.action,
                        d.subject_version, type(exc).__name__, exc)
        self.store_events(now)

    def store_events(self, now: float) -> None:
        while self.events and self.cassandra.ready(now):
            d, served, decided_at = self.events[0]
            try:
                self.store.write_event(self.s.model_name, d, served, decided_at)
            except Exception as exc:  # kept and written once Cassandra answers
                self.cassandra_failed(exc, now)
                return
            self.events.pop(0)

    # -- the thread --------------------------------------------------------------------------------
    def status(self) -> dict:
        return {**self.counts, "waiting": len(self.waiting), "pending_batches": len(self.pending),
                "pending_events": len(self.events), "assigned": self.assigned, "aliases": self.aliases,
                "last": self.last}

    def run(self, stop: threading.Event) -> None:
        self.connect()
        try:
            while not stop.is_set():
                if self.aliases is None:   # nothing to judge before the registry answered once: read nothing
                    self.decide(self.clock())
                    if self.aliases is None:
                        stop.wait(POLL_S)
                        continue
                if self.pending:   # a batch waits for Cassandra: read nothing more until it is stored
                    stop.wait(min(POLL_S, max(0.0, self.cassandra.next_at - self.clock())))
                    self.turn([])
                    continue
                self.turn(kafka.arrived_messages(self.consumer, max_messages=MAX_MESSAGES, timeout=POLL_S))
        finally:
            self.consumer.close()
            self.store.reset()
            log.info("decider stopped: %s", self.counts)


class DeciderThread:
    """The decider in a thread of the monitor process: a failure of its own is logged and shown in
    the status file; the drift windows go on."""

    def __init__(self, s: Settings, stop: threading.Event, decider: Decider | None = None):
        self.decider = decider or Decider(s)
        self.stop = stop
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="decider", daemon=True)

    def _run(self) -> None:
        try:
            self.decider.run(self.stop)
        except Exception as exc:  # a bug, not an outage (those are retried inside): say so, keep the monitor
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("decider stopped")

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def status(self) -> dict:
        return {**self.decider.status(), "running": self._thread.is_alive(), "error": self.error}
