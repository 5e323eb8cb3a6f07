"""Closed forms and the exact covariance oracle of the edit chain."""

from __future__ import annotations

import numpy as np
import pytest

from toedit.theory import (
    ACCUMULATE_LIMIT,
    accumulate_closed_form,
    accumulate_oracle,
    bernoulli_masks,
    conditional_u,
    disjoint_masks,
    edit_oracle,
    expected_trace_inv,
    expected_trace_inv_sq,
    paper_bound,
    replace_closed_form,
    replace_oracle,
    u_value,
)


def _traces(d: int, T: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).standard_normal((k, T, d))
    inv = np.linalg.inv(np.swapaxes(X, 1, 2) @ X)
    return np.trace(inv, axis1=1, axis2=2), np.trace(inv @ inv, axis1=1, axis2=2)


def _z(samples: np.ndarray, value: float) -> float:
    return float((samples.mean() - value) / (samples.std(ddof=1) / np.sqrt(samples.size)))


@pytest.mark.parametrize(("d", "T"), [(10, 50), (5, 12), (3, 20)])
def test_lemma_trace_inverse(d: int, T: int) -> None:
    tr1, _ = _traces(d, T, 40_000, seed=d * 100 + T)
    assert abs(_z(tr1, expected_trace_inv(d, T))) < 3
    if T - d <= 10:  # the test has power: the off-by-one d/(T-d) is rejected
        assert abs(_z(tr1, d / (T - d))) > 10


@pytest.mark.parametrize(("d", "T"), [(10, 50), (5, 30), (3, 20)])
def test_trace_inverse_squared(d: int, T: int) -> None:
    _, tr2 = _traces(d, T, 40_000, seed=7 + d * 100 + T)
    assert abs(_z(tr2, expected_trace_inv_sq(d, T))) < 3
    # E tr(A^-2) >= E tr(A^-1)^2 / d by Cauchy-Schwarz and Jensen
    assert expected_trace_inv_sq(d, T) >= expected_trace_inv(d, T) ** 2 / d
    assert abs(_z(tr2, expected_trace_inv(d, T) ** 2 / d)) > 5


def test_closed_forms() -> None:
    assert u_value(10, 50, 1.0) == pytest.approx(10 / 39)
    assert u_value(10, 50, 2.0) == pytest.approx(40 / 39)
    assert paper_bound(10, 50, 1.0) == pytest.approx(20 / 39)
    np.testing.assert_allclose(replace_closed_form(4), [1, 2, 3, 4])
    np.testing.assert_allclose(accumulate_closed_form(3), [1, 1.25, 1.25 + 1 / 9])
    acc = accumulate_closed_form(10_000)
    assert acc[-1] < ACCUMULATE_LIMIT
    assert acc[-1] == pytest.approx(ACCUMULATE_LIMIT, abs=2e-4)
    with pytest.raises(ValueError):
        u_value(10, 11)
    with pytest.raises(ValueError):
        expected_trace_inv_sq(10, 13)


@pytest.fixture(scope="module")
def design() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((50, 10))


def test_oracle_all_rows_is_replace(design: np.ndarray) -> None:
    N, T = 9, design.shape[0]
    sigma = 1.7
    exact = edit_oracle(design, np.ones((N - 1, T), bool), sigma)
    np.testing.assert_allclose(exact, replace_oracle(design, N, sigma), rtol=1e-9)
    np.testing.assert_allclose(exact / conditional_u(design, sigma), np.arange(1, N + 1), rtol=1e-9)


def test_oracle_no_rows_stays(design: np.ndarray) -> None:
    exact = edit_oracle(design, np.zeros((7, design.shape[0]), bool), 0.5)
    np.testing.assert_allclose(exact, conditional_u(design, 0.5), rtol=1e-12)
    assert accumulate_oracle(design, 3, 0.5)[1] == pytest.approx(1.25 * conditional_u(design, 0.5))


def test_oracle_batch_matches_single(design: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 50, 10))
    masks = bernoulli_masks(50, 6, 0.3, 0.8, rng, trials=4)
    batch = edit_oracle(X, masks)
    for k in range(4):
        np.testing.assert_allclose(batch[k], edit_oracle(X[k], masks[k]), rtol=1e-10)
    shared = disjoint_masks(50, 6, 0.3, 0.8, rng)
    np.testing.assert_allclose(edit_oracle(X, shared)[2], edit_oracle(X[2], shared), rtol=1e-10)


def test_disjoint_exceeds_paper_bound(design: np.ndarray) -> None:
    """Disjoint masks (M_i M_j = 0): the paper's recursion stays <= 2u_X, the exact one plateaus near 3u_X."""
    masks = disjoint_masks(50, 11, 0.3, 0.8, np.random.default_rng(0))
    assert (masks.sum(axis=0) == 1).all()  # every row edited exactly once (15+12+10+8+5 rows)
    cu = conditional_u(design)
    paper = edit_oracle(design, masks, paper_approximation=True) / cu
    exact = edit_oracle(design, masks) / cu
    assert paper.max() <= 2 + 1e-12
    assert paper[-1] == pytest.approx(2.0, abs=0.35)
    assert 2.8 < exact[-1] < 3.2
    np.testing.assert_allclose(exact[5:], exact[-1], rtol=1e-12)  # no rows left after round 5
    assert (np.diff(exact[:6]) > 0).all()


def test_disjoint_plateau_averaged_over_designs() -> None:
    """Over random designs and masks, 30% of rows x0.8 per round plateaus at about 2.98u (not <= 2u)."""
    rng = np.random.default_rng(1)
    K, d, T = 600, 10, 50
    X = rng.standard_normal((K, T, d))
    masks = disjoint_masks(T, 6, 0.3, 0.8, rng, trials=K)
    ratio = edit_oracle(X, masks)[:, -1] / u_value(d, T)
    assert abs(_z(ratio, 2.983)) < 3
    assert ratio.mean() > 2.9
