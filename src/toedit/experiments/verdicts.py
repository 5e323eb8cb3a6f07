"""Verdict rules: pure functions from numbers to a verdict word and the rule that chose it.

Every bold verdict on the results page, the README's claims table and `toedit analyze`'s findings comes from
one of these functions, never from a typed-in string. Each returns a `Verdict` (word, rule text, the numbers
used); `Verdict.bold` renders "**word** (rule)".

Paired statistics: runs that share a seed are compared per seed. `paired_delta(a, b)` gives the mean of
a - b over seeds with a 95 % t-interval (`t_quantile` is numpy-free and exact for integer degrees of freedom,
so core commands need no scipy).

Public API (also used by `experiment benefit`): `t_quantile`, `interval`, `paired_delta`, `Verdict`,
`direction`, `effect`, `share_trend`, `falls`, `collapse_vs_control`, `collapse_claim`, `bounded`, `bound_2u`, `u_shape`,
`shifted`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Verdict",
    "bound_2u",
    "bounded",
    "collapse_claim",
    "collapse_vs_control",
    "direction",
    "effect",
    "falls",
    "interval",
    "paired_delta",
    "share_trend",
    "shifted",
    "t_quantile",
    "u_shape",
]


# --- statistics --------------------------------------------------------------------------------------------


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer `df` (the closed-form finite series in theta = atan(t / sqrt df))."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    s = math.sin(theta)
    if df % 2 == 1:
        if df == 1:
            return 2 * theta / math.pi
        term, total = 1.0, 1.0
        for k in range(1, (df - 3) // 2 + 1):  # coefficients 2/3, 2*4/(3*5), ...
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + s * math.cos(theta) * total)
    term, total = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):  # coefficients 1/2, 1*3/(2*4), ...
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile (p in (0.5, 1)) of Student's t with integer `df` >= 1, by bisection (no scipy)."""
    if not 0.5 < p < 1:
        raise ValueError(f"p must be in (0.5, 1), got {p}")
    if int(df) != df or df < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    target = 2 * p - 1  # two-sided mass inside (-t, t)
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, int(df)) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_two_sided_mass(mid, int(df)) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def interval(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, standard error and the `level` t-interval of `values` ({mean, se, half, ci95_low, ci95_high, n}).

    One value: se, half and the ends are NaN (no interval; every rule below then answers "undecided").
    """
    x = [float(v) for v in values]
    n = len(x)
    if n == 0:
        raise ValueError("no values")
    mean = sum(x) / n
    if n < 2:
        se = half = math.nan
    else:
        var = sum((v - mean) ** 2 for v in x) / (n - 1)
        se = math.sqrt(var / n)
        half = t_quantile(0.5 + level / 2, n - 1) * se
    return {"mean": mean, "se": se, "half": half, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def paired_delta(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """a - b per pair (seed), summarised by `interval`: {mean, se, half, ci95_low, ci95_high, n}."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    return interval([x - y for x, y in zip(a, b, strict=True)])


def fmt_delta(d: dict[str, float], digits: int = 2, unit: str = "") -> str:
    """'+12.30 [8.10, 16.50]' (mean and 95 % interval), or '+12.30 (one seed: no interval)'."""
    m = f"{d['mean']:+.{digits}f}{unit}"
    if math.isnan(d["half"]):
        return f"{m} (one seed: no interval)"
    return f"{m} [{d['ci95_low']:+.{digits}f}, {d['ci95_high']:+.{digits}f}]"


# --- verdicts -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """A verdict word, the rule that chose it (one sentence, with the numbers) and the numbers themselves."""

    word: str
    rule: str
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def bold(self) -> str:
        return f"**{self.word}** ({self.rule})"

    def __str__(self) -> str:
        return self.bold


def _has_interval(d: dict[str, float]) -> bool:
    return not (math.isnan(d["ci95_low"]) or math.isnan(d["ci95_high"]))


def direction(d: dict[str, float], what: str = "the difference") -> Verdict:
    """'above 0' / 'below 0' / 'no difference' from a 95 % interval (or 'undecided' without one)."""
    if not _has_interval(d):
        return Verdict("undecided", f"{what}: one pair only, no interval", d)
    lo, hi = d["ci95_low"], d["ci95_high"]
    if lo > 0:
        return Verdict("above 0", f"the 95 % interval of {what} [{lo:+.4g}, {hi:+.4g}] lies above 0", d)
    if hi < 0:
        return Verdict("below 0", f"the 95 % interval of {what} [{lo:+.4g}, {hi:+.4g}] lies below 0", d)
    return Verdict("no difference", f"the 95 % interval of {what} [{lo:+.4g}, {hi:+.4g}] contains 0", d)


def effect(d: dict[str, float], lower_is_better: bool = True, what: str = "treatment - control") -> Verdict:
    """'improves' / 'harms' / 'no difference' from the 95 % interval of a paired difference.

    `d` = paired_delta(treatment, control); with `lower_is_better` (e.g. perplexity) a difference below 0
    improves.
    """
    base = direction(d, what)
    if base.word in ("no difference", "undecided"):
        return base
    better = (base.word == "below 0") == lower_is_better
    return Verdict("improves" if better else "harms", base.rule, d)


def share_trend(deltas: dict[int, dict[str, float]]) -> Verdict:
    """The paper's mixing claim from the paired difference of each synthetic share against 0 %.

    `deltas[share]` = paired_delta(PPL at share, PPL at 0 %) for every share > 0. Rule:
    - reproduced: every share's interval lies above 0 and the mean differences rise with the share;
    - partly reproduced: the largest share's interval lies above 0, but not every share's or not rising;
    - reversed: the largest share's interval lies below 0 (more synthetic, lower PPL);
    - not reproduced: the largest share's interval contains 0;
    - undecided: no interval (one seed).
    """
    shares = sorted(s for s in deltas if s > 0)
    if not shares:
        raise ValueError("share_trend needs at least one share above 0 %")
    top = deltas[shares[-1]]
    desc = "; ".join(f"{s} %: {fmt_delta(deltas[s], 1)}" for s in shares)
    if not all(_has_interval(deltas[s]) for s in shares):
        return Verdict("undecided", f"one seed, no interval ({desc})", {"deltas": deltas})
    above = [s for s in shares if deltas[s]["ci95_low"] > 0]
    means = [deltas[s]["mean"] for s in shares]
    rising = all(b > a for a, b in zip(means, means[1:], strict=False))
    where = f"paired PPL difference against 0 % per seed, 95 % intervals: {desc}"
    if len(above) == len(shares) and rising:
        return Verdict(
            "reproduced",
            f"every share's interval lies above 0 and the means rise; {where}",
            {"deltas": deltas},
        )
    if top["ci95_low"] > 0:
        return Verdict(
            "partly reproduced",
            f"the {shares[-1]} % interval lies above 0, but "
            + ("not every share's does" if len(above) < len(shares) else "the means do not rise")
            + f"; {where}",
            {"deltas": deltas},
        )
    if top["ci95_high"] < 0:
        return Verdict("reversed", f"the {shares[-1]} % interval lies below 0; {where}", {"deltas": deltas})
    return Verdict("not reproduced", f"the {shares[-1]} % interval contains 0; {where}", {"deltas": deltas})


def falls(d: dict[str, float], what: str) -> Verdict:
    """A claim that a quantity falls: `d` = paired_delta(after, before).

    reproduced: the interval lies below 0; reversed: above 0; not reproduced: it contains 0.
    """
    base = direction(d, what)
    word = {"below 0": "reproduced", "above 0": "reversed", "no difference": "not reproduced"}.get(
        base.word, base.word
    )
    return Verdict(word, base.rule, d)


def collapse_vs_control(
    arm: dict[str, float],
    replace: dict[str, float] | None,
    replace_vs_arm: dict[str, float] | None,
    name: str = "ToEdit",
) -> Verdict:
    """ "ToEdit does not collapse", judged against the human (retrained) control with paired intervals.

    `arm` = paired_delta(ToEdit arm, human arm) and `replace` = paired_delta(replace, human arm) of the final
    round's held-out PPL; `replace_vs_arm` = paired_delta(replace, ToEdit arm). Rule:
    - no significant drift: the arm's interval against the human control contains 0 or lies below it;
    - drifts less than replace: the arm's interval lies above 0, and replace's lies above the arm's
      (replace - arm interval above 0);
    - collapses: the arm's interval lies above 0 and replace does not drift more (or no replace arm);
    - undecided: no interval (one seed).
    """
    if not _has_interval(arm):
        return Verdict("undecided", "one seed, no interval", {"arm": arm})
    text = f"{name} - human control {fmt_delta(arm, 1)}"
    if arm["ci95_low"] <= 0:
        return Verdict(
            "no significant drift", f"the 95 % interval of {text} does not lie above 0", {"arm": arm}
        )
    if replace is not None and replace_vs_arm is not None and replace_vs_arm["ci95_low"] > 0:
        return Verdict(
            "drifts less than replace",
            f"{text} lies above 0, replace - {name} {fmt_delta(replace_vs_arm, 1)} lies above 0",
            {"arm": arm, "replace": replace, "replace_vs_arm": replace_vs_arm},
        )
    return Verdict("collapses", f"{text} lies above 0 and replace does not drift more", {"arm": arm})


def bounded(
    values: Sequence[float], stderr: Sequence[float], ref: float, ref_se: float, last: int = 3
) -> Verdict:
    """A chain's error is bounded: the last `last` increments are each below 1 s.e. of the final value, and
    the final value is below the reference's (replace's) by more than 3 combined s.e.

    'bounded' when both hold; 'still growing' when an increment is not below 1 s.e.; 'not below replace'
    when the plateau is not clearly lower.
    """
    if len(values) < last + 1:
        raise ValueError(f"need at least {last + 1} generations")
    se = stderr[-1]
    inc = [values[i] - values[i - 1] for i in range(len(values) - last, len(values))]
    gap = ref - values[-1]
    gap_se = math.hypot(se, ref_se)
    nums = {"increments": inc, "se": se, "gap": gap, "gap_se": gap_se}
    inc_text = ", ".join(f"{x:+.3f}" for x in inc)
    if any(abs(x) >= se for x in inc):
        return Verdict(
            "still growing",
            f"the last {last} increments ({inc_text}) are not all below 1 s.e. ({se:.3f})",
            nums,
        )
    if gap <= 3 * gap_se:
        return Verdict(
            "not below replace", f"{values[-1]:.3f} is not below replace's {ref:.3f} by 3 s.e.", nums
        )
    return Verdict(
        "bounded",
        f"the last {last} increments ({inc_text}) are each below 1 s.e. ({se:.3f}) and the value is "
        f"below replace's by {gap:.2f} > 3 s.e. ({3 * gap_se:.3f})",
        nums,
    )


def bound_2u(
    values: Sequence[float], stderr: Sequence[float], bound: float = 2.0, z: float = 1.96
) -> Verdict:
    """Theorem 2's E <= 2u: 'fails' when the lower end of the 95 % interval (mean - z s.e., Monte Carlo
    normal interval) is above `bound` at some generation (the first such is reported); 'holds' when the upper end is at or below it at every
    generation; else 'undecided'."""
    lows = [m - z * s for m, s in zip(values, stderr, strict=True)]
    highs = [m + z * s for m, s in zip(values, stderr, strict=True)]
    above = [i for i, low in enumerate(lows) if low > bound]
    if above:
        worst = above[0]  # the first generation whose whole interval lies above the bound
        return Verdict(
            "fails",
            f"the lower end of the 95 % interval is above {bound:g}u at generation {worst + 1} "
            f"({values[worst]:.3f} - {z} x {stderr[worst]:.3f} = {lows[worst]:.3f})",
            {"generation": worst + 1, "low": lows[worst]},
        )
    if all(h <= bound for h in highs):
        return Verdict(
            "holds",
            f"the upper end of the 95 % interval is at most {bound:g}u at every generation (max {max(highs):.3f})",
            {"high": max(highs)},
        )
    return Verdict(
        "undecided",
        f"some 95 % interval contains {bound:g}u (max upper end {max(highs):.3f})",
        {"high": max(highs)},
    )


def u_shape(pct: Sequence[float], ratio: float = 2.0) -> Verdict:
    """Token-probability histogram (ten bins of width 0.1, in %) is U-shaped: each end bin holds at least
    `ratio` times as many tokens as the fullest inner bin.

    'U-shaped' when both ends pass; 'left arm only' / 'right arm only' when one does; else 'not U-shaped'.
    """
    if len(pct) < 3:
        raise ValueError("need at least 3 bins")
    inner = max(pct[1:-1])
    left, right = pct[0] >= ratio * inner, pct[-1] >= ratio * inner
    rule = (
        f"end bins {pct[0]:.1f} % and {pct[-1]:.1f} % vs {ratio:g} x the fullest inner bin "
        f"({ratio:g} x {inner:.1f} % = {ratio * inner:.1f} %)"
    )
    word = {
        (True, True): "U-shaped",
        (True, False): "left arm only",
        (False, True): "right arm only",
        (False, False): "not U-shaped",
    }[(left, right)]
    return Verdict(word, rule, {"inner_max": inner})


def shifted(p_value: float, alpha: float = 0.05, design: str = "independent samples") -> Verdict:
    """An embedding shift from a permutation test: 'shifted' when p < alpha, else 'no significant shift'."""
    if p_value < alpha:
        return Verdict("shifted", f"permutation p = {p_value:.3f} < {alpha} ({design})", {"p": p_value})
    return Verdict(
        "no significant shift", f"permutation p = {p_value:.3f} >= {alpha} ({design})", {"p": p_value}
    )


def collapse_claim(replace: Verdict, arm: Verdict) -> Verdict:
    """The paper's "training on own samples collapses, ToEdit does not", from the two chains' verdicts
    against the human control (`collapse_vs_control`):
    - reproduced: replace collapses and the ToEdit arm shows no significant drift;
    - partly reproduced: replace collapses and the ToEdit arm drifts less than replace;
    - not reproduced: replace does not collapse, or the ToEdit arm collapses too;
    - undecided: either is undecided.
    """
    rule = f"replace: {replace.word}; ToEdit: {arm.word} (each against the human control)"
    if "undecided" in (replace.word, arm.word):
        return Verdict("undecided", rule)
    if replace.word == "collapses" and arm.word == "no significant drift":
        return Verdict("reproduced", rule)
    if replace.word == "collapses" and arm.word == "drifts less than replace":
        return Verdict("partly reproduced", rule)
    return Verdict("not reproduced", rule)
