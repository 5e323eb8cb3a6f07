"""Closed forms and the exact covariance oracle for the linear-regression collapse chains.

Closed forms (expectation over the Gaussian design too), with u = sigma^2 d / (T - d - 1):

- Lemma: E tr((X^T X)^-1) = d / (T - d - 1)  (inverse-Wishart mean, T >= d + 2).
- E tr((X^T X)^-2) = d (T - 1) / ((T - d) (T - d - 1) (T - d - 3))  (T > d + 3).
- replace:    E_test(n) = u n.
- accumulate: E_test(n) = u sum_{i<=n} 1/i^2  <= u pi^2 / 6.
- ToEdit, Theorem 2 of the paper: E_test <= 2u when every row is edited at most once (M_i M_j = 0).

Exact oracle for the edit chain with masks that do not depend on the data. With r_n = Y~_n - X w* and
P = X (X^T X)^-1 X^T, one round is r_{n+1} = B_n r_n + M_n E_{n+1}, B_n = I - M_n + M_n P, so the residual
covariance obeys C_1 = sigma^2 I, C_{n+1} = B_n C_n B_n^T + sigma^2 M_n, and, conditional on X and the masks,
E ||w_hat_n - w*||^2 = tr(X^+ C_n X^+T).

The paper's derivation replaces M_n P by M_n (``paper_approximation=True``): then C_{n+1} = C_n + sigma^2 M_n
and disjoint masks give C_n <= 2 sigma^2 I, hence the 2u bound. The dropped term is what the exact
recursion keeps: the edited rows receive the current model's prediction, whose error lies entirely in the
column space of X and is therefore inherited in full by the next fit.
"""

from __future__ import annotations

import numpy as np


def u_value(d: int, T: int, sigma: float = 1.0) -> float:
    """u = sigma^2 d / (T - d - 1): the generation-1 test error averaged over the design."""
    if d + 2 > T:
        raise ValueError(f"need T >= d + 2 (got d={d}, T={T})")
    return float(sigma**2 * d / (T - d - 1))


def expected_trace_inv(d: int, T: int) -> float:
    """E tr((X^T X)^-1) = d / (T - d - 1) for X (T x d) with iid N(0, 1) entries."""
    if d + 2 > T:
        raise ValueError(f"need T >= d + 2 (got d={d}, T={T})")
    return d / (T - d - 1)


def expected_trace_inv_sq(d: int, T: int) -> float:
    """E tr((X^T X)^-2) = d (T - 1) / ((T - d) (T - d - 1) (T - d - 3)), valid for T > d + 3."""
    if d + 3 >= T:
        raise ValueError(f"need T > d + 3 (got d={d}, T={T})")
    return d * (T - 1) / ((T - d) * (T - d - 1) * (T - d - 3))


def conditional_u(X: np.ndarray, sigma: float = 1.0) -> np.ndarray | float:
    """sigma^2 tr((X^T X)^-1): the generation-1 error given the design; X (T, d) or (K, T, d)."""
    X = np.asarray(X, dtype=float)
    inv = np.linalg.inv(np.swapaxes(X, -1, -2) @ X)
    out = sigma**2 * np.trace(inv, axis1=-2, axis2=-1)
    return float(out) if out.ndim == 0 else out


def replace_closed_form(generations: int) -> np.ndarray:
    """E_test(n) / u for n = 1..generations under replace: n."""
    return np.arange(1, generations + 1, dtype=float)


def accumulate_closed_form(generations: int) -> np.ndarray:
    """E_test(n) / u for n = 1..generations under accumulate: sum_{i<=n} 1/i^2."""
    return np.cumsum(1.0 / np.arange(1, generations + 1, dtype=float) ** 2)


ACCUMULATE_LIMIT = float(np.pi**2 / 6)
"""sup_n of `accumulate_closed_form`, in units of u."""

PAPER_BOUND = 2.0
"""The paper's Theorem 2 bound for ToEdit with disjoint masks, in units of u."""


def paper_bound(d: int, T: int, sigma: float = 1.0) -> float:
    """The paper's bound 2u = 2 sigma^2 d / (T - d - 1)."""
    return PAPER_BOUND * u_value(d, T, sigma)


def edit_oracle(
    X: np.ndarray, masks: np.ndarray, sigma: float = 1.0, *, paper_approximation: bool = False
) -> np.ndarray:
    """Exact E ||w_hat_n - w*||^2 for n = 1..R+1 given the design and R rounds of masks.

    X: (T, d) or a batch (K, T, d). masks: bool/0-1 of shape (R, T) (shared) or (K, R, T) (one per design;
    a (K, R, T) batch with a single X is also accepted). Returns (R + 1,) or (K, R + 1), in the units of
    sigma^2 (divide by `u_value` or `conditional_u` for units of u).
    ``paper_approximation`` uses the paper's recursion C_{n+1} = C_n + sigma^2 M_n (M P replaced by M).
    """
    X = np.asarray(X, dtype=float)
    M = np.asarray(masks, dtype=float)
    if M.ndim not in (2, 3) or X.ndim not in (2, 3):
        raise ValueError(
            f"X must be (T, d) or (K, T, d), masks (R, T) or (K, R, T); got {X.shape}, {M.shape}"
        )
    single = X.ndim == 2 and M.ndim == 2
    Xb = X if X.ndim == 3 else X[None]
    Mb = M if M.ndim == 3 else M[None]
    K = max(Xb.shape[0], Mb.shape[0])
    T = Xb.shape[1]
    if Mb.shape[-1] != T or Xb.shape[0] not in (1, K) or Mb.shape[0] not in (1, K):
        raise ValueError(f"incompatible shapes: X {X.shape}, masks {M.shape}")
    R = Mb.shape[1]
    Xp = np.linalg.pinv(Xb)  # (K or 1, d, T)
    G = np.swapaxes(Xp, -1, -2) @ Xp  # X^+T X^+, so tr(X^+ C X^+T) = sum(G * C)
    out = np.empty((K, R + 1))
    if paper_approximation:
        # C_n = sigma^2 (I + sum_{i<n} M_i) is diagonal: error = sigma^2 sum_t (1 + c_t) G_tt.
        g = np.broadcast_to(np.diagonal(G, axis1=-2, axis2=-1), (K, T))
        counts = np.concatenate([np.zeros((Mb.shape[0], 1, T)), np.cumsum(Mb, axis=1)], axis=1)
        out[:] = sigma**2 * np.einsum("kt,knt->kn", g, np.broadcast_to(1.0 + counts, (K, R + 1, T)))
        return out[0] if single else out
    P = Xb @ Xp  # (K or 1, T, T)
    eye = np.eye(T)
    C = np.broadcast_to(sigma**2 * eye, (K, T, T)).copy()
    out[:, 0] = np.einsum("kij,kij->k", np.broadcast_to(G, (K, T, T)), C)
    for n in range(R):
        m = np.broadcast_to(Mb[:, n], (K, T))
        if not m.any():  # nothing edited this round: B = I, the covariance stays
            out[:, n + 1] = out[:, n]
            continue
        # B = I - diag(m) + diag(m) P: rows with m=1 are rows of P, the others rows of I.
        B = eye * (1.0 - m)[:, :, None] + m[:, :, None] * P
        C = B @ C @ np.swapaxes(B, -1, -2)
        C[:, np.arange(T), np.arange(T)] += sigma**2 * m
        out[:, n + 1] = np.einsum("kij,kij->k", np.broadcast_to(G, (K, T, T)), C)
    return out[0] if single else out


def replace_oracle(X: np.ndarray, generations: int, sigma: float = 1.0) -> np.ndarray:
    """Exact replace-chain error given the design: n sigma^2 tr((X^T X)^-1), n = 1..generations."""
    cu = np.asarray(conditional_u(X, sigma))
    return cu[..., None] * replace_closed_form(generations)


def accumulate_oracle(X: np.ndarray, generations: int, sigma: float = 1.0) -> np.ndarray:
    """Exact accumulate-chain error given the design: sigma^2 tr((X^T X)^-1) sum_{i<=n} 1/i^2."""
    cu = np.asarray(conditional_u(X, sigma))
    return cu[..., None] * accumulate_closed_form(generations)
