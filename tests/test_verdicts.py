"""Every verdict rule driven each way with numbers, the exact t quantile / p-value, Holm, the minimum
detectable effect, and a guard against verdict words typed into the modules that write results."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from toedit import verdicts as v

SRC = Path(v.__file__).resolve().parent


def _test(values, margin=1.0, **kw) -> v.Test:
    return v.Test("x", v.interval(values), margin, **kw)


def test_t_quantile_and_pvalue_match_known_values_and_scipy():
    for df, expected in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert v.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
        assert v.t_pvalue(expected, df) == pytest.approx(0.05, abs=1e-5)
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 20, 59, 1999):
        for p in (0.8, 0.975, 0.995):
            assert v.t_quantile(p, df) == pytest.approx(float(stats.t.ppf(p, df)), rel=1e-9)
        for t in (0.3, 2.1, 5.0):
            assert v.t_pvalue(t, df) == pytest.approx(2 * float(stats.t.sf(t, df)), abs=1e-12)
    with pytest.raises(ValueError):
        v.t_quantile(0.975, 0)
    with pytest.raises(ValueError):
        v.t_quantile(0.2, 3)


def test_interval_and_paired_delta():
    # large run-to-run spread, constant per-seed difference: the paired interval is tight
    d = v.paired_delta([101.0, 201.0, 301.5], [100.0, 200.0, 300.0])
    assert d["n"] == 3 and d["mean"] == pytest.approx(7 / 6)
    assert d["ci95_low"] > 0 and d["ci95_high"] < 3 and d["p"] < 0.05
    assert d["half"] == pytest.approx(v.t_quantile(0.975, 2) * d["se"])
    one = v.paired_delta([2.0], [1.0])
    assert one["mean"] == 1.0 and math.isnan(one["half"]) and math.isnan(one["p"])
    same = v.interval([0.0, 0.0, 0.0])
    assert same["se"] == 0 and same["p"] == 1.0
    assert v.interval([0.5, 0.5])["p"] == 0.0
    with pytest.raises(ValueError):
        v.paired_delta([1.0, 2.0], [1.0])


def test_holm_adjusts_step_down_and_keeps_order():
    assert v.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert v.holm([0.5]) == [0.5]
    adj = v.holm([0.2, math.nan, 0.01])
    assert adj[0] == pytest.approx(0.2) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.02)
    assert v.holm([0.9, 0.8]) == [1.0, 1.0]  # 2 x 0.8 capped at 1, and monotone
    assert v.holm([0.04, 0.3]) == pytest.approx([0.08, 0.3])


def test_mde_against_a_hand_computation():
    sd, n = 28.0, 5
    expected = (v.t_quantile(0.975, 4) + v.t_quantile(0.8, 4)) * sd / math.sqrt(n)
    assert v.mde(sd, n) == pytest.approx(expected)
    assert 40 < v.mde(sd, n) < 50  # the "about 46 PPL" at 5 seeds
    assert v.mde(sd, 20) < v.mde(sd, 10) < v.mde(sd, 5)
    assert math.isnan(v.mde(sd, 1))


def test_four_outcomes_each_way():
    assert v.judge(_test([5.0, 5.2, 4.9])).word == "reproduced"
    assert v.judge(_test([-5.0, -5.2, -4.9])).word == "reversed"
    assert v.judge(_test([5.0, 5.2, 4.9], sign=-1)).word == "reversed"
    inside = v.judge(_test([0.01, -0.02, 0.015, 0.0, -0.01]))
    assert inside.word == v.NO_EFFECT and "inside the margin ±1" in inside.rule
    wide = v.judge(_test([3.0, -2.5, 1.0, -0.5]))
    assert wide.word == v.INCONCLUSIVE and "reaches beyond the margin" in wide.rule
    assert "minimum detectable effect at 80% power" in wide.rule
    paper = v.judge(_test([3.0, -2.5, 1.0, -0.5], paper="+2 points"))
    assert "the paper's effect: +2 points" in paper.rule
    assert v.judge(_test([1.0])).word == "undecided"
    with pytest.raises(ValueError):
        v.judge(_test([1.0, 2.0], margin=0.0))


def test_resolution_floor_of_the_equivalence_interval_both_ways():
    same = v.interval([0.0, 0.0, 0.0])  # identical decisions in every seed: sd 0, a point interval
    coarse = v.judge(v.Test("acc", same, 0.0025, resolution=1 / 275))  # one item of 275 = 0.36 points
    assert coarse.word == v.INCONCLUSIVE and "widened to ±0.00364" in coarse.rule
    fine = v.judge(v.Test("acc", same, 0.0025, resolution=1 / 1000))
    assert fine.word == v.NO_EFFECT and "widened" in fine.rule
    wide = v.judge(v.Test("acc", v.interval([0.001, -0.002, 0.0015, 0.0, -0.001]), 0.01, resolution=1e-4))
    assert wide.word == v.NO_EFFECT and "widened" not in wide.rule  # the t-interval is wider: no floor


def test_holm_turns_a_raw_improvement_into_inconclusive():
    # the benefit section's E-rate@2 %: -52.5 ± 34.3 over 5 seeds (p about 0.013), one of four tests
    arm = v.Test("E-rate - H", v.interval([-87.3, -69.9, -52.5, -35.1, -17.7]), 5.0, sign=-1, words=v.EFFECT)
    assert arm.delta["half"] == pytest.approx(34.3, abs=0.5)
    assert 0.05 / 4 < arm.delta["p"] < 0.05
    assert v.judge(arm).word == "improves"
    others = [v.Test(f"other {i}", v.interval([1.0, -2.0, 3.0, -1.5, 0.5]), 5.0) for i in range(3)]
    judged = v.family([arm, *others])
    assert judged["E-rate - H"].word == v.INCONCLUSIVE
    assert "Holm-adjusted" in judged["E-rate - H"].rule and "family of 4" in judged["E-rate - H"].rule
    assert v.exploratory(arm).rule.startswith("exploratory")
    with pytest.raises(ValueError):
        v.family([arm, arm])


def test_a_rising_slope_with_non_monotone_means_is_reproduced():
    shares = [0, 0.25, 0.5, 0.75, 1.0]
    # means 239.55 at 50 % and 239.54 at 75 %: not strictly rising, but every seed's slope is positive
    seeds = [
        [200.0, 230.0, 240.55, 239.04, 280.0],
        [205.0, 228.0, 238.05, 240.54, 284.0],
        [198.0, 231.0, 240.05, 239.04, 279.0],
    ]
    means = [sum(s[i] for s in seeds) / 3 for i in range(5)]
    assert means[2] > means[3]
    trend = v.slope_trend(shares, seeds)
    assert len(trend["slopes"]) == 3 and all(s > 0 for s in trend["slopes"])
    assert v.judge(v.Test("slope", trend, 5.0)).word == "reproduced"
    with pytest.raises(ValueError):
        v.slope([1.0, 1.0], [2.0, 3.0])


def test_bounded_each_way():
    gap = v.interval([9.0, 9.5, 10.0, 8.5])
    # a slowly growing chain: +0.02u per generation, per-trial increments tight around it
    slow = v.interval([0.02 + 0.001 * ((i % 7) - 3) for i in range(2000)])
    assert v.bounded(slow, gap, margin=0.01, last=3).word == "still growing"
    flat = v.interval([0.0005 * ((i % 5) - 2) for i in range(2000)])
    assert v.bounded(flat, gap, margin=0.01, last=3).word == "bounded"
    assert v.bounded(flat, v.interval([0.1, -0.2, 0.05]), margin=0.01, last=3).word == "not below replace"
    noisy = v.interval([0.5 * ((i % 5) - 2) + 0.002 for i in range(40)])
    assert v.bounded(noisy, gap, margin=0.01, last=3).word == v.INCONCLUSIVE
    done = v.bounded(flat, gap, margin=0.01, last=3, nothing_left_after=6)
    assert done.word == "no rows left to edit" and "after generation 6" in done.rule


def test_bound_2u_collapse_claim_u_shape_shift():
    se = [0.03] * 7
    plateau = [1.0, 1.5, 2.9, 2.95, 2.95, 2.95, 2.95]
    assert v.bound_2u(plateau, se).word == "fails"
    assert "generation 3" in v.bound_2u(plateau, se).rule
    assert v.bound_2u([1.0, 1.5, 1.8], [0.03] * 3).word == "holds"
    assert v.bound_2u([1.0, 1.5, 1.99], [0.03] * 3).word == "undecided"
    drifts, none = v.Verdict(v.DRIFTS, ""), v.Verdict(v.NO_EFFECT, "")
    less, inc = v.Verdict(v.DRIFTS_LESS, ""), v.Verdict(v.INCONCLUSIVE, "")
    assert v.collapse_claim(drifts, none, less).word == "reproduced"
    assert v.collapse_claim(drifts, drifts, less).word == "partly reproduced"
    assert v.collapse_claim(drifts, drifts, inc).word == "not reproduced"
    assert v.collapse_claim(none, none, inc).word == "not reproduced"
    assert v.collapse_claim(inc, inc, inc).word == v.INCONCLUSIVE
    assert v.collapse_claim(drifts, v.Verdict("undecided", ""), less).word == "undecided"
    assert v.u_shape([34.0, 6, 4, 3, 3, 3, 3, 4, 5, 27]).word == "U-shaped"
    assert v.u_shape([57.7, 10, 6, 4, 3, 3, 3, 2.6, 3, 4.9]).word == "left arm only"
    assert v.u_shape([5.0, 10, 6, 4, 3, 3, 3, 2.6, 3, 40]).word == "right arm only"
    assert v.u_shape([10.0] * 10).word == "not U-shaped"
    assert v.shifted(0.01).word == "shifted"
    assert "disjoint halves" in v.shifted(0.2, design="disjoint halves").rule


def test_family_note_names_the_family_and_primary():
    tests = [_test([1.0, 2.0], margin=0.5, margin_reason="why"), v.Test("y", v.interval([1.0, 2.0]), 0.5)]
    note = v.family_note("mixing", tests, "x")
    assert "Primary endpoint: x" in note and "x: ±0.5 (why)" in note and "exploratory" in note
    with pytest.raises(ValueError):
        v.family_note("mixing", tests, "z")


def test_statistics_module_sits_at_the_bottom_of_the_import_graph():
    """toedit.verdicts imports only the standard library; analysis imports it, never toedit.experiments."""
    source = (SRC / "verdicts.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+(\.|toedit|numpy|torch)", source, re.M)
    report = (SRC / "analysis" / "report.py").read_text()
    assert "experiments" not in "".join(re.findall(r"^\s*from \S+ import", report, re.M))
    assert not (SRC / "experiments" / "verdicts.py").exists()


VERDICT_WORDS = (
    "reproduced",
    "not reproduced",
    "partly reproduced",
    "reversed",
    "fails",
    "holds",
    "bounded",
    "still growing",
    "no effect",
    "inconclusive",
    "U-shaped",
    "not U-shaped",
    "shifted",
    "improves",
    "harms",
)


@pytest.mark.parametrize(
    "module",
    [
        "experiments/results.py",
        "experiments/mix.py",
        "experiments/mixclaims.py",
        "experiments/collapse.py",
        "experiments/editrounds.py",
        "experiments/benefit/report.py",
        "theory/report.py",
        "theory/claims.py",
        "analysis/report.py",
    ],
)
def test_no_verdict_typed_into_the_writers(module):
    """A bold verdict word or a verdict-word literal in a module that writes results is a typed-in verdict."""
    source = (SRC / module).read_text()
    bold = re.findall(r"\*\*([^*{}]+)\*\*", source)
    typed = [b for b in bold if any(w.lower() in b.lower() for w in VERDICT_WORDS)]
    assert not typed, f"{module}: typed-in bold verdict(s) {typed}; compute them with toedit.verdicts"
    literals = re.findall(r"""["']([^"'\n]*)["']""", source)
    exact = [lit for lit in literals if lit.strip(" .:*") in set(VERDICT_WORDS)]
    assert not exact, f"{module}: verdict word literal(s) {exact}"
