"""The theory section's family of tests: does each edit chain stay bounded, and does Theorem 2's 2u hold?

Family (Holm-adjusted within it): per edit chain with rows still being edited, the mean increment per
generation over the last `last` generations (per-trial exact-oracle increments where the oracle exists,
else per-trial paired Monte Carlo increments), and the primary endpoint, the disjoint chain's error at the
last generation minus 2u. A chain that edits no rows in its last generations is reported as such.
"""

from __future__ import annotations

from typing import Any

from ..verdicts import BOUND, Test, Verdict, bounded, family_note, growth_reason, holm, judge

PRIMARY = "Theorem 2"


def _nothing_left_after(s: dict[str, Any], last: int) -> int | None:
    """The generation after which the chain edits no row, when its last `last` rounds edit none."""
    rows = s.get("rows_edited_per_round")
    if not rows or len(rows) < last or any(r > 0 for r in rows[-last:]):
        return None
    busy = [i for i, r in enumerate(rows) if r > 0]
    return busy[-1] + 2 if busy else 1  # round i (0-based) writes generation i + 2


def _increment(s: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if s.get("oracle_tail_increment"):
        return s["oracle_tail_increment"], "per-trial exact-oracle increments"
    return s["tail_increment"], "per-trial paired Monte Carlo increments"


def theory_tests(results: dict[str, Any]) -> list[Test]:
    """The family's tests: growth of every edit chain still editing, and Theorem 2 on the disjoint chain."""
    st, mg = results["settings"], results["margins"]
    last, N = mg["last"], results["params"]["generations"]
    tests = []
    for name, s in st.items():
        if not name.startswith("edit/") or "tail_increment" not in s:
            continue
        if _nothing_left_after(s, last) is not None:
            continue
        inc, source = _increment(s)
        margin = mg["increment_margin"]
        tests.append(
            Test(
                f"{name}: growth per generation over the last {last} ({source})",
                inc,
                margin,
                growth_reason(margin),
            )
        )
    if "edit/disjoint" in st and st["edit/disjoint"].get("final_minus_bound"):
        tests.append(
            Test(
                f"{PRIMARY}: edit/disjoint error at generation {N} - 2u",
                st["edit/disjoint"]["final_minus_bound"],
                mg["bound_margin"],
                "within this of 2u the bound is neither clearly kept nor clearly broken",
                sign=-1,
                words=BOUND,
                none_word="at the bound",
            )
        )
    return tests


def theory_verdicts(results: dict[str, Any]) -> dict[str, Verdict]:
    """Per edit chain `bounded` (Holm within the theory family) and "bound_2u" for Theorem 2."""
    st, mg = results["settings"], results["margins"]
    last = mg["last"]
    tests = theory_tests(results)
    adj = dict(zip([t.name for t in tests], holm([t.delta["p"] for t in tests]), strict=True))
    m = len(tests)
    out: dict[str, Verdict] = {}
    for name, s in st.items():
        if not name.startswith("edit/") or "tail_increment" not in s:
            continue
        g = _nothing_left_after(s, last)
        inc, source = _increment(s)
        key = next((t.name for t in tests if t.name.startswith(f"{name}:")), None)
        out[name] = bounded(
            inc,
            s["gap_to_replace"],
            mg["increment_margin"],
            last,
            source=source,
            nothing_left_after=g,
            p_adjusted=adj.get(key) if key else None,
            family_size=m,
        )
    thm = next((t for t in tests if t.name.startswith(PRIMARY)), None)
    if thm is not None:
        out["bound_2u"] = judge(thm, adj[thm.name], m)
    return out


def theory_family(results: dict[str, Any]) -> str:
    """The section's family sentence."""
    tests = theory_tests(results)
    primary = next((t.name for t in tests if t.name.startswith(PRIMARY)), tests[0].name if tests else "")
    return family_note("theory", tests, primary) if tests else ""


def edit_history(s: dict[str, Any]) -> str:
    """Cumulative edited share by generation and, for disjoint masks, rows requested vs available."""
    share = s.get("edited_share")
    if not share:
        return ""
    text = "Share of rows edited at least once by generation " + ", ".join(
        f"{i + 1}: {100 * x:.0f} %" for i, x in enumerate(share)
    )
    short = s.get("schedule_shortfall") or []
    if short:
        text += "; the schedule asks for more rows than remain: " + ", ".join(
            f"round {r['round']} requests {r['requested']}, {r['available']} available" for r in short
        )
    return text + "."
