"""The results page's verdicts follow the numbers: fabricated results rendered both ways flip the words."""

from __future__ import annotations

from toedit.experiments.collapse import CollapseConfig, collapse_verdicts, summarize_collapse
from toedit.experiments.editrounds import editrounds_statement, editrounds_verdicts
from toedit.experiments.mix import MixConfig, summarize_mix
from toedit.experiments.results import claims, claims_table, findings
from toedit.verdicts import interval

SEEDS = (0, 1, 2)
JITTER = (0.0, 3.0, -2.0)  # per-seed offsets shared by every share / chain (what pairing removes)


def _mix(ppl_by_share: dict[int, float], loss_by_share: dict[int, float]) -> dict:
    runs = []
    for seed, j in zip(SEEDS, JITTER, strict=True):
        for share, ppl in ppl_by_share.items():
            runs.append(
                {
                    "share": share,
                    "seed": seed,
                    "heldout_ppl": ppl + 40 * j + 0.1 * seed * share / 100,
                    "heldout_tail_share": 0.7,
                    "final_train_loss": loss_by_share[share] + 0.01 * j,
                }
            )
    res = summarize_mix(runs, MixConfig(shares="0,50,100", seeds="0,1,2"))
    res["epochs_label"] = "test budget"
    return res


def _collapse(final: dict[str, float]) -> dict:
    per_seed = {}
    for seed, j in zip(SEEDS, JITTER, strict=True):
        chains = {}
        for arm, value in final.items():
            row0 = {
                "round": 0,
                "heldout_ppl": 600.0 + j,
                "own_ppl": 500.0,
                "tail_share": 0.7,
                "ngram_entropy": 7.0,
            }
            noise = 0.0 if arm == "human" else (0.2, -0.3, 0.15)[seed]  # the arm's own seed-to-seed noise
            row1 = {**row0, "round": 1, "heldout_ppl": value + 5 * j + noise}
            if arm.startswith("toedit"):
                row1 |= {"change_rate": 0.05, "selected_rate": 0.06}
                row0 = {**row0, "change_rate": 0.0, "selected_rate": 0.0}
            chains[arm] = [row0, row1]
        per_seed[seed] = chains
    return summarize_collapse(per_seed, CollapseConfig(rounds=1, settings=",".join(final), seeds="0,1,2"))


def _theory(growth: float, final: float, n: int = 7, trials: int = 400) -> dict:
    """A fabricated theory result: per-trial increments around `growth` (u per generation) in the last
    generations of every edit chain, rows still edited, and the disjoint chain's last error around `final`."""
    jitter = [0.002 * ((k % 9) - 4) for k in range(trials)]
    chain = {
        "mc_mean": [1.0 + growth * i for i in range(n)],
        "mc_stderr": [0.02] * n,
        "tail_increment": interval([growth + j for j in jitter]),
        "gap_to_replace": interval([n - final + 10 * j for j in jitter]),
        "rows_edited_per_round": [5.0] * (n - 1),
        "final_minus_bound": interval([final - 2.0 + 10 * j for j in jitter]),
    }
    return {
        "params": {"generations": n, "fraction": 0.1, "eta": 1.0},
        "margins": {"last": 3, "increment_margin": 0.01, "bound_margin": 0.05},
        "settings": {
            "replace": {"mc_mean": [float(i + 1) for i in range(n)], "mc_stderr": [0.05] * n},
            "edit/disjoint": chain,
        },
    }


def _editrounds(per_doc: list[list[float]]) -> dict:
    rounds = [{"above_pct": sum(d[r] for d in per_doc) / len(per_doc), "changed_pct": 0.1} for r in range(2)]
    return {
        "config": {"rounds": 2, "margin": 0.5},
        "paper": [12.5, 11.76],
        "runs": {"paper": {"threshold": 0.99, "rounds": rounds, "per_doc_above_pct": per_doc}},
    }


def _words(rows):
    return [r["verdict"] for r in rows]


def test_verdicts_flip_with_the_numbers():
    good = claims(
        _theory(growth=0.0, final=1.7),
        _mix({0: 500.0, 50: 600.0, 100: 700.0}, {0: 6.5, 50: 6.3, 100: 6.1}),
        _collapse({"human": 610.0, "replace": 1500.0, "toedit": 611.0, "toedit_fixed": 609.0}),
        editrounds=_editrounds([[12.0, 11.0], [13.0, 12.1], [12.5, 11.4]]),
    )
    bad = claims(
        _theory(growth=0.5, final=4.0),
        _mix({0: 700.0, 50: 600.0, 100: 500.0}, {0: 6.1, 50: 6.3, 100: 6.5}),
        _collapse({"human": 610.0, "replace": 612.0, "toedit": 1400.0, "toedit_fixed": 1500.0}),
        editrounds=_editrounds([[12.0, 12.9], [13.0, 14.1], [12.5, 13.4]]),
    )
    assert _words(good) == [
        "reproduced",  # PPL rises with the share
        "reproduced",  # training loss falls
        "reproduced",  # collapse claim, toedit
        "reproduced",  # collapse claim, toedit_fixed
        "bounded",
        "holds",
        "reproduced",  # Table 15: the share falls
    ]
    assert _words(bad) == [
        "reversed",
        "reversed",
        "not reproduced",  # replace does not drift (no effect within the margin): nothing to prevent
        "not reproduced",
        "still growing",
        "fails",
        "reversed",
    ]
    # the page's text carries each computed word and its rule
    table = claims_table(good)
    assert all(f"**{r['verdict']}** ({r['rule']})" in table for r in good)
    assert "Holm-adjusted" in good[0]["rule"] and "family of 2" in good[0]["rule"]
    lines = findings(
        _theory(growth=0.5, final=4.0),
        _mix({0: 500.0, 50: 600.0, 100: 700.0}, {0: 6.5, 50: 6.3, 100: 6.1}),
        _collapse({"human": 610.0, "replace": 1500.0, "toedit": 611.0, "toedit_fixed": 609.0}),
    )
    assert "**fails**" in lines[-1] and "**reproduced**" in lines[0]


def test_a_wide_interval_is_inconclusive_and_a_tight_one_inside_the_margin_no_effect():
    # ToEdit vs the human control: ±15 PPL seed noise (inconclusive) vs ±0.2 (no effect: collapse claim holds)
    wide = _collapse({"human": 610.0, "replace": 1500.0, "toedit": 611.0, "toedit_fixed": 609.0})
    for seed, j in zip(SEEDS, (15.0, -20.0, 9.0), strict=True):
        wide["runs"][str(seed)]["toedit"][1]["heldout_ppl"] += j
    v = collapse_verdicts(wide)
    assert v["toedit"].word == "inconclusive" and "minimum detectable effect" in v["toedit"].rule
    assert v["claim_toedit"].word == "partly reproduced"  # replace still drifts clearly more
    assert collapse_verdicts(_collapse({"human": 610.0, "replace": 1500.0, "toedit": 611.0}))[
        "toedit"
    ].word == ("no effect")


def test_pairing_decides_where_intervals_overlap():
    # per-seed offsets of 40 x (0, 3, -2) PPL make the unpaired intervals overlap; the paired difference
    # (+20 at every seed) is clear
    mix = _mix({0: 600.0, 50: 610.0, 100: 620.0}, {0: 6.5, 50: 6.4, 100: 6.3})
    lo, hi = mix["per_share"][0]["heldout_ppl"], mix["per_share"][-1]["heldout_ppl"]
    assert hi["mean"] - hi["ci95"] < lo["mean"] + lo["ci95"]  # unpaired intervals overlap
    assert mix["paired"]["100"]["heldout_ppl"]["ci95_low"] > 0
    assert "**reproduced**" in mix["statement"]


def test_editrounds_statement_uses_its_rule():
    er = _editrounds([[12.0, 11.0], [13.0, 12.1], [12.5, 11.4]])
    assert editrounds_verdicts(er)["paper"].word == "reproduced"
    statement = editrounds_statement(er)
    assert "**reproduced** (per-document share above the threshold" in statement
    assert "Primary endpoint: per-document share" in statement
    # a fall of 0.6 +- 1.5 points on 3 documents: inconclusive, with the minimum detectable effect
    wide = _editrounds([[12.0, 12.5], [13.0, 11.0], [12.5, 12.2]])
    v = editrounds_verdicts(wide)["paper"]
    assert v.word == "inconclusive" and "the paper's effect: -0.74 points" in v.rule
