"""Threshold / beta / top-k sweeps from one scoring pass over a seeded sample of a corpus.

For every setting: the selected share, the expected and the realised change share (the same per-document
random streams as `toedit edit`, so a row equals an edit run on the sampled documents), and how far the
edited sample's hashed n-gram distribution moved from the source's (Jensen-Shannon divergence, distinct-2).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .analysis.ngrams import NgramStats, bucket_entropy
from .calibrate import expected_rates
from .config import EditConfig, IOConfig, RunConfig, ScoreConfig
from .divergence import js_divergence
from .editing import EditStats
from .io import list_shards
from .optional import optional_import
from .pipeline import check_settings, edit_scored_texts
from .prior import Prior, load_prior
from .runs.rundir import RUN_DIRS
from .runs.sample import sample_texts
from .runs.schema import field_spec
from .scoring import score_texts


def _share(counts: np.ndarray) -> np.ndarray:
    return counts / max(counts.sum(), 1)  # an empty corpus stays all-zero


def _ngrams(texts: Sequence[str]) -> NgramStats:
    return NgramStats().add_texts(texts)


def run_sweep(
    inputs: Sequence[str],
    output: str | None = None,
    thresholds: Sequence[float] = (0.9, 0.95, 0.99),
    betas: Sequence[float] = (1.0, 1.5),
    top_ks: Sequence[int] = (8, 64),
    sample_docs: int = 256,
    seed: int = 0,
    score: ScoreConfig | None = None,
    io: IOConfig | None = None,
    run: RunConfig | None = None,
    prior: Prior | None = None,
) -> dict[str, Any]:
    """Score a seeded sample once and evaluate every (threshold, beta, top-k); writes sweep.{json,md,png}."""
    score, io, run = score or ScoreConfig(), io or IOConfig(), run or RunConfig()
    if any(k <= 0 for k in top_ks):
        raise ValueError("sweeps need top-k > 0 (the full-vocabulary rule needs a forward pass per setting)")
    prior = prior or load_prior(run.model, run.device, run.dtype, run.trust_remote_code)
    check_settings(prior, score, EditConfig(top_k=max(top_ks)))
    texts, ids = sample_texts(list_shards(inputs, fence=RUN_DIRS), field_spec(io), sample_docs, seed)
    scores = score_texts(texts, prior, score, k=max(max(top_ks), score.store_k))
    n_scored = sum(s.n_scored for s in scores)
    source = _ngrams(texts)
    rows = []
    for threshold, beta, k in itertools.product(thresholds, betas, top_ks):
        cfg = EditConfig(threshold=threshold, beta=beta, top_k=k, seed=seed)
        expected, selected = expected_rates(scores, threshold, k, beta)
        edited, stats, _ = edit_scored_texts(texts, ids, scores, prior, cfg)
        total = EditStats()
        for st in stats:
            total += st
        after = _ngrams(edited)
        rows.append(
            {
                "threshold": threshold,
                "beta": beta,
                "top_k": k,
                "selected_rate": selected,
                "expected_change_rate": expected,
                "change_rate": total.n_changed / max(n_scored, 1),
                "n_above": total.n_above,
                "n_changed": total.n_changed,
                "n_skipped_unsafe": total.n_skipped_unsafe,
                "ngram_js": js_divergence(_share(source.bucket_counts), _share(after.bucket_counts)),
                "bucket_entropy_delta": bucket_entropy(after) - bucket_entropy(source),
                "distinct2_delta": (after.distinct_2 or 0.0) - (source.distinct_2 or 0.0),
            }
        )
    result = {
        "model": prior.name,
        "sample_texts": len(texts),
        "n_scored": n_scored,
        "seed": seed,
        "rows": rows,
        "table": format_table(rows),
    }
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        (out / "sweep.md").write_text(result["table"] + "\n", encoding="utf-8")
        plot_sweep(rows, out / "sweep.png")
    return result


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| threshold | beta | top-k | selected % | expected change % | realised change % | n-gram JS | distinct-2 delta |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threshold']:g} | {r['beta']:g} | {r['top_k']} | {100 * r['selected_rate']:.2f} | "
            f"{100 * r['expected_change_rate']:.3f} | {100 * r['change_rate']:.3f} | {r['ngram_js']:.2e} | "
            f"{r['distinct2_delta']:+.5f} |"
        )
    return "\n".join(lines)


def plot_sweep(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Realised (solid) and expected (dashed) change % against the threshold, one line per (beta, top-k)."""
    Figure = optional_import("matplotlib.figure", purpose="the sweep plot (sweep.png)").Figure

    fig = Figure(figsize=(7, 4.2), dpi=120)
    ax = fig.subplots()
    for (beta, k), group in itertools.groupby(
        sorted(rows, key=lambda r: (r["beta"], r["top_k"], r["threshold"])),
        key=lambda r: (r["beta"], r["top_k"]),
    ):
        group = list(group)
        x = [r["threshold"] for r in group]
        line = ax.plot(
            x, [100 * r["change_rate"] for r in group], marker="o", label=f"beta {beta:g}, top-{k}"
        )
        ax.plot(x, [100 * r["expected_change_rate"] for r in group], ls="--", color=line[0].get_color())
    ax.set_xlabel("threshold p")
    ax.set_ylabel("tokens really changed (%)")
    ax.set_title("ToEdit change rate: realised (solid) vs expected (dashed)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
