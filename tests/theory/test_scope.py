"""Theorem 2's scope table and the theory family: numbers each way, shortfalls reported, margins reach rules."""

from __future__ import annotations

import numpy as np
import pytest

from toedit.theory import disjoint_masks_from_counts, edit_oracle, run_theory, schedule_shortfall, u_value
from toedit.theory.claims import theory_tests, theory_verdicts
from toedit.theory.scope import schedules, scope_markdown, scope_table


def test_schedule_shortfall_reports_rows_requested_vs_available():
    assert schedule_shortfall(50, [15, 12, 10, 8, 6, 5]) == [
        {"round": 5, "requested": 6, "available": 5},
        {"round": 6, "requested": 5, "available": 0},
    ]
    assert schedule_shortfall(50, [10, 10]) == []
    masks = disjoint_masks_from_counts(50, [15, 12, 10, 8, 6, 5], np.random.default_rng(0), trials=3)
    assert masks.sum(axis=2).tolist() == [[15, 12, 10, 8, 5, 0]] * 3  # what the masks really edit
    assert masks.sum(axis=1).max() == 1  # disjoint


def test_one_shot_edits_stay_below_2u_and_many_rounds_exceed_it():
    """Exact oracle: one round editing 50 % of the rows stays below 2u; ten rounds of 10 % go above it."""
    d, T = 10, 50
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, T, d))
    u = u_value(d, T)
    one = disjoint_masks_from_counts(T, [25] + [0] * 9, rng, trials=400)
    many = disjoint_masks_from_counts(T, [5] * 10, rng, trials=400)
    assert edit_oracle(X, one)[:, -1].mean() / u < 1.9
    assert edit_oracle(X, many)[:, -1].mean() / u > 2.5


def test_scope_table_locates_where_the_bound_starts_to_fail():
    scope = scope_table(generations=12, trials=120)
    labels = [r["schedule"] for r in scope["rows"]]
    assert len(labels) == len(schedules(11)) and "30 % decaying x0.8" in labels
    row = {r["schedule"]: r for r in scope["rows"]}
    assert (
        row["30 % decaying x0.8"]["requested_share"] > 1.0
        and row["30 % decaying x0.8"]["edited_share"] == 1.0
    )
    assert row["30 % decaying x0.8"]["shortfall"] and row["30 % decaying x0.8"]["verdict"] == "fails"
    assert row["5 % decaying x0.8"]["verdict"] == "holds"
    where = scope["where"]["k rounds of 10 %"]
    assert where["last_holds"].startswith("10 % in each of") and where["first_fails"].startswith(
        "10 % in each of"
    )
    md = scope_markdown(scope)
    assert "round(s) short of rows" in md
    assert "k rounds of 10 %: the bound holds up to" in md


def test_theory_family_and_margins_reach_the_rules():
    res = run_theory(generations=9, trials=300, seed=2, scope=False, increment_margin=0.01)
    names = [t.name for t in theory_tests(res)]
    assert names[-1].startswith("Theorem 2") and not any(n.startswith("edit/disjoint:") for n in names)
    v = theory_verdicts(res)
    assert v["edit/disjoint"].word == "no rows left to edit" and v["bound_2u"].word == "fails"
    assert v["edit/bernoulli"].word == "still growing"
    # a margin of 10u per generation makes every growth 'no effect': the chains count as bounded
    loose = run_theory(generations=9, trials=300, seed=2, scope=False, increment_margin=10.0)
    assert theory_verdicts(loose)["edit/bernoulli"].word == "bounded"
    assert loose["margins"]["increment_margin"] == pytest.approx(10.0)
    # Theorem 2's margin: a margin wider than the excess makes the plateau 'at the bound'
    wide = run_theory(generations=9, trials=300, seed=2, scope=False, bound_margin=5.0)
    assert theory_verdicts(wide)["bound_2u"].word == "at the bound"


def test_theory_cli_prints_scope_and_its_margins_reach_the_statement(capsys):
    from toedit.cli import main

    assert (
        main(["theory", "--trials", "60", "--generations", "5", "--increment-margin", "7", "--last", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Theorem 2's scope" in out and "| disjoint schedule |" in out
    assert "over the last 2" in out and "±7 (growth of 7u per generation takes 0.143 generations" in out
    assert main(["theory", "--trials", "60", "--generations", "5", "--no-scope"]) == 0
    assert "Theorem 2's scope" not in capsys.readouterr().out
