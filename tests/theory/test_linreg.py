"""Monte Carlo chains against closed forms and the exact oracle; masks; reproducibility; run_theory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toedit.theory import (
    accumulate_chain,
    accumulate_closed_form,
    bernoulli_masks,
    disjoint_masks,
    edit_chain,
    edit_counts,
    edit_oracle,
    fraction_schedule,
    replace_chain,
    replace_closed_form,
    run_theory,
    u_value,
)

D, T, N = 5, 20, 6


def _assert_within(mean: np.ndarray, se: np.ndarray, ref: np.ndarray, z: float = 3.0) -> None:
    dev = np.abs(mean - ref) / se
    assert (dev < z).all(), f"|MC - reference| / s.e. = {np.round(dev, 2)}"


def test_replace_random_design_matches_closed_form() -> None:
    u = u_value(D, T, 1.3)
    r = replace_chain(d=D, T=T, sigma=1.3, generations=N, trials=20_000, design="random", seed=1)
    assert r.X.shape == (20_000, T, D)
    _assert_within(r.mean / u, r.stderr / u, replace_closed_form(N))
    assert abs(r.mean[-1] / u - accumulate_closed_form(N)[-1]) > 50 * r.stderr[-1] / u  # tells them apart


def test_accumulate_random_design_matches_closed_form() -> None:
    u = u_value(D, T)
    r = accumulate_chain(d=D, T=T, generations=N, trials=20_000, design="random", seed=2)
    _assert_within(r.mean / u, r.stderr / u, accumulate_closed_form(N))
    assert (np.diff(r.mean) > 0).all()


@pytest.mark.parametrize("policy", ["disjoint", "bernoulli"])
def test_edit_fixed_design_matches_oracle(policy: str) -> None:
    r = edit_chain(
        policy, d=D, T=T, generations=8, trials=20_000, fraction=0.3, eta=0.8, design="fixed", seed=3
    )
    assert r.masks.shape == (7, T)  # shared by all trials: deterministic masks
    exact = edit_oracle(r.X, r.masks)
    _assert_within(r.mean, r.stderr, exact)
    assert exact[-1] > 1.5 * exact[0]  # the comparison is not trivial: the error moves


@pytest.mark.slow
def test_edit_random_design_matches_averaged_oracle() -> None:
    r = edit_chain("disjoint", d=D, T=T, generations=6, trials=20_000, design="random", seed=4)
    assert r.masks.shape == (20_000, 5, T)
    exact = edit_oracle(r.X, r.masks)
    _assert_within(r.mean, r.stderr, exact.mean(axis=0))


def test_edit_all_rows_is_replace_and_no_rows_is_static() -> None:
    kw = dict(d=D, T=T, generations=N, trials=500, design="fixed", seed=5)
    rep = replace_chain(**kw)
    full = edit_chain(masks=np.ones((N - 1, T), bool), **kw)
    np.testing.assert_array_equal(full.errors, rep.errors)
    none = edit_chain(masks=np.zeros((N - 1, T), bool), **kw)
    np.testing.assert_array_equal(none.errors, np.repeat(rep.errors[:, :1], N, axis=1))
    zero = edit_chain("confidence", fraction=0.0, **kw)
    np.testing.assert_array_equal(zero.errors, none.errors)


def test_seeded_runs_reproducible() -> None:
    for policy in ("disjoint", "bernoulli", "confidence"):
        kw = dict(d=D, T=T, generations=N, trials=200, design="random")
        a, b = edit_chain(policy, seed=9, **kw), edit_chain(policy, seed=9, **kw)
        np.testing.assert_array_equal(a.errors, b.errors)
        assert not np.array_equal(a.errors, edit_chain(policy, seed=10, **kw).errors)
    a = accumulate_chain(d=D, T=T, trials=50, seed=9)
    np.testing.assert_array_equal(a.errors, accumulate_chain(d=D, T=T, trials=50, seed=9).errors)
    # settings run with one seed share the design and the generation-1 noise
    np.testing.assert_array_equal(a.errors[:, 0], replace_chain(d=D, T=T, trials=50, seed=9).errors[:, 0])


def test_mask_policies() -> None:
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(fraction_schedule(0.3, 0.8, 3), [0.3, 0.24, 0.192])
    counts = edit_counts(50, 0.3, 0.8, 11)
    assert counts[:5].tolist() == [15, 12, 10, 8, 6]
    m = disjoint_masks(50, 11, 0.3, 0.8, rng, trials=300)
    assert (m.sum(axis=1) <= 1).all()  # M_i M_j = 0
    np.testing.assert_array_equal(
        m.sum(axis=2), np.broadcast_to([15, 12, 10, 8, 5, 0, 0, 0, 0, 0, 0], (300, 11))
    )
    m = disjoint_masks(100, 4, 0.1, 1.0, rng)
    assert m.sum(axis=1).tolist() == [10, 10, 10, 10] and m.sum(axis=0).max() == 1
    b = bernoulli_masks(50, 5, 0.3, 0.8, rng, trials=4000)
    rate = b.mean(axis=(0, 2))
    np.testing.assert_allclose(rate, fraction_schedule(0.3, 0.8, 5), atol=0.004)
    assert (b.sum(axis=1) > 1).any()  # rows can be edited again


def test_confidence_policy_edits_counted_rows() -> None:
    r = edit_chain(
        "confidence", d=D, T=T, generations=N, trials=300, fraction=0.25, eta=1.0, design="random", seed=6
    )
    assert (r.edited.sum(axis=1) == 5 * (N - 1)).all()
    assert r.edited.max() > 1  # confident rows get edited again
    # it edits where the model already agrees with its labels, which slows the growth relative to random rows
    b = edit_chain(
        "bernoulli", d=D, T=T, generations=N, trials=300, fraction=0.25, eta=1.0, design="random", seed=6
    )
    assert r.mean[-1] < b.mean[-1]


def test_run_theory_writes_files_and_statement(tmp_path) -> None:
    res = run_theory(d=10, T=50, generations=9, trials=600, fraction=0.3, eta=0.8, seed=0, out_dir=tmp_path)
    for name in ("theory.json", "theory.md", "theory.png"):
        assert (tmp_path / name).stat().st_size > 500
    assert (tmp_path / "theory.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "theory.json").read_text())
    assert saved["statement"] == res["statement"]
    assert "2u" in res["statement"] and "| 9 |" in res["table"]
    s = res["settings"]
    assert set(s) == {"replace", "accumulate", "edit/disjoint", "edit/bernoulli", "edit/confidence"}
    assert len(s["replace"]["mc_mean"]) == 9 and res["bound"] == [2.0] * 9
    assert abs(s["replace"]["mc_mean"][-1] - 9) < 3 * s["replace"]["mc_stderr"][-1]
    dis = s["edit/disjoint"]
    assert dis["verdict"] == "above" and dis["plateau_from"] == 6 and dis["rows_ever_edited"] == 1.0
    assert 2.85 < dis["reference"][-1] < 3.1 and dis["paper_recursion"][-1] == pytest.approx(2.0, abs=0.05)
    statement = res["statement"]
    assert "Theorem 2, disjoint masks, at generation 9): **fails**" in statement
    assert (
        "edit/disjoint" in statement
        and "**no rows left to edit** (no rows left to edit after generation 6" in statement
    )
    assert "**still growing**" in statement.split("edit/bernoulli (")[1].split("\n")[0]
    assert "round 5 requests 6, 5 available" in statement  # the schedule's shortfall, not silently truncated
    assert dis["schedule_shortfall"][0] == {"round": 5, "requested": 6, "available": 5}
    assert dis["edited_share"][-1] == 1.0 and dis["rows_edited_per_round"][-1] == 0
    assert "Primary endpoint: Theorem 2" in statement and "Where the 2u bound starts to fail" in statement
    assert s["edit/confidence"]["reference"] is None
    assert "Theorem 2's scope" in (tmp_path / "theory.md").read_text()


def test_run_theory_statement_follows_numbers() -> None:
    """With nothing edited every edit setting stays at u, and the statement says the bound holds."""
    res = run_theory(d=10, T=50, generations=5, trials=300, fraction=0.0, seed=1, design="fixed", scope=False)
    assert "scope" not in res
    for name in ("edit/disjoint", "edit/bernoulli", "edit/confidence"):
        assert res["settings"][name]["verdict"] == "below"
        assert res["settings"][name]["plateau_from"] == 1
    statement = res["statement"]
    assert statement.count("**no rows left to edit** (no rows left to edit after generation 1") == 3
    assert "at generation 5): **holds**" in statement
    np.testing.assert_allclose(res["settings"]["edit/disjoint"]["reference"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(res["settings"]["replace"]["reference"], [1, 2, 3, 4, 5])
