"""The promotion and rollback rule (issue 28): pure logic, no I/O.

The champion answers every request; a shadow model (the ``challenger``, or during a probation the
``previous`` champion) scores the same requests without answering anyone. Once a flight's outcome
is known, each such request is a *pair*: was the champion right, was the shadow right. The rule
looks at the pairs of one contest (one champion version against one shadow version):

* McNemar's exact test on the discordant pairs: ``b`` = champion alone right, ``c`` = shadow alone
  right. Under "equally good", ``c`` of the ``b + c`` discordant pairs is Binomial(b + c, 1/2);
  the one-sided p-value that the shadow is better is P(X >= c), that it is worse P(X >= b)
  (``scipy.stats.binomtest``). Pairs where both agree on being right or wrong say nothing about
  which is better and do not enter the test.
* Challenger (``judge_challenger``): nothing is decided before ``min_outcomes`` pairs. PROMOTE when
  the challenger is significantly better (p < alpha) AND not worse on the holdout (its holdout
  accuracy >= the champion's on the same held-out flights, as training/observed.py records them,
  against the version serving now); REFUSE when it is significantly worse, when it is better live
  but not on the holdout (or has no holdout comparison with the serving version), or when
  ``max_outcomes`` pairs gave no verdict; WAIT otherwise.
* Probation (``judge_probation``): after a promotion the former champion keeps scoring in shadow.
  ROLLBACK when it is significantly better than the new champion by the same test (with the same
  minimum of pairs); PASS (probation over) after ``probation_outcomes`` pairs without that; WAIT
  otherwise.

The test is evaluated again after every batch of new pairs: repeated looks make the chance of a
false verdict larger than alpha (docs/monitoring.md says so); alpha = 0.01 and the minimum of pairs
keep it small.

Pairs are counted once per request UUID (``PairBook``): the topics are at-least-once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PROMOTE, REFUSE, WAIT, ROLLBACK, PASS = "promote", "refuse", "wait", "rollback", "pass"
CHALLENGER, PREVIOUS = "challenger", "previous"   # the shadow's role, as the shadow topic names it
ACTIONS = (PROMOTE, REFUSE, ROLLBACK, PASS)        # the decisions that change the registry


@dataclass(frozen=True)
class Pairs:
    """Paired outcomes of one contest: how often each model was right on the same flights."""
    both_right: int = 0
    champion_only: int = 0     # b: the champion right, the shadow wrong
    shadow_only: int = 0       # c: the shadow right, the champion wrong
    both_wrong: int = 0

    @property
    def n(self) -> int:
        return self.both_right + self.champion_only + self.shadow_only + self.both_wrong

    @property
    def discordant(self) -> int:
        return self.champion_only + self.shadow_only

    @property
    def champion_accuracy(self) -> float | None:
        return None if self.n == 0 else (self.both_right + self.champion_only) / self.n

    @property
    def shadow_accuracy(self) -> float | None:
        return None if self.n == 0 else (self.both_right + self.shadow_only) / self.n

    def add(self, champion_correct: bool, shadow_correct: bool) -> Pairs:
        if champion_correct and shadow_correct:
            return Pairs(self.both_right + 1, self.champion_only, self.shadow_only, self.both_wrong)
        if champion_correct:
            return Pairs(self.both_right, self.champion_only + 1, self.shadow_only, self.both_wrong)
        if shadow_correct:
            return Pairs(self.both_right, self.champion_only, self.shadow_only + 1, self.both_wrong)
        return Pairs(self.both_right, self.champion_only, self.shadow_only, self.both_wrong + 1)

    @classmethod
    def of(cls, outcomes) -> Pairs:
        """From (champion_correct, shadow_correct) pairs."""
        found = cls()
        for champion_correct, shadow_correct in outcomes:
            found = found.add(bool(champion_correct), bool(shadow_correct))
        return found


@dataclass
class PairBook:
    """The pairs of one contest by request UUID: a UUID seen again (a redelivered message, a
    restart reading the table back) is counted once, with its first answer."""
    outcomes: dict[str, tuple[bool, bool]] = field(default_factory=dict)

    def add(self, uuid: str, champion_correct: bool, shadow_correct: bool) -> bool:
        """True if the UUID was new."""
        if uuid in self.outcomes:
            return False
        self.outcomes[uuid] = (bool(champion_correct), bool(shadow_correct))
        return True

    def pairs(self) -> Pairs:
        return Pairs.of(self.outcomes.values())


@dataclass(frozen=True)
class Pair:
    """One request scored by both models, against its flight's actual class."""
    uuid: str
    model_name: str
    champion_version: str
    shadow_version: str
    role: str
    actual: int
    champion_prediction: int
    shadow_prediction: int

    @property
    def champion_correct(self) -> bool:
        return self.champion_prediction == self.actual

    @property
    def shadow_correct(self) -> bool:
        return self.shadow_prediction == self.actual

    @property
    def contest(self) -> tuple[str, str, str]:
        return self.model_name, self.champion_version, self.shadow_version


def pair_of(shadow: dict, scored: dict) -> tuple[Pair | None, str]:
    """The pair a shadow prediction and its request's scored record make, or (None, why not).

    ``shadow``: uuid, model_name, shadow_version, role, champion_version, prediction (None when the
    shadow could not score). ``scored``: uuid, model_name, model_version, status, prediction, actual."""
    if shadow["uuid"] != scored["uuid"]:
        return None, "different requests"
    if scored["status"] != "scored" or scored["actual"] is None or scored["prediction"] is None:
        return None, "no class"   # cancelled or diverted: nobody can be right
    if shadow["prediction"] is None:
        return None, "unscorable"
    if shadow["model_name"] != scored["model_name"] or shadow["champion_version"] != scored["model_version"]:
        return None, "other champion"  # the shadow ran beside another version than the one scored
    return Pair(uuid=scored["uuid"], model_name=scored["model_name"], champion_version=str(scored["model_version"]),
                shadow_version=str(shadow["shadow_version"]), role=shadow["role"], actual=int(scored["actual"]),
                champion_prediction=int(scored["prediction"]), shadow_prediction=int(shadow["prediction"])), ""


# -- the test --------------------------------------------------------------------------------------
def one_sided_p(wins: int, losses: int) -> float:
    """McNemar's exact one-sided p-value that the side with ``wins`` discordant pairs (against
    ``losses``) is the better one: P(X >= wins), X ~ Binomial(wins + losses, 1/2); 1.0 without
    discordant pairs."""
    if wins + losses == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


@dataclass(frozen=True)
class Rule:
    min_outcomes: int = 500
    max_outcomes: int = 20_000
    alpha: float = 0.01
    probation_outcomes: int = 2_000

    @classmethod
    def from_settings(cls, s) -> Rule:
        return cls(min_outcomes=s.promote_min_outcomes, max_outcomes=s.promote_max_outcomes, alpha=s.promote_alpha,
                   probation_outcomes=s.probation_outcomes)


@dataclass(frozen=True)
class Holdout:
    """What training recorded on the challenger's run: its holdout accuracy, and the accuracy of
    the version that served then (``against``) on the same held-out flights."""
    shadow_accuracy: float | None = None
    champion_accuracy: float | None = None
    against: str | None = None

    def not_worse(self, champion_version: str) -> tuple[bool, str]:
        if self.shadow_accuracy is None or self.champion_accuracy is None:
            return False, "no holdout comparison recorded on the challenger's run"
        if self.against is not None and str(self.against) != str(champion_version):
            return False, (f"its holdout was compared with version {self.against}, not with the serving "
                           f"version {champion_version}")
        if self.shadow_accuracy < self.champion_accuracy:
            return False, (f"worse on the holdout: {self.shadow_accuracy:.4f} < {self.champion_accuracy:.4f} "
                           f"of v{champion_version} on the same held-out flights")
        return True, f"holdout {self.shadow_accuracy:.4f} >= {self.champion_accuracy:.4f}"


@dataclass(frozen=True)
class Decision:
    action: str              # PROMOTE, REFUSE, WAIT, ROLLBACK, PASS
    role: str                # CHALLENGER or PREVIOUS
    champion_version: str
    shadow_version: str
    figures: dict
    why: str

    @property
    def subject_version(self) -> str:
        """The version the decision is about: the challenger, or the champion on probation."""
        return self.shadow_version if self.role == CHALLENGER else self.champion_version

    def as_dict(self) -> dict:
        return {"action": self.action, "role": self.role, "champion_version": self.champion_version,
                "shadow_version": self.shadow_version, "figures": self.figures, "why": self.why}


def figures_of(pairs: Pairs, rule: Rule, holdout: Holdout | None = None) -> dict:
    """Everything a decision rests on, for its records."""
    def rounded(x):
        return None if x is None else round(x, 6)

    holdout = holdout or Holdout()
    return {"n": pairs.n, "both_right": pairs.both_right, "champion_only": pairs.champion_only,
            "shadow_only": pairs.shadow_only, "both_wrong": pairs.both_wrong,
            "p_shadow_better": one_sided_p(pairs.shadow_only, pairs.champion_only),
            "p_champion_better": one_sided_p(pairs.champion_only, pairs.shadow_only),
            "champion_accuracy": rounded(pairs.champion_accuracy), "shadow_accuracy": rounded(pairs.shadow_accuracy),
            "champion_holdout": holdout.champion_accuracy, "shadow_holdout": holdout.shadow_accuracy,
            "holdout_against": holdout.against, "alpha": rule.alpha, "min_outcomes": rule.min_outcomes,
            "max_outcomes": rule.max_outcomes, "probation_outcomes": rule.probation_outcomes}


def _evidence(f: dict, champion: str, shadow: str) -> str:
    return (f"{f['n']} paired outcomes: v{champion} {f['champion_accuracy']:.4f}, v{shadow} "
            f"{f['shadow_accuracy']:.4f}; v{champion} alone right {f['champion_only']}, v{shadow} alone right "
            f"{f['shadow_only']}")


def judge_challenger(pairs: Pairs, holdout: Holdout, rule: Rule, champion_version: str,
                     challenger_version: str) -> Decision:
    f = figures_of(pairs, rule, holdout)
    champion, challenger = champion_version, challenger_version

    def decide(action: str, why: str) -> Decision:
        return Decision(action, CHALLENGER, champion, challenger, f, why)

    if pairs.n < rule.min_outcomes:
        return decide(WAIT, f"{pairs.n} paired outcomes of the {rule.min_outcomes} needed")
    evidence = _evidence(f, champion, challenger)
    if f["p_champion_better"] < rule.alpha:
        return decide(REFUSE, f"challenger v{challenger} significantly worse than champion v{champion} "
                              f"(McNemar exact p = {f['p_champion_better']:.2g} < {rule.alpha}; {evidence})")
    if f["p_shadow_better"] < rule.alpha:
        ok, holdout_why = holdout.not_worse(champion)
        if ok:
            return decide(PROMOTE, f"challenger v{challenger} significantly better than champion v{champion} "
                                   f"(McNemar exact p = {f['p_shadow_better']:.2g} < {rule.alpha}; {evidence}) "
                                   f"and not worse on the holdout ({holdout_why})")
        return decide(REFUSE, f"challenger v{challenger} better live (p = {f['p_shadow_better']:.2g}; {evidence}) "
                              f"but not promoted: {holdout_why}")
    if pairs.n >= rule.max_outcomes:
        return decide(REFUSE, f"no significant difference after {pairs.n} paired outcomes (maximum "
                              f"{rule.max_outcomes}; p better {f['p_shadow_better']:.2g}, p worse "
                              f"{f['p_champion_better']:.2g}; {evidence})")
    return decide(WAIT, f"no significant difference yet (p better {f['p_shadow_better']:.2g}, p worse "
                        f"{f['p_champion_better']:.2g} at alpha {rule.alpha}; {evidence})")


def judge_probation(pairs: Pairs, rule: Rule, champion_version: str, previous_version: str,
                    holdout: Holdout | None = None) -> Decision:
    f = figures_of(pairs, rule, holdout)
    champion, previous = champion_version, previous_version

    def decide(action: str, why: str) -> Decision:
        return Decision(action, PREVIOUS, champion, previous, f, why)

    evidence = _evidence(f, champion, previous) if pairs.n else "no paired outcome"
    if pairs.n >= rule.min_outcomes and f["p_shadow_better"] < rule.alpha:
        return decide(ROLLBACK, f"champion v{champion} significantly worse than its predecessor v{previous} "
                                f"(McNemar exact p = {f['p_shadow_better']:.2g} < {rule.alpha}; {evidence})")
    if pairs.n >= rule.probation_outcomes:
        return decide(PASS, f"probation of v{champion} over: not significantly worse than v{previous} after "
                            f"{pairs.n} paired outcomes (p = {f['p_shadow_better']:.2g}; {evidence})")
    return decide(WAIT, f"probation of v{champion}: {pairs.n} of {rule.probation_outcomes} paired outcomes "
                        f"({evidence})")
