"""Statistics and verdict rules: pure functions from numbers to a verdict word and the rule that chose it.

The bottom of the import graph (standard library only): `toedit.analysis` and `toedit.experiments` both use
it. Every bold verdict on the results page and in `toedit analyze`'s findings comes from one of these
functions, never from a typed-in string. Each returns a `Verdict` (word, rule text, the numbers used);
`Verdict.bold` renders "**word** (rule)". docs/verdicts.md states every rule.

Statistics: `interval` (mean, s.e., 95 % t-interval and two-sided t-test p of a sample), `paired_delta`
(the same on a - b per pair), `slope_trend` (per-seed least-squares slopes), `holm` (Holm-adjusted
p-values), `mde` (minimum detectable effect at 80 % power). `t_quantile` / `t_pvalue` are exact for integer
degrees of freedom, so core commands need no scipy.

Four outcomes (`judge`, `family`): "no effect" when the family-level interval (level 1 - 0.05/m for a family
of m) lies inside the margin of no effect stated beside it; else the claim holds / the opposite holds when
the Holm-adjusted p < 0.05 within the section's family (by the sign of the mean); else "inconclusive". The
last two carry the minimum detectable effect beside the paper's effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALPHA",
    "BOUND",
    "CLAIM",
    "EFFECT",
    "INCONCLUSIVE",
    "NO_EFFECT",
    "POWER",
    "Test",
    "Verdict",
    "bound_2u",
    "bounded",
    "collapse_claim",
    "direction",
    "exploratory",
    "family",
    "family_note",
    "fmt_delta",
    "growth_reason",
    "holm",
    "interval",
    "judge",
    "mde",
    "paired_delta",
    "shifted",
    "slope",
    "slope_trend",
    "t_pvalue",
    "t_quantile",
    "u_shape",
]

ALPHA = 0.05  # two-sided level of every test (family-wise, Holm, within a declared family)
POWER = 0.8  # power at which the minimum detectable effect is stated
NO_EFFECT = "no effect"
INCONCLUSIVE = "inconclusive"
UNDECIDED = "undecided"
CLAIM = ("reproduced", "reversed")  # (the claim holds, the opposite holds) for a paper's claim
EFFECT = ("improves", "harms")  # the same for a treatment against its control
BOUND = ("holds", "fails")  # the same for a bound
DRIFTS = "drifts above the control"  # a chain's held-out PPL above the human control's (collapse family)
DRIFTS_LESS = "drifts less than replace"
BELOW_CONTROL = "below the control"


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


def _df(df: float) -> int:
    if int(df) != df or df < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    return int(df)


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile (p in (0.5, 1)) of Student's t with integer `df` >= 1, by bisection (no scipy).

    Degrees of freedom above 10,000 use the normal quantile's t limit (the series gets long; the difference
    is below 1e-4)."""
    if not 0.5 < p < 1:
        raise ValueError(f"p must be in (0.5, 1), got {p}")
    n = min(_df(df), 10_000)
    target = 2 * p - 1  # two-sided mass inside (-t, t)
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, n) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_two_sided_mass(mid, n) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def t_pvalue(t: float, df: int) -> float:
    """Two-sided p-value of a t statistic with integer `df` (df above 10,000: the df = 10,000 value)."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return max(0.0, 1.0 - _t_two_sided_mass(abs(t), min(_df(df), 10_000)))


def interval(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, s.d., s.e., the `level` t-interval and the two-sided one-sample t-test p (H0: mean 0).

    Keys: mean, sd, se, half, ci95_low, ci95_high, n, p. One value: sd, se, half, the ends and p are NaN (no
    interval; every rule below then answers "undecided"). All values equal: se 0, p 1 when the mean is 0
    and 0 otherwise.
    """
    x = [float(v) for v in values]
    n = len(x)
    if n == 0:
        raise ValueError("no values")
    mean = sum(x) / n
    if n < 2:
        sd = se = half = p = math.nan
    else:
        sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
        se = sd / math.sqrt(n)
        half = t_quantile(0.5 + level / 2, n - 1) * se
        p = t_pvalue(mean / se, n - 1) if se > 0 else (1.0 if mean == 0 else 0.0)
    return {
        "mean": mean,
        "sd": sd,
        "se": se,
        "half": half,
        "ci95_low": mean - half,
        "ci95_high": mean + half,
        "n": n,
        "p": p,
    }


def paired_delta(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """a - b per pair (seed, trial, document), summarised by `interval` (the one implementation)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    return interval([x - y for x, y in zip(a, b, strict=True)])


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys on xs."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("a slope needs two or more (x, y) pairs of equal length")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a slope needs two different x values")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def slope_trend(
    xs: Sequence[float], per_seed: Sequence[Sequence[float]], scale: float = 1.0
) -> dict[str, Any]:
    """A trend across seeds: each seed's least-squares slope of y on x (times `scale`, e.g. 100 for "per 100 %
    share"), summarised by `interval`; `slopes` holds the per-seed values."""
    slopes = [scale * slope(xs, ys) for ys in per_seed]
    return {**interval(slopes), "slopes": slopes}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN and is not counted)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def mde(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable effect of a two-sided one-sample (paired) t-test at level `alpha` with `power`:
    (t_{1-alpha/2, n-1} + t_{power, n-1}) sd / sqrt(n); NaN below two pairs."""
    if n < 2 or math.isnan(sd):
        return math.nan
    return (t_quantile(1 - alpha / 2, n - 1) + t_quantile(power, n - 1)) * sd / math.sqrt(n)


def fmt_delta(d: Mapping[str, float], digits: int = 2, unit: str = "") -> str:
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


@dataclass(frozen=True)
class Test:
    """One test of a family: a difference with its interval, the claim's sign and the margin of no effect.

    `delta` has mean, sd, se, n, p (as from `interval`, `paired_delta` or `slope_trend`); the claim says
    sign x mean > 0; `margin` (> 0, the units of `delta`) bounds a difference too small to matter and
    `margin_reason` says why; `words` = (the claim holds, the opposite holds) and `none_word` the word for
    "no effect"; `paper` is the paper's effect in the same units, printed beside the minimum detectable effect.
    `resolution` (>= 0, the units of `delta`) is the smallest difference the measurement can show (accuracy
    over N items: 1/N): the equivalence interval is never narrower than ±resolution, so identical decisions
    in every seed (sd 0) show "no effect" only within a margin of at least one item.
    """

    name: str
    delta: Mapping[str, Any]
    margin: float
    margin_reason: str = ""
    sign: int = 1
    words: tuple[str, str] = CLAIM
    paper: str | None = None
    digits: int = 3
    none_word: str = NO_EFFECT
    resolution: float = 0.0


def _p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.3g}"


def _g(x: float, digits: int) -> str:
    return f"{x:+.{digits}g}"


def judge(test: Test, p_adjusted: float | None = None, family_size: int = 1, alpha: float = ALPHA) -> Verdict:
    """The four outcomes of one test (see the module docstring); `p_adjusted` is its Holm-adjusted p within a
    family of `family_size` tests (default: the raw p, a family of one)."""
    d, k = test.delta, test.digits
    n, se, mean = int(d["n"]), d["se"], d["mean"]
    nums = {"delta": dict(d), "margin": test.margin}
    if n < 2 or math.isnan(se):
        return Verdict(UNDECIDED, f"{test.name}: one pair only, no interval", nums)
    if test.margin <= 0:
        raise ValueError(f"{test.name}: the margin of no effect must be > 0, got {test.margin}")
    p = d["p"]
    padj = p if p_adjusted is None else p_adjusted
    adj = f"Holm-adjusted {_p(padj)} in a family of {family_size}" if family_size > 1 else _p(p)
    raw = f"; raw {_p(p)}" if family_size > 1 else ""
    text = f"{test.name} {fmt_delta(d, k)} (95 % t-interval, n = {n}); {adj}{raw}"
    nums.update(p=p, p_adjusted=padj, family_size=family_size)
    level = 1 - alpha / family_size  # the family-level (Bonferroni) interval for the equivalence check
    half = t_quantile(1 - alpha / (2 * family_size), n - 1) * se
    floor = test.resolution > half
    half = max(half, test.resolution)
    lo, hi = mean - half, mean + half
    nums["equivalence_interval"] = (lo, hi)
    band = f"the {100 * level:.4g} % interval [{_g(lo, k)}, {_g(hi, k)}]"
    if floor:
        band += f" (widened to ±{test.resolution:.{k}g}, the measurement's resolution)"
    why = f" ({test.margin_reason})" if test.margin_reason else ""
    below = f"{text}, {'below' if padj < alpha else 'not below'} {alpha:g}"
    inside = -test.margin <= lo and hi <= test.margin
    if padj < alpha and not inside:
        word = test.words[0] if test.sign * mean > 0 else test.words[1]
        return Verdict(word, below, nums)
    eff = mde(d["sd"], n, alpha)
    nums["mde"] = eff
    power = f"minimum detectable effect at {POWER:.0%} power (two-sided {alpha:g}) ±{eff:.{k}g}"
    if family_size > 1:
        power += f", ±{mde(d['sd'], n, alpha / family_size):.{k}g} at the family's first Holm step"
    power += f" (the paper's effect: {test.paper})" if test.paper else ""
    if inside:
        return Verdict(
            test.none_word, f"{below}; {band} lies inside the margin ±{test.margin:.{k}g}{why}; {power}", nums
        )
    return Verdict(
        INCONCLUSIVE, f"{below}; {band} reaches beyond the margin ±{test.margin:.{k}g}{why}; {power}", nums
    )


def family(tests: Sequence[Test], alpha: float = ALPHA) -> dict[str, Verdict]:
    """Judge every test of one family with Holm-adjusted p-values (tests without an interval do not count)."""
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise ValueError(f"test names of a family must be distinct: {names}")
    ps = [t.delta["p"] if int(t.delta["n"]) >= 2 else math.nan for t in tests]
    adj = holm(ps)
    m = sum(not math.isnan(p) for p in ps)
    return {
        t.name: judge(t, a if not math.isnan(a) else None, max(m, 1), alpha)
        for t, a in zip(tests, adj, strict=True)
    }


def exploratory(test: Test, alpha: float = ALPHA) -> Verdict:
    """An unadjusted test outside the section's family, labelled exploratory."""
    v = judge(test, alpha=alpha)
    return Verdict(v.word, f"exploratory, not adjusted: {v.rule}", v.numbers)


def family_note(section: str, tests: Sequence[Test], primary: str) -> str:
    """The sentence declaring a section's family and primary endpoint (printed on the page)."""
    if primary not in [t.name for t in tests]:
        raise ValueError(f"the primary endpoint {primary!r} is not in the family")
    margins = "; ".join(
        f"{t.name}: ±{t.margin:.{t.digits}g}" + (f" ({t.margin_reason})" if t.margin_reason else "")
        for t in tests
    )
    return (
        f"Family of tests ({section}, Holm-adjusted at {ALPHA:g} within it): "
        + "; ".join(t.name for t in tests)
        + f". Primary endpoint: {primary}. Margins of no effect, fixed in the configuration before the run: "
        f"{margins}. Every other interval in this section is exploratory."
    )


def direction(d: Mapping[str, float], what: str = "the difference") -> Verdict:
    """'above 0' / 'below 0' / 'contains 0' from a 95 % interval (or 'undecided' without one): a description,
    not a verdict on a claim (use `judge` for that)."""
    if math.isnan(d["ci95_low"]) or math.isnan(d["ci95_high"]):
        return Verdict(UNDECIDED, f"{what}: one pair only, no interval", dict(d))
    lo, hi = d["ci95_low"], d["ci95_high"]
    where = "above 0" if lo > 0 else "below 0" if hi < 0 else "contains 0"
    return Verdict(
        where,
        f"the 95 % interval of {what} [{lo:+.4g}, {hi:+.4g}] {where.replace('above', 'lies above').replace('below', 'lies below')}",
        dict(d),
    )


def growth_reason(margin: float) -> str:
    """Why a per-generation growth margin (in u) counts as negligible."""
    return f"growth of {margin:g}u per generation takes {1 / margin:.3g} generations to add 1u"


def bounded(
    increment: Mapping[str, Any],
    gap: Mapping[str, Any],
    margin: float,
    last: int,
    *,
    source: str = "per-trial paired increments",
    nothing_left_after: int | None = None,
    p_adjusted: float | None = None,
    family_size: int = 1,
) -> Verdict:
    """A chain's error is bounded, judged on the increments' own uncertainty.

    `increment`: the mean per-generation increment over the last `last` generations, as an interval over
    trials (per-trial paired differences, or per-trial exact-oracle increments); `gap`: replace - chain at
    the last generation, paired per trial; `margin`: the per-generation growth too small to matter.
    - "no rows left to edit" when the chain edits nothing after generation `nothing_left_after` (a plateau
      by construction, not evidence of a bounded process);
    - "still growing" when the increment is above 0 (Holm-adjusted p < 0.05), "falling" when below;
    - "bounded" when the increment's interval lies inside ±margin and the chain is below replace
      (the gap's interval above 0); "not below replace" when it is not;
    - "inconclusive" otherwise (with the minimum detectable increment).
    """
    if nothing_left_after is not None:
        return Verdict(
            "no rows left to edit",
            f"no rows left to edit after generation {nothing_left_after}: its increments are exactly 0 "
            "because nothing changes, which says nothing about whether editing keeps the error bounded",
            {"nothing_left_after": nothing_left_after},
        )
    t = Test(
        f"the mean increment per generation over the last {last} ({source})",
        increment,
        margin,
        growth_reason(margin),
        sign=1,
        words=("still growing", "falling"),
        digits=3,
    )
    v = judge(t, p_adjusted, family_size)
    if v.word != NO_EFFECT:
        return v
    if gap["ci95_low"] > 0:
        return Verdict(
            "bounded",
            f"{v.rule}; replace - chain at the last generation {fmt_delta(gap, 2)} lies above 0",
            v.numbers,
        )
    return Verdict(
        "not below replace", f"{v.rule}; replace - chain {fmt_delta(gap, 2)} does not lie above 0", v.numbers
    )


def bound_2u(
    values: Sequence[float], stderr: Sequence[float], bound: float = 2.0, z: float = 1.96
) -> Verdict:
    """Theorem 2's E <= 2u: 'fails' when the lower end of the 95 % interval (mean - z s.e., Monte Carlo
    normal interval) is above `bound` at some generation (the first such is reported); 'holds' when the upper
    end is at or below it at every generation; else 'undecided'."""
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
        UNDECIDED,
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


def shifted(p_value: float, alpha: float = ALPHA, design: str = "independent samples") -> Verdict:
    """An embedding shift from a permutation test: 'shifted' when p < alpha, else 'no significant shift'."""
    if p_value < alpha:
        return Verdict("shifted", f"permutation p = {p_value:.3f} < {alpha} ({design})", {"p": p_value})
    return Verdict(
        "no significant shift", f"permutation p = {p_value:.3f} >= {alpha} ({design})", {"p": p_value}
    )


def collapse_claim(replace: Verdict, arm: Verdict, gap: Verdict, name: str = "ToEdit") -> Verdict:
    """The paper's "training on own samples collapses, ToEdit does not", from the family's verdicts:
    - reproduced: replace drifts above the control and the arm shows no effect against it (or lies below it);
    - partly reproduced: replace drifts, the arm is not shown to be without effect, but replace drifts more;
    - not reproduced: replace shows no effect (no collapse to prevent), or the arm drifts and replace does not
      drift more than it;
    - inconclusive: otherwise; undecided: one seed.
    """
    rule = f"replace - human: {replace.word}; {name} - human: {arm.word}; replace - {name}: {gap.word}"
    words = {replace.word, arm.word, gap.word}
    drifts = DRIFTS
    if UNDECIDED in words:
        return Verdict(UNDECIDED, rule)
    if replace.word == drifts and arm.word in (NO_EFFECT, BELOW_CONTROL):
        return Verdict("reproduced", rule)
    if replace.word == drifts and gap.word == DRIFTS_LESS:
        return Verdict("partly reproduced", rule)
    if replace.word == NO_EFFECT or (replace.word == drifts and arm.word == drifts):
        return Verdict("not reproduced", rule)
    return Verdict(INCONCLUSIVE, rule)
