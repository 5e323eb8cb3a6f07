"""The results page's verdicts follow the numbers: fabricated results rendered both ways flip the words."""

from __future__ import annotations

from toedit.experiments.collapse import CollapseConfig, summarize_collapse
from toedit.experiments.editrounds import editrounds_statement, editrounds_verdicts
from toedit.experiments.mix import MixConfig, summarize_mix
from toedit.experiments.results import claims, claims_table, findings

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
            noise = 0.0 if arm == "human" else (2.0, -3.0, 1.5)[seed]  # the arm's own seed-to-seed noise
            row1 = {**row0, "round": 1, "heldout_ppl": value + 5 * j + noise}
            if arm.startswith("toedit"):
                row1 |= {"change_rate": 0.05, "selected_rate": 0.06}
                row0 = {**row0, "change_rate": 0.0, "selected_rate": 0.0}
            chains[arm] = [row0, row1]
        per_seed[seed] = chains
    return summarize_collapse(per_seed, CollapseConfig(rounds=1, settings=",".join(final), seeds="0,1,2"))


def _theory(disjoint: list[float]) -> dict:
    n = len(disjoint)
    return {
        "settings": {
            "replace": {"mc_mean": [float(i + 1) for i in range(n)], "mc_stderr": [0.05] * n},
            "edit/disjoint": {"mc_mean": disjoint, "mc_stderr": [0.02] * n},
        }
    }


def _editrounds(per_doc: list[list[float]]) -> dict:
    rounds = [{"above_pct": sum(d[r] for d in per_doc) / len(per_doc), "changed_pct": 0.1} for r in range(2)]
    return {
        "config": {"rounds": 2},
        "paper": [12.5, 11.76],
        "runs": {"paper": {"threshold": 0.99, "rounds": rounds, "per_doc_above_pct": per_doc}},
    }


def _words(rows):
    return [r["verdict"] for r in rows]


def test_verdicts_flip_with_the_numbers():
    good = claims(
        _theory([1.0, 1.4, 1.6, 1.7, 1.7, 1.7, 1.7]),
        _mix({0: 500.0, 50: 600.0, 100: 700.0}, {0: 6.5, 50: 6.3, 100: 6.1}),
        _collapse({"human": 610.0, "replace": 1500.0, "toedit": 611.0, "toedit_fixed": 609.0}),
        editrounds=_editrounds([[12.0, 11.0], [13.0, 12.1], [12.5, 11.4]]),
    )
    bad = claims(
        _theory([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),
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
        "not reproduced",
        "not reproduced",
        "still growing",
        "fails",
        "reversed",
    ]
    # the page's text carries each computed word and its rule
    table = claims_table(good)
    assert all(f"**{r['verdict']}** ({r['rule']})" in table for r in good)
    lines = findings(
        _theory([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),
        _mix({0: 500.0, 50: 600.0, 100: 700.0}, {0: 6.5, 50: 6.3, 100: 6.1}),
        _collapse({"human": 610.0, "replace": 1500.0, "toedit": 611.0, "toedit_fixed": 609.0}),
    )
    assert "**fails**" in lines[-1] and "**reproduced**" in lines[0]


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
    assert "**reproduced** (the 95 % interval" in editrounds_statement(er)
