"""Verdicts of `experiment benefit` (one family per setting, `toedit.verdicts`) and the per-item paired
bootstrap (`item_bootstrap`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..verdicts import EFFECT, Test, Verdict, family, family_note, mde, paired_delta

PRIMARY = ("E", "acc")  # the paper's arm and metric: ToEdit's accuracy against the human data


def seed_delta(arm: Sequence[float], base: Sequence[float]) -> dict[str, Any]:
    """Δ = arm − base per seed (same seed order): `verdicts.paired_delta` plus the per-seed values."""
    a, b = np.asarray(arm, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired values need the same seeds")
    if len(a) == 0:
        raise ValueError("no seeds")
    return {**paired_delta(a.tolist(), b.tolist()), "per_seed": (a - b).tolist()}


def benefit_tests(per_arm: list[dict[str, Any]], ppl_margin: float, acc_margin: float) -> list[Test]:
    """One setting's family: Δ(arm − H) of held-out PPL (lower is better; margin relative to H's mean) and of
    accuracy (higher is better; margin in accuracy units) for every arm but H."""
    h = next(a for a in per_arm if a["arm"] == "H")
    tests = []
    for a in per_arm:
        if a["arm"] == "H":
            continue
        tests.append(
            Test(
                f"{a['arm']} - H, ppl",
                a["d_ppl"],
                ppl_margin * h["ppl"]["mean"],
                f"{100 * ppl_margin:g} % of H's PPL",
                sign=-1,
                words=EFFECT,
            )
        )
        tests.append(
            Test(
                f"{a['arm']} - H, acc",
                a["d_acc"],
                acc_margin,
                f"{100 * acc_margin:g} accuracy points; the paper's smallest reported effect is +0.25 points",
                sign=1,
                words=EFFECT,
            )
        )
    return tests


def apply_family(per_arm: list[dict[str, Any]], ppl_margin: float, acc_margin: float) -> str:
    """Judge the setting's family (Holm) into each arm's d_ppl / d_acc ("verdict", "rule", "mde"); returns the
    family sentence for the page."""
    tests = benefit_tests(per_arm, ppl_margin, acc_margin)
    if not tests:
        return ""
    judged: dict[str, Verdict] = family(tests)
    for a in per_arm:
        for metric in ("ppl", "acc"):
            name = f"{a['arm']} - H, {metric}"
            if name in judged:
                d = a[f"d_{metric}"]
                d["verdict"], d["rule"] = judged[name].word, judged[name].rule
                d["mde"] = mde(d["sd"], int(d["n"]))
    names = [t.name for t in tests]
    primary = f"{PRIMARY[0]} - H, {PRIMARY[1]}"
    return family_note("this setting", tests, primary if primary in names else names[0])


def item_bootstrap(arm: np.ndarray, base: np.ndarray, n_boot: int, seed: int = 0) -> dict:
    """Paired bootstrap over items of the accuracy difference; `arm`, `base`: 0/1 arrays [seeds, items].

    Items are resampled (the same resample for both arms); the statistic is the mean over seeds and items.
    Returns the observed Δ, the 2.5/97.5 % percentiles and a two-sided p (share of resamples on the other side
    of 0, doubled, capped at 1).
    """
    a, b = np.asarray(arm, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError("arm and base must be [seeds, items] arrays of one shape")
    d = (a - b).mean(axis=0)  # per item, averaged over seeds
    obs = float(d.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    boots = d[idx].mean(axis=1)
    lo, hi = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
    p = min(1.0, 2 * min(float((boots <= 0).mean()), float((boots >= 0).mean())))
    if np.all(d == 0):
        p = 1.0
    return {"mean": obs, "lo": lo, "hi": hi, "p": p, "items": int(len(d))}
