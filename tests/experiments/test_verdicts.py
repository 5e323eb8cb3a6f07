"""Every verdict rule driven to each of its answers, the numpy-only t quantile, and a guard against verdict
words typed into the modules that write the results page and the analysis findings."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from toedit.experiments import verdicts as v

SRC = Path(v.__file__).resolve().parents[1]


def _d(mean: float, half: float, n: int = 3) -> dict[str, float]:
    return {
        "mean": mean,
        "se": half / 4.3,
        "half": half,
        "ci95_low": mean - half,
        "ci95_high": mean + half,
        "n": n,
    }


def test_t_quantile_matches_known_values_and_scipy():
    # textbook values of t_{0.975, df}
    for df, expected in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert v.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 20, 59):
        for p in (0.9, 0.975, 0.995):
            assert v.t_quantile(p, df) == pytest.approx(float(stats.t.ppf(p, df)), rel=1e-9)
    with pytest.raises(ValueError):
        v.t_quantile(0.975, 0)
    with pytest.raises(ValueError):
        v.t_quantile(0.2, 3)


def test_paired_delta_is_per_pair():
    # large run-to-run spread, constant per-seed difference: the paired interval is tight
    d = v.paired_delta([101.0, 201.0, 301.5], [100.0, 200.0, 300.0])
    assert d["n"] == 3 and d["mean"] == pytest.approx(7 / 6)
    assert d["ci95_low"] > 0 and d["ci95_high"] < 3
    assert d["half"] == pytest.approx(v.t_quantile(0.975, 2) * d["se"])
    one = v.paired_delta([2.0], [1.0])
    assert one["mean"] == 1.0 and math.isnan(one["half"])
    with pytest.raises(ValueError):
        v.paired_delta([1.0, 2.0], [1.0])


def test_direction_and_effect_every_answer():
    assert v.direction(_d(5, 1)).word == "above 0"
    assert v.direction(_d(-5, 1)).word == "below 0"
    assert v.direction(_d(0.5, 1)).word == "no difference"
    assert v.direction(v.paired_delta([1.0], [0.0])).word == "undecided"
    assert v.effect(_d(-5, 1), lower_is_better=True).word == "improves"
    assert v.effect(_d(5, 1), lower_is_better=True).word == "harms"
    assert v.effect(_d(5, 1), lower_is_better=False).word == "improves"
    assert v.effect(_d(0.5, 1)).word == "no difference"
    assert "[+4, +6]" in v.effect(_d(5, 1)).rule


def test_share_trend_every_answer():
    rising = {25: _d(5, 1), 50: _d(10, 1), 100: _d(20, 1)}
    assert v.share_trend(rising).word == "reproduced"
    assert v.share_trend({25: _d(0.5, 1), 50: _d(10, 1), 100: _d(20, 1)}).word == "partly reproduced"
    assert v.share_trend({25: _d(12, 1), 50: _d(10, 1), 100: _d(20, 1)}).word == "partly reproduced"
    assert v.share_trend({25: _d(-50, 1), 100: _d(-20, 1)}).word == "reversed"
    assert v.share_trend({25: _d(-50, 1), 100: _d(1, 5)}).word == "not reproduced"
    one = {100: v.paired_delta([2.0], [1.0])}
    assert v.share_trend(one).word == "undecided"
    with pytest.raises(ValueError):
        v.share_trend({0: _d(1, 1)})


def test_falls_every_answer():
    assert v.falls(_d(-1, 0.5), "x").word == "reproduced"
    assert v.falls(_d(1, 0.5), "x").word == "reversed"
    assert v.falls(_d(0.1, 0.5), "x").word == "not reproduced"


def test_collapse_rules_every_answer():
    rep = _d(900, 50)
    assert v.collapse_vs_control(_d(5, 10), rep, _d(895, 50)).word == "no significant drift"
    assert v.collapse_vs_control(_d(-20, 10), rep, _d(920, 50)).word == "no significant drift"
    assert "replace - human control" in v.collapse_vs_control(_d(900, 10), None, None, name="replace").rule
    assert v.collapse_vs_control(_d(50, 10), rep, _d(850, 50)).word == "drifts less than replace"
    assert v.collapse_vs_control(_d(900, 10), rep, _d(0, 50)).word == "collapses"
    assert v.collapse_vs_control(_d(50, 10), None, None).word == "collapses"
    assert v.collapse_vs_control(v.paired_delta([1.0], [0.0]), None, None).word == "undecided"
    collapses, none = v.Verdict("collapses", ""), v.Verdict("no significant drift", "")
    less, und = v.Verdict("drifts less than replace", ""), v.Verdict("undecided", "")
    assert v.collapse_claim(collapses, none).word == "reproduced"
    assert v.collapse_claim(collapses, less).word == "partly reproduced"
    assert v.collapse_claim(collapses, collapses).word == "not reproduced"
    assert v.collapse_claim(none, none).word == "not reproduced"
    assert v.collapse_claim(collapses, und).word == "undecided"


def test_bounded_and_bound_2u_every_answer():
    se = [0.03] * 7
    plateau = [1.0, 1.5, 2.9, 2.95, 2.95, 2.95, 2.95]
    assert v.bounded(plateau, se, ref=12.0, ref_se=0.1).word == "bounded"
    growing = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert v.bounded(growing, se, ref=12.0, ref_se=0.1).word == "still growing"
    assert v.bounded(plateau, se, ref=3.0, ref_se=0.1).word == "not below replace"
    with pytest.raises(ValueError):
        v.bounded([1.0, 2.0], [0.1, 0.1], 5.0, 0.1)
    assert v.bound_2u(plateau, se).word == "fails"
    assert v.bound_2u([1.0, 1.5, 1.8], [0.03] * 3).word == "holds"
    assert v.bound_2u([1.0, 1.5, 1.99], [0.03] * 3).word == "undecided"
    assert "generation 3" in v.bound_2u(plateau, se).rule  # the first generation above 2u


def test_u_shape_and_shift_every_answer():
    paper_like = [34.0, 6, 4, 3, 3, 3, 3, 4, 5, 27]
    assert v.u_shape(paper_like).word == "U-shaped"
    assert v.u_shape([57.7, 10, 6, 4, 3, 3, 3, 2.6, 3, 4.9]).word == "left arm only"
    assert v.u_shape([5.0, 10, 6, 4, 3, 3, 3, 2.6, 3, 40]).word == "right arm only"
    assert v.u_shape([10.0] * 10).word == "not U-shaped"
    assert v.shifted(0.01).word == "shifted"
    assert v.shifted(0.2, design="disjoint halves").word == "no significant shift"
    assert "disjoint halves" in v.shifted(0.2, design="disjoint halves").rule


VERDICT_WORDS = (
    "reproduced",
    "not reproduced",
    "partly reproduced",
    "reversed",
    "fails",
    "holds",
    "bounded",
    "collapses",
    "no significant drift",
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
        "experiments/collapse.py",
        "experiments/editrounds.py",
        "analysis/report.py",
    ],
)
def test_no_verdict_typed_into_the_writers(module):
    """A bold verdict word or a verdict-word literal in a module that writes results is a typed-in verdict."""
    source = (SRC / module).read_text()
    bold = re.findall(r"\*\*([^*{}]+)\*\*", source)
    typed = [b for b in bold if any(w.lower() in b.lower() for w in VERDICT_WORDS)]
    assert not typed, (
        f"{module}: typed-in bold verdict(s) {typed}; compute them with toedit.experiments.verdicts"
    )
    literals = re.findall(r"""["']([^"'\n]*)["']""", source)
    words = {w for w in VERDICT_WORDS}
    exact = [lit for lit in literals if lit.strip(" .:*") in words]
    assert not exact, f"{module}: verdict word literal(s) {exact}"
