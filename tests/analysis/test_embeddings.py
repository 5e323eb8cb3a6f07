"""Embedding-shift math on hand-made samples, plus the real MiniLM on a handful of sentences."""

from __future__ import annotations

import numpy as np
import pytest

from toedit.analysis.embeddings import (
    compare_embeddings,
    embed_documents,
    frechet_distance,
    mmd_test,
    project_2d,
)


def gauss(n, d=8, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_frechet_closed_form():
    a = gauss(400, seed=1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # same covariance, mean moved by 1 in every coordinate: ||mu||^2 = d (exactly for a shifted copy)
    assert frechet_distance(a, a + 1.0) == pytest.approx(8.0, rel=1e-9)
    # b = 2a: ||mu - 2 mu||^2 + tr(S + 4S - 2 (4 S^2)^(1/2)) = ||mu||^2 + tr(S)
    mu, cov = a.mean(0), np.cov(a, rowvar=False)
    assert frechet_distance(a, 2 * a) == pytest.approx(mu @ mu + np.trace(cov), rel=1e-9)


def test_frechet_singular_covariances():
    # fewer points than dimensions: singular covariances, still finite, real and >= 0
    a, b = gauss(5, d=50, seed=2), gauss(6, d=50, seed=3)
    f = frechet_distance(a, b)
    assert np.isfinite(f) and f >= 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


def test_mmd_identical_vs_shifted():
    a, b = gauss(60, seed=4), gauss(60, seed=5)
    same = mmd_test(a, b, permutations=199, seed=0)
    assert same["p_value"] > 0.05
    shifted = mmd_test(a, gauss(60, shift=0.8, seed=6), permutations=199, seed=0)
    assert shifted["p_value"] <= 1 / 200 + 1e-12 and shifted["mmd2"] > same["mmd2"]
    # identical samples: the observed statistic is typical of its permutations
    ident = mmd_test(a, a.copy(), permutations=99, seed=0)
    assert ident["p_value"] > 0.5
    # seeded
    assert mmd_test(a, b, permutations=50, seed=3) == mmd_test(a, b, permutations=50, seed=3)


def test_embed_documents_chunks_and_normalises():
    calls = []

    def fake(texts):
        calls.append(list(texts))
        return np.array([[len(t.split()), 1.0] for t in texts])

    long = " ".join(["w"] * 700)
    out = embed_documents(["a b c", long, ""], fake, chunk_words=150, max_chunks=4)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(np.linalg.norm(out[:2], axis=1), 1.0)
    assert len(calls[0]) == 1 + 4 + 1  # the long document: its first 4 chunks of 150 words
    np.testing.assert_allclose(out[1], np.array([150, 1]) / np.hypot(150, 1))


def test_projection_and_compare():
    x = np.vstack([gauss(20, seed=7), gauss(20, shift=5, seed=8)])
    for method in ("pca", "tsne"):
        xy = project_2d(x, method, seed=0)
        assert xy.shape == (40, 2) and np.isfinite(xy).all()
    # the two clusters separate along the first principal axis
    xy = project_2d(x, "pca")
    assert abs(xy[:20, 0].mean() - xy[20:, 0].mean()) > 5
    c = compare_embeddings(x[:20], x[20:], permutations=50)
    assert c["p_value"] < 0.05 and c["frechet"] > 10
    with pytest.raises(ValueError):
        project_2d(x, "umap")


@pytest.mark.integration
def test_minilm_on_a_few_sentences():
    from toedit.analysis.embeddings import minilm_embedder

    embed = minilm_embedder()
    v = embed_documents(
        ["The cat sat on the mat.", "A cat was sitting on a mat.", "Quarterly revenue rose by 4 percent."],
        embed,
    )
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3  # paraphrases are closer than unrelated text
