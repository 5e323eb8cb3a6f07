"""Monte Carlo of iterated least squares on self-generated labels: replace, accumulate and ToEdit chains.

Setting (Zhu et al. 2025, after Dohmatob et al. 2024 and Gerstgrasser et al. 2024): rows x ~ N(0, I_d),
y = x.w* + eps with eps ~ N(0, sigma^2), a design X of T rows (T >= d + 2), OLS w_hat = X^+ Y.
The error of generation n is ||w_hat_n - w*||^2; its expectation is E_test(n).

Generations are numbered from 1: generation 1 is fitted on the human labels Y = X w* + E_1. Round n
(n = 1 .. N - 1) produces the labels of generation n + 1 from the model of generation n:

- replace:    Y_{n+1} = X w_hat_n + E_{n+1}; generation n + 1 is fitted on Y_{n+1} alone.
- accumulate: same fresh labels, but generation n + 1 is fitted on all of Y_1 .. Y_{n+1} with the design
  stacked n + 1 times. OLS on a repeated design is OLS on the mean label vector, which is what is computed.
- edit:       Y~_{n+1} = M_n (X w_hat_n + E_{n+1}) + (I - M_n) Y~_n, Y~_1 = Y; M_n is a 0/1 diagonal mask of
  the rows edited in round n, chosen by a mask policy (see `POLICIES`).

The fraction of rows edited in round n is ``fraction * eta ** (n - 1)``.

Design: ``"fixed"`` draws one X (from the seed) shared by every trial, so averages are conditional on X;
``"random"`` draws a fresh X for every trial, so averages are over X too (what the closed forms describe).

Everything is vectorised over trials; all randomness comes from `numpy.random.Generator` streams spawned
from one seed, with separate streams for the design, w*, the masks and the label noise, so settings run with
the same seed share X, w* and the noise draws (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Design = Literal["fixed", "random"]
POLICIES = ("disjoint", "bernoulli", "confidence")
"""Mask policies of the edit chain.

- ``disjoint``: each row is edited at most once ever. Round n edits ``round(fraction * eta**(n-1) * T)`` rows
  drawn uniformly among rows never edited before (fewer once they run out, then none).
- ``bernoulli``: every round each row is edited independently with probability ``fraction * eta**(n-1)``
  (rows may be edited again in later rounds).
- ``confidence``: round n edits the ``round(fraction * eta**(n-1) * T)`` rows with the smallest absolute
  residual ``|Y~_n - X w_hat_n|`` (where the current model agrees best with its labels); data dependent,
  so there is no covariance oracle for it.
"""
SETTINGS = ("replace", "accumulate", *(f"edit/{p}" for p in POLICIES))

_STREAMS = ("design", "w_star", "masks", "noise")


def _check(d: int, T: int, generations: int, trials: int) -> None:
    if d < 1 or d + 2 > T:
        raise ValueError(f"need d >= 1 and T >= d + 2 (got d={d}, T={T})")
    if generations < 1:
        raise ValueError(f"generations must be >= 1 (got {generations})")
    if trials < 1:
        raise ValueError(f"trials must be >= 1 (got {trials})")


def _streams(seed: int | np.random.SeedSequence) -> dict[str, np.random.Generator]:
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return {
        name: np.random.default_rng(child)
        for name, child in zip(_STREAMS, ss.spawn(len(_STREAMS)), strict=True)
    }


def fraction_schedule(fraction: float, eta: float, rounds: int) -> np.ndarray:
    """Fraction of rows edited in rounds 1..rounds: ``fraction * eta ** (n - 1)``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1] (got {fraction})")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1] (got {eta})")
    return fraction * eta ** np.arange(rounds, dtype=float)


def edit_counts(T: int, fraction: float, eta: float, rounds: int) -> np.ndarray:
    """Rows edited per round by the count-based policies: ``round(fraction * eta**(n-1) * T)``."""
    return np.clip(np.rint(fraction_schedule(fraction, eta, rounds) * T), 0, T).astype(int)


def draw_design(T: int, d: int, rng: np.random.Generator, trials: int | None = None) -> np.ndarray:
    """Gaussian design with N(0, 1) entries: (T, d), or (trials, T, d) when ``trials`` is given."""
    shape = (T, d) if trials is None else (trials, T, d)
    return rng.standard_normal(shape)


def disjoint_masks(
    T: int, rounds: int, fraction: float, eta: float, rng: np.random.Generator, trials: int | None = None
) -> np.ndarray:
    """Disjoint masks, bool (rounds, T) or (trials, rounds, T): every row is True in at most one round.

    Rows are taken in a uniformly random order; round n takes the next ``edit_counts[n-1]`` of them,
    fewer (then none) once all T rows have been edited (`schedule_shortfall` reports by how much).
    """
    return disjoint_masks_from_counts(T, edit_counts(T, fraction, eta, rounds), rng, trials)


def disjoint_masks_from_counts(
    T: int, counts: np.ndarray | list[int], rng: np.random.Generator, trials: int | None = None
) -> np.ndarray:
    """Disjoint masks for a schedule of rows per round (``counts``), truncated where rows run out."""
    counts = np.asarray(counts, dtype=int)
    rounds = len(counts)
    n = 1 if trials is None else trials
    bounds = np.minimum(np.cumsum(counts), T)  # rows edited after round n
    ranks = np.argsort(rng.random((n, T)), axis=1).argsort(axis=1)  # uniform random position of each row
    which = np.searchsorted(bounds, ranks, side="right")  # round index (0-based) of each row; rounds = never
    masks = which[:, None, :] == np.arange(rounds)[None, :, None]
    return masks[0] if trials is None else masks


def schedule_shortfall(T: int, counts: np.ndarray | list[int]) -> list[dict[str, int]]:
    """Rounds in which disjoint masks cannot follow the schedule: rows requested vs rows still available."""
    out, left = [], T
    for n, k in enumerate(np.asarray(counts, dtype=int), start=1):
        if k > left:
            out.append({"round": n, "requested": int(k), "available": int(left)})
        left -= min(int(k), left)
    return out


def bernoulli_masks(
    T: int, rounds: int, fraction: float, eta: float, rng: np.random.Generator, trials: int | None = None
) -> np.ndarray:
    """Independent masks, bool (rounds, T) or (trials, rounds, T): row edited in round n w.p. fraction*eta**(n-1)."""
    p = fraction_schedule(fraction, eta, rounds)
    shape = (rounds, T) if trials is None else (trials, rounds, T)
    return rng.random(shape) < p[:, None]


def make_masks(
    policy: str,
    T: int,
    rounds: int,
    fraction: float,
    eta: float,
    rng: np.random.Generator,
    trials: int | None = None,
) -> np.ndarray:
    """Deterministic-given-the-seed masks for ``disjoint`` or ``bernoulli`` (``confidence`` depends on the data)."""
    if policy == "disjoint":
        return disjoint_masks(T, rounds, fraction, eta, rng, trials)
    if policy == "bernoulli":
        return bernoulli_masks(T, rounds, fraction, eta, rng, trials)
    raise ValueError(f"no data-independent masks for policy {policy!r} (use one of 'disjoint', 'bernoulli')")


@dataclass
class ChainResult:
    """Squared parameter errors of one chain: ``errors[k, n-1] = ||w_hat_n - w*||^2`` in trial k."""

    setting: str
    errors: np.ndarray
    design: str
    X: np.ndarray
    masks: np.ndarray | None = None
    edited: np.ndarray | None = field(default=None, repr=False)
    rows_per_round: np.ndarray | None = None  # rows edited in round n, mean over trials (edit chains)
    edited_share: np.ndarray | None = None  # share of rows edited at least once by generation n (mean)

    @property
    def trials(self) -> int:
        return int(self.errors.shape[0])

    @property
    def generations(self) -> int:
        return int(self.errors.shape[1])

    @property
    def mean(self) -> np.ndarray:
        return self.errors.mean(axis=0)

    @property
    def stderr(self) -> np.ndarray:
        if self.trials < 2:
            return np.full(self.generations, np.nan)
        return self.errors.std(axis=0, ddof=1) / np.sqrt(self.trials)


def summarize(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-generation mean and standard error of a (trials, generations) array."""
    errors = np.asarray(errors, dtype=float)
    k = errors.shape[0]
    se = errors.std(axis=0, ddof=1) / np.sqrt(k) if k > 1 else np.full(errors.shape[1], np.nan)
    return errors.mean(axis=0), se


class _Model:
    """X, X^+ and w* for a batch of trials (X shared or one per trial)."""

    def __init__(self, X: np.ndarray, w_star: np.ndarray):
        self.X = X
        self.Xp = np.linalg.pinv(X)  # (d, T) or (trials, d, T)
        self.w_star = w_star

    def fit(self, Y: np.ndarray) -> np.ndarray:  # (trials, T) -> (trials, d)
        if self.Xp.ndim == 2:
            return Y @ self.Xp.T
        return np.einsum("kdt,kt->kd", self.Xp, Y)

    def predict(self, w: np.ndarray) -> np.ndarray:  # (trials, d) or (d,) -> (trials, T)
        if self.X.ndim == 2:
            return w @ self.X.T
        return np.einsum("ktd,kd->kt", self.X, np.broadcast_to(w, (self.X.shape[0], self.X.shape[2])))

    def error(self, w: np.ndarray) -> np.ndarray:
        return ((w - self.w_star) ** 2).sum(axis=-1)


def _setup(
    d: int,
    T: int,
    trials: int,
    design: Design,
    seed: int | np.random.SeedSequence,
    X: np.ndarray | None,
    w_star: np.ndarray | None,
) -> tuple[_Model, dict[str, np.random.Generator]]:
    if design not in ("fixed", "random"):
        raise ValueError(f"design must be 'fixed' or 'random' (got {design!r})")
    rngs = _streams(seed)
    if X is None:
        X = draw_design(T, d, rngs["design"], None if design == "fixed" else trials)
    X = np.asarray(X, dtype=float)
    expected = (T, d) if design == "fixed" else (trials, T, d)
    if X.shape != expected:
        raise ValueError(f"X has shape {X.shape}, expected {expected} for design={design!r}")
    if w_star is None:
        w_star = rngs["w_star"].standard_normal(d)
    return _Model(X, np.asarray(w_star, dtype=float)), rngs


def _human_labels(m: _Model, trials: int, T: int, sigma: float, noise: np.random.Generator) -> np.ndarray:
    return np.broadcast_to(m.predict(m.w_star), (trials, T)) + sigma * noise.standard_normal((trials, T))


def replace_chain(
    *,
    d: int = 10,
    T: int = 50,
    sigma: float = 1.0,
    generations: int = 12,
    trials: int = 2000,
    design: Design = "fixed",
    seed: int | np.random.SeedSequence = 0,
    X: np.ndarray | None = None,
    w_star: np.ndarray | None = None,
) -> ChainResult:
    """Each generation is fitted only on labels produced by the previous model (plus fresh noise)."""
    _check(d, T, generations, trials)
    m, rngs = _setup(d, T, trials, design, seed, X, w_star)
    errors = np.empty((trials, generations))
    Y = _human_labels(m, trials, T, sigma, rngs["noise"])
    for n in range(generations):
        w = m.fit(Y)
        errors[:, n] = m.error(w)
        if n + 1 < generations:
            Y = m.predict(w) + sigma * rngs["noise"].standard_normal((trials, T))
    return ChainResult("replace", errors, design, m.X)


def accumulate_chain(
    *,
    d: int = 10,
    T: int = 50,
    sigma: float = 1.0,
    generations: int = 12,
    trials: int = 2000,
    design: Design = "fixed",
    seed: int | np.random.SeedSequence = 0,
    X: np.ndarray | None = None,
    w_star: np.ndarray | None = None,
) -> ChainResult:
    """Each generation is fitted on every generation's labels so far, stacked under the repeated design.

    OLS on ``[X; X; ...; X]`` (n copies) with labels ``[Y_1; ...; Y_n]`` is ``X^+ (Y_1 + ... + Y_n) / n``.
    """
    _check(d, T, generations, trials)
    m, rngs = _setup(d, T, trials, design, seed, X, w_star)
    errors = np.empty((trials, generations))
    Y = _human_labels(m, trials, T, sigma, rngs["noise"])
    total = np.array(Y, copy=True)
    for n in range(generations):
        w = m.fit(total / (n + 1))
        errors[:, n] = m.error(w)
        if n + 1 < generations:
            total += m.predict(w) + sigma * rngs["noise"].standard_normal((trials, T))
    return ChainResult("accumulate", errors, design, m.X)


def edit_chain(
    policy: str = "disjoint",
    *,
    d: int = 10,
    T: int = 50,
    sigma: float = 1.0,
    generations: int = 12,
    trials: int = 2000,
    fraction: float = 0.3,
    eta: float = 0.8,
    design: Design = "fixed",
    seed: int | np.random.SeedSequence = 0,
    X: np.ndarray | None = None,
    w_star: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    shared_masks: bool | None = None,
) -> ChainResult:
    """ToEdit chain: round n overwrites the masked rows with the model's labels plus fresh noise.

    ``masks`` (bool, (generations-1, T) shared by all trials, or (trials, generations-1, T)) overrides the
    policy. Otherwise ``disjoint``/``bernoulli`` masks are drawn from the seed: once for all trials when
    ``shared_masks`` (default: ``design == "fixed"``, so the covariance oracle applies exactly), else once
    per trial. ``confidence`` picks rows from the current residuals in every trial.
    The result's ``edited`` counts how many times each row was edited, per trial (trials, T).
    """
    _check(d, T, generations, trials)
    if masks is None and policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
    m, rngs = _setup(d, T, trials, design, seed, X, w_star)
    rounds = generations - 1
    if masks is None and policy != "confidence":
        shared = (design == "fixed") if shared_masks is None else shared_masks
        masks = make_masks(policy, T, rounds, fraction, eta, rngs["masks"], None if shared else trials)
    if masks is not None:
        masks = np.asarray(masks, dtype=bool)
        if masks.shape not in ((rounds, T), (trials, rounds, T)):
            raise ValueError(
                f"masks have shape {masks.shape}, expected ({rounds}, {T}) or ({trials}, {rounds}, {T})"
            )
    counts = edit_counts(T, fraction, eta, rounds)
    errors = np.empty((trials, generations))
    edited = np.zeros((trials, T), dtype=np.int32)
    per_round = np.zeros(rounds)
    share = np.zeros(generations)
    Y = _human_labels(m, trials, T, sigma, rngs["noise"])
    for n in range(generations):
        w = m.fit(Y)
        errors[:, n] = m.error(w)
        share[n] = float((edited > 0).mean())
        if n + 1 == generations:
            break
        pred = m.predict(w)
        if masks is not None:
            M = np.broadcast_to(masks[n] if masks.ndim == 2 else masks[:, n], (trials, T))
        else:  # confidence: the rows where the current model fits its own labels best
            M = np.zeros((trials, T), dtype=bool)
            k = int(counts[n])
            if k > 0:
                rows = np.argpartition(np.abs(Y - pred), k - 1, axis=1)[:, :k]
                np.put_along_axis(M, rows, True, axis=1)
        fresh = pred + sigma * rngs["noise"].standard_normal((trials, T))
        Y = np.where(M, fresh, Y)
        edited += M
        per_round[n] = float(M.sum(axis=1).mean())
    label = "edit/custom" if policy not in POLICIES else f"edit/{policy}"
    return ChainResult(label, errors, design, m.X, masks, edited, per_round, share)


def run_chain(setting: str, **kwargs) -> ChainResult:
    """Dispatch on a setting name from `SETTINGS` (``replace``, ``accumulate``, ``edit/<policy>``)."""
    if setting == "replace":
        kwargs.pop("fraction", None), kwargs.pop("eta", None)
        return replace_chain(**kwargs)
    if setting == "accumulate":
        kwargs.pop("fraction", None), kwargs.pop("eta", None)
        return accumulate_chain(**kwargs)
    if setting.startswith("edit/"):
        return edit_chain(setting.removeprefix("edit/"), **kwargs)
    raise ValueError(f"unknown setting {setting!r}; expected one of {SETTINGS}")
