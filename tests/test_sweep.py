"""Sweeps score once; every row equals a separate edit run with the same settings."""

from __future__ import annotations

import json

from tests.conftest import corpus_texts
from toedit.config import EditConfig, RunConfig
from toedit.runs import run_edit
from toedit.sweep import run_sweep


def test_sweep_rows_match_separate_runs(tmp_path, tiny_prior):
    src = tmp_path / "in.jsonl"
    texts = [t[:400] for t in corpus_texts(15)]
    src.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8"
    )
    result = run_sweep(
        [str(src)],
        str(tmp_path / "sweep"),
        thresholds=(0.2, 0.5),
        betas=(1.0, 1.5),
        top_ks=(4, 8),
        seed=3,
        prior=tiny_prior,
    )
    assert len(result["rows"]) == 8 and result["sample_texts"] == 15
    assert {"sweep.json", "sweep.md", "sweep.png"} <= {p.name for p in (tmp_path / "sweep").iterdir()}
    for row in result["rows"][::3]:
        cfg = EditConfig(threshold=row["threshold"], beta=row["beta"], top_k=row["top_k"], seed=3)
        summary = run_edit(
            [str(src)],
            str(tmp_path / f"r{row['threshold']}-{row['beta']}-{row['top_k']}"),
            cfg,
            run=RunConfig(progress=False),
            prior=tiny_prior,
        )
        assert summary.stats["n_changed"] == row["n_changed"]
        assert summary.stats["n_above"] == row["n_above"]
    loose = [r for r in result["rows"] if r["threshold"] == 0.2 and r["beta"] == 1.5 and r["top_k"] == 8][0]
    tight = [r for r in result["rows"] if r["threshold"] == 0.5 and r["beta"] == 1.5 and r["top_k"] == 8][0]
    assert loose["selected_rate"] > tight["selected_rate"] and loose["ngram_js"] > 0
