"""CLI verb of the analysis capability (`toedit analyze`); registered by `toedit.cli`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..config import IOConfig, ScoreConfig
from ..options import Verb, opt, section


@dataclass
class AnalyzeOptions:
    """`toedit analyze`: compare corpora or run directories: PPL, token probabilities, n-grams, embeddings
    -> report.html"""

    inputs: list[str] = opt(
        [], "corpora (scored once) or run directories", positional=True, nargs="*", required=True
    )
    output: str | None = opt(None, "report directory", flags=("-o",), required=True)
    labels: str | None = opt(
        None, "comma-separated, one per input; the first is the reference (default: names)"
    )
    model: str = opt("default", "prior for corpora that are not run dirs")
    threshold: float = opt(0.99, "editable = p > this")
    embeddings: bool = opt(True, "MiniLM embedding shift")
    embed_docs: int = opt(500, "documents embedded per corpus, seeded")
    permutations: int = opt(200, "MMD permutation test")
    tsne: bool = opt(True, "t-SNE map")
    score_edited: bool = opt(
        False, "edit runs: also score the edited texts (their PPL) instead of reusing the source's scores"
    )
    seed: int = opt(0, "sampling seed (embedded documents, permutations)")
    progress: bool = opt(True, "show progress bars")
    json: bool = opt(False, "print the findings as JSON", cli_only=True)
    score: ScoreConfig = section(ScoreConfig, "how corpora are scored here")
    io: IOConfig = section(IOConfig, "which fields are read")


def _show(report, options) -> int:
    from .report import summary_text

    print(json.dumps(report["findings"], indent=2) if options.json else summary_text(report))
    print(f"\nreport: {options.output}/report.html  numbers: {options.output}/report.json")
    return 0


VERBS = (Verb("analyze", AnalyzeOptions, "toedit.analysis.report:analyze", _show),)
