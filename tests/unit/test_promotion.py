"""The promotion and rollback rule (flightdelay/promotion.py) on constructed pair counts, and the
pairing of a shadow prediction with its scored record, counted once per request UUID."""
import pytest

from flightdelay import promotion as p

RULE = p.Rule(min_outcomes=500, max_outcomes=20_000, alpha=0.01, probation_outcomes=2_000)
GOOD_HOLDOUT = p.Holdout(shadow_accuracy=0.55, champion_accuracy=0.53, against="3")


def pairs(n: int, b: int, c: int) -> p.Pairs:
    """``n`` pairs, ``b`` where the champion alone is right, ``c`` the shadow alone, the rest half
    both right and half both wrong."""
    rest = n - b - c
    return p.Pairs(both_right=rest // 2, champion_only=b, shadow_only=c, both_wrong=rest - rest // 2)


def test_the_exact_test_is_mcnemars_on_the_discordant_pairs():
    # P(X >= 9), X ~ Binomial(10, 1/2) = 11/1024
    assert p.one_sided_p(9, 1) == pytest.approx(11 / 1024)
    assert p.one_sided_p(1, 9) == pytest.approx(1 - 1 / 1024)
    assert p.one_sided_p(0, 0) == 1.0
    counts = pairs(600, b=40, c=90)
    assert counts.n == 600 and counts.discordant == 130
    assert counts.shadow_accuracy - counts.champion_accuracy == pytest.approx(50 / 600)


def test_a_clearly_better_challenger_is_promoted_with_its_figures():
    d = p.judge_challenger(pairs(600, b=40, c=90), GOOD_HOLDOUT, RULE, "3", "4")
    assert d.action == p.PROMOTE and d.role == p.CHALLENGER and d.subject_version == "4"
    f = d.figures
    assert (f["n"], f["champion_only"], f["shadow_only"]) == (600, 40, 90)
    assert f["p_shadow_better"] < 0.01 and f["p_champion_better"] > 0.99
    assert f["shadow_holdout"] == 0.55 and f["champion_holdout"] == 0.53 and f["alpha"] == 0.01
    assert "significantly better" in d.why and "holdout 0.5500 >= 0.5300" in d.why and "\n" not in d.why


def test_a_clearly_worse_challenger_is_refused():
    d = p.judge_challenger(pairs(600, b=90, c=40), GOOD_HOLDOUT, RULE, "3", "4")
    assert d.action == p.REFUSE and "significantly worse" in d.why


def test_nothing_is_decided_before_the_minimum_of_pairs():
    d = p.judge_challenger(pairs(499, b=0, c=200), GOOD_HOLDOUT, RULE, "3", "4")
    assert d.action == p.WAIT and "499 paired outcomes of the 500" in d.why


def test_a_tie_waits_then_is_refused_at_the_maximum():
    assert p.judge_challenger(pairs(5_000, b=300, c=310), GOOD_HOLDOUT, RULE, "3", "4").action == p.WAIT
    assert p.judge_challenger(pairs(19_999, b=1_000, c=1_020), GOOD_HOLDOUT, RULE, "3", "4").action == p.WAIT
    d = p.judge_challenger(pairs(20_000, b=1_000, c=1_020), GOOD_HOLDOUT, RULE, "3", "4")
    assert d.action == p.REFUSE and "no significant difference after 20000" in d.why


@pytest.mark.parametrize("holdout, said", [
    (p.Holdout(shadow_accuracy=0.52, champion_accuracy=0.53, against="3"), "worse on the holdout"),
    (p.Holdout(), "no holdout comparison"),
    (p.Holdout(shadow_accuracy=0.60, champion_accuracy=0.53, against="2"), "not with the serving version 3"),
])
def test_worse_or_unknown_on_the_holdout_is_never_promoted(holdout, said):
    for counts in (pairs(600, b=40, c=90), pairs(20_000, b=100, c=2_000)):
        d = p.judge_challenger(counts, holdout, RULE, "3", "4")
        assert d.action == p.REFUSE and said in d.why


def test_an_equal_holdout_is_not_worse():
    equal = p.Holdout(shadow_accuracy=0.53, champion_accuracy=0.53, against="3")
    assert p.judge_challenger(pairs(600, b=40, c=90), equal, RULE, "3", "4").action == p.PROMOTE


def test_a_champion_on_probation_is_rolled_back_when_its_predecessor_is_significantly_better():
    # after promoting v4 over v3: champion v4, shadow (previous) v3, which is right alone far more often
    d = p.judge_probation(pairs(600, b=40, c=90), RULE, "4", "3")
    assert d.action == p.ROLLBACK and d.role == p.PREVIOUS and d.subject_version == "4"
    assert d.figures["p_shadow_better"] < 0.01 and "significantly worse than its predecessor v3" in d.why
    # not before the minimum
    assert p.judge_probation(pairs(400, b=0, c=200), RULE, "4", "3").action == p.WAIT


def test_a_probation_passes_after_its_pairs_without_a_rollback():
    assert p.judge_probation(pairs(1_999, b=100, c=110), RULE, "4", "3").action == p.WAIT
    d = p.judge_probation(pairs(2_000, b=100, c=110), RULE, "4", "3")
    assert d.action == p.PASS and "probation of v4 over" in d.why
    # a better new champion passes too
    assert p.judge_probation(pairs(2_000, b=200, c=100), RULE, "4", "3").action == p.PASS


def scored(uuid="u1", status="scored", actual=2, prediction=2, version="3"):
    return {"uuid": uuid, "model_name": "m", "model_version": version, "status": status, "actual": actual,
            "prediction": prediction}


def shadow(uuid="u1", prediction=1, champion="3", version="4", role="challenger"):
    return {"uuid": uuid, "model_name": "m", "shadow_version": version, "role": role, "champion_version": champion,
            "prediction": prediction}


def test_a_pair_is_made_of_the_same_request_scored_by_both():
    pair, why = p.pair_of(shadow(prediction=2), scored(prediction=1, actual=2))
    assert why == "" and pair.contest == ("m", "3", "4") and pair.shadow_correct and not pair.champion_correct
    assert p.pair_of(shadow(), scored(status="cancelled", actual=None)) == (None, "no class")
    assert p.pair_of(shadow(prediction=None), scored()) == (None, "unscorable")
    assert p.pair_of(shadow(champion="2"), scored()) == (None, "other champion")
    assert p.pair_of(shadow(uuid="u2"), scored()) == (None, "different requests")


def test_a_request_is_counted_once():
    book = p.PairBook()
    assert book.add("u1", True, False) and book.add("u2", False, True)
    assert not book.add("u1", True, False) and not book.add("u1", False, False)  # redelivered: counted once
    assert book.pairs() == p.Pairs(both_right=0, champion_only=1, shadow_only=1, both_wrong=0)
