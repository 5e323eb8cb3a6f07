"""Verdicts of `experiment benefit` (one family per setting, `toedit.verdicts`) and the per-item paired
bootstrap (`item_bootstrap`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...editing import CHANGE_KINDS
from ...verdicts import EFFECT, Test, Verdict, exploratory, family, family_note, mde, paired_delta
from ..human import seed_summary
from .config import METRICS

MOVED = "moved"
NOT_INFORMATIVE = "not informative: the model barely moved"
PAPER_ACC = "+0.25 to +2.29 accuracy points (pre-training +0.36, continual pre-training +0.33 to +2.29, SFT +0.25 to +0.47)"


def seed_delta(arm: Sequence[float], base: Sequence[float]) -> dict[str, Any]:
    """Δ = arm − base per seed (same seed order): `verdicts.paired_delta` plus the per-seed values."""
    a, b = np.asarray(arm, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired values need the same seeds")
    if len(a) == 0:
        raise ValueError("no seeds")
    return {**paired_delta(a.tolist(), b.tolist()), "per_seed": (a - b).tolist()}


def benefit_tests(
    per_arm: list[dict[str, Any]], ppl_margin: float, acc_margin: float, items: int = 0
) -> list[Test]:
    """One setting's family: Δ(arm − H) of held-out PPL (lower is better; margin relative to H's mean) and of
    accuracy (higher is better; margin in accuracy units; over `items` items the interval is at least one item
    wide, `Test.resolution`) for every arm but H."""
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
                paper=PAPER_ACC,
                resolution=1 / items if items else 0.0,
            )
        )
    return tests


def apply_family(
    per_arm: list[dict[str, Any]],
    ppl_margin: float,
    acc_margin: float,
    primary: str = "E - H, acc",
    members: list[str] | None = None,
    items: int = 0,
) -> str:
    """Judge the setting's declared family (Holm) into each arm's d_ppl / d_acc ("verdict", "rule", "mde",
    "exploratory"); tests outside `members` (None: every test) are judged alone and labelled exploratory.
    Returns the family sentence for the page (its primary endpoint: `primary`, or the first test when the
    primary's arm is not run). `items`: the evaluation items behind each accuracy (its resolution)."""
    tests = benefit_tests(per_arm, ppl_margin, acc_margin, items)
    if not tests:
        return ""
    fam = [t for t in tests if members is None or t.name in members]
    judged: dict[str, Verdict] = family(fam) if fam else {}
    for t in tests:
        if t.name not in judged:
            judged[t.name] = exploratory(t)
    for a in per_arm:
        for metric in ("ppl", "acc"):
            name = f"{a['arm']} - H, {metric}"
            if name in judged:
                d = a[f"d_{metric}"]
                d["verdict"], d["rule"] = judged[name].word, judged[name].rule
                d["mde"] = mde(d["sd"], int(d["n"]))
                d["exploratory"] = name not in [t.name for t in fam]
    if not fam:
        return "Every test of this setting is exploratory (the declared family names none of the arms run)."
    names = [t.name for t in fam]
    return family_note("this setting", fam, primary if primary in names else names[0])


def moved(h_ppl: float, h_acc: list[float], before: dict[str, float], share: float) -> dict[str, Any]:
    """The rule for cpt/sft: H moved the prior when its mean held-out PPL is at least `share` below the
    prior's and at least one seed's accuracy differs from the prior's; else the setting is not informative."""
    drop = 1 - h_ppl / before["ppl"]
    changed = [a for a in h_acc if a != before["acc"]]
    ok = drop >= share and bool(changed)
    rule = (
        f"H's mean held-out PPL {h_ppl:.2f} vs the prior's {before['ppl']:.2f} ({100 * drop:+.1f} % lower; "
        f"the rule asks >= {100 * share:g} %), accuracy different from the prior's "
        f"{100 * before['acc']:.2f} % in {len(changed)} of {len(h_acc)} seeds (the rule asks >= 1)"
    )
    return {"word": MOVED if ok else NOT_INFORMATIVE, "ok": ok, "rule": rule, "ppl_drop": drop}


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


def summarize(
    setting: str, runs: list[dict], config, realised: dict, before: dict | None = None
) -> dict[str, Any]:
    """Per arm: metric means over seeds, Δ(arm − H) paired by seed with 95 % t-intervals and verdicts, and
    the paired bootstrap over items of the accuracy difference. With `before` (the untrained prior: cpt, sft)
    the `moved` rule gates the verdicts: a setting where H barely moved the prior gets no verdict."""
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["arm"], r["seed"]): r for r in runs}
    per_arm = []
    for arm in arms:
        row: dict[str, Any] = {"arm": arm}
        for metric in METRICS:
            vals = [by[(arm, s)][metric] for s in seeds]
            row[metric] = seed_summary(vals)
            if arm != "H":
                row[f"d_{metric}"] = seed_delta(vals, [by[("H", s)][metric] for s in seeds])
        if arm != "H":
            a = np.array([by[(arm, s)]["correct"] for s in seeds])
            h = np.array([by[("H", s)]["correct"] for s in seeds])
            row["items_acc"] = item_bootstrap(a, h, config.bootstrap, seed=0)
        rr = realised.get(arm, [])
        row["selected_rate"] = float(np.mean([x["selected_rate"] for x in rr])) if rr else math.nan
        row["changed_rate"] = float(np.mean([x["changed_rate"] for x in rr])) if rr else math.nan
        # kinds pooled over seeds (counts, not mean shares: a seed without changes has no shares)
        counts = {k: sum(x["counts"][f"n_changed_{k}"] for x in rr) for k in CHANGE_KINDS}
        row["kind_counts"] = counts
        if rr and "shortfall" in rr[0]:
            row["shortfall"] = {k: sum(x["shortfall"][k] for x in rr) for k in CHANGE_KINDS}
        total = sum(counts.values())
        row["kinds"] = {k: (v / total if total else math.nan) for k, v in counts.items()}
        row["train_tokens"] = sorted({by[(arm, s)]["train_tokens"] for s in seeds})
        row["corpus_tokens"] = float(np.mean([by[(arm, s)]["corpus_tokens"] for s in seeds]))
        per_arm.append(row)
    note = ""
    if len(seeds) > 1:
        note = apply_family(
            per_arm,
            config.ppl_margin,
            config.acc_margin,
            config.primary(setting),
            config.family(setting),
            items=len(runs[0]["correct"]),
        )
    gate = None
    if before is not None:
        h = next(a for a in per_arm if a["arm"] == "H")
        gate = moved(h["ppl"]["mean"], [by[("H", s)]["acc"] for s in seeds], before, config.moved_ppl)
        if not gate["ok"]:  # no verdict: the computed one is kept beside it in the json
            for a in per_arm:
                for m in METRICS:
                    d = a.get(f"d_{m}")
                    if d is not None and "verdict" in d:
                        d["verdict_if_moved"], d["verdict"] = d["verdict"], gate["word"]
    return {
        "moved": gate,
        "primary": config.primary(setting),
        "setting": setting,
        "seeds": seeds,
        "arms": per_arm,
        "runs": runs,
        "realised": realised,
        "family": note,
    }
