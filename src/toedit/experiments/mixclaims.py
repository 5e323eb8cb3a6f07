"""The mixing section's verdicts: its claims as tests (per-seed slopes of held-out PPL and training loss on
the synthetic share), the section's Holm family over the main budget and the one-pass control, the
exploratory 100 % vs 0 % contrast, the statement and the claims-table rows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..verdicts import Test, Verdict, exploratory, family, family_note


def claim_row(claim: str, paper: str, here: str, verdict: Verdict) -> dict[str, str]:
    """One row of the results page's claims table."""
    return {"claim": claim, "paper": paper, "here": here, "verdict": verdict.word, "rule": verdict.rule}


PAPER_MIX = (21.38, 49.31)  # the paper's held-out PPL at 0 % and 100 % synthetic (PAPER.md section 3)


def mix_tests(result: dict[str, Any], config: Any, label: str = "") -> list[Test]:
    """The mixing claims as tests: held-out PPL rises and training loss falls with the synthetic share (per-seed
    slopes per 100 % share); margins from the configuration (PPL relative to the 0 % runs' mean)."""
    cfg = config if isinstance(config, dict) else asdict(config)
    base = result["per_share"][0]["heldout_ppl"]["mean"]
    rel = PAPER_MIX[1] / PAPER_MIX[0] - 1
    tag = f" ({label})" if label else ""
    ppl_margin = cfg.get("ppl_margin", 0.02)
    return [
        Test(
            f"held-out PPL slope per 100 % synthetic share{tag}",
            result["trend"]["heldout_ppl"],
            ppl_margin * base,
            f"{100 * ppl_margin:g} % of the {result['base_share']} % runs' mean PPL {base:.1f}; the paper calls a "
            "3.4 % change 'barely moves'",
            paper=f"{PAPER_MIX[0]} -> {PAPER_MIX[1]}, +{100 * rel:.0f} % of its 0 % PPL, which is +{rel * base:.0f} here",
            digits=3,
        ),
        Test(
            f"training-loss slope per 100 % synthetic share{tag}",
            result["trend"]["final_train_loss"],
            cfg.get("loss_margin", 0.02),
            "nats, about 2 % in PPL",
            sign=-1,
            digits=3,
        ),
    ]


def mix_verdicts(results: list[tuple[dict[str, Any], str]], config: Any) -> dict[str, Verdict]:
    """The mixing family: both claims for every (result, label), Holm-adjusted together; keyed by test name."""
    return family([t for res, label in results for t in mix_tests(res, config, label)])


def contrast(result: dict[str, Any], config: Any, key: str = "heldout_ppl") -> Verdict:
    """Exploratory: the largest share minus the base share, paired by seed."""
    top = max(int(s) for s in result["paired"])
    cfg = config if isinstance(config, dict) else asdict(config)
    base = result["per_share"][0]["heldout_ppl"]["mean"]
    margin = cfg.get("ppl_margin", 0.02) * base if key == "heldout_ppl" else cfg.get("loss_margin", 0.02)
    sign = 1 if key == "heldout_ppl" else -1
    return exploratory(
        Test(
            f"{key} at {top} % - at {result['base_share']} %",
            result["paired"][str(top)][key],
            margin,
            sign=sign,
        )
    )


def mix_statement(
    result: dict[str, Any], config: Any, verdicts: dict[str, Verdict] | None = None, label: str = ""
) -> str:
    ps = result["per_share"]
    lo, hi = ps[0], ps[-1]
    h, l_ = hi["heldout_ppl"], lo["heldout_ppl"]
    best = min(ps, key=lambda p: p["heldout_ppl"]["mean"])
    loss = [p["final_train_loss"]["mean"] for p in ps]
    head = (
        f"Held-out human PPL goes from {l_['mean']:.2f} ± {l_['ci95']:.2f} at {lo['share']} % synthetic to "
        f"{h['mean']:.2f} ± {h['ci95']:.2f} at {hi['share']} % (mean ± 95 % CI over {l_['n']} seeds; "
        f"lowest mean at {best['share']} %). Training loss at the end: {loss[0]:.3f} at {lo['share']} % vs "
        f"{loss[-1]:.3f} at {hi['share']} %."
    )
    if "trend" not in result:
        return head
    tests = mix_tests(result, config, label)
    v = verdicts if verdicts is not None else family(tests)
    slopes = ", ".join(f"{x:+.1f}" for x in result["trend"]["heldout_ppl"]["slopes"])
    return " ".join(
        [
            head,
            f"Per-seed slopes of held-out PPL per 100 % share: {slopes}.",
            f"More synthetic data -> higher held-out PPL: {v[tests[0].name].bold}.",
            f"Training loss falls as the synthetic share rises: {v[tests[1].name].bold}.",
            f"The {hi['share']} % vs {lo['share']} % contrast: {contrast(result, config).bold}.",
        ]
    )


def mix_family(mix: dict[str, Any], mix_once: dict[str, Any] | None) -> dict[str, Verdict]:
    """The mixing section's family: both claims of the main budget and of the one-pass control, Holm together;
    the statements of both are rewritten with these verdicts."""
    parts = [(mix, mix["epochs_label"])] + ([(mix_once, mix_once["epochs_label"])] if mix_once else [])
    v = mix_verdicts(parts, mix["config"])
    for res, label in parts:
        res["statement"] = mix_statement(res, mix["config"], v, label)
    return v


def mix_family_note(mix: dict[str, Any], mix_once: dict[str, Any] | None) -> str:
    parts = [(mix, mix["epochs_label"])] + ([(mix_once, mix_once["epochs_label"])] if mix_once else [])
    tests = [t for res, label in parts for t in mix_tests(res, mix["config"], label)]
    return family_note("mixing", tests, tests[0].name)


def mix_claims(mix: dict[str, Any], v: dict[str, Verdict]) -> list[dict[str, str]]:
    ps = mix["per_share"]
    lo, hi = ps[0]["heldout_ppl"], ps[-1]["heldout_ppl"]
    best = min(ps, key=lambda p: p["heldout_ppl"]["mean"])
    loss = [p["final_train_loss"]["mean"] for p in ps]
    ppl_test, loss_test = mix_tests(mix, mix["config"], mix["epochs_label"])
    return [
        claim_row(
            f"held-out human PPL rises with the synthetic share ({mix['epochs_label']})",
            "21.38 -> 49.31 from 0 to 100 %, rising at every step",
            f"{lo['mean']:.1f} ± {lo['ci95']:.1f} at {ps[0]['share']} % -> {hi['mean']:.1f} ± {hi['ci95']:.1f} at "
            f"{ps[-1]['share']} % (lowest mean at {best['share']} %: {best['heldout_ppl']['mean']:.1f})",
            v[ppl_test.name],
        ),
        claim_row(
            f"training loss falls as the synthetic share rises ({mix['epochs_label']})",
            "yes",
            f"{loss[0]:.3f} -> {loss[-1]:.3f}",
            v[loss_test.name],
        ),
    ]
