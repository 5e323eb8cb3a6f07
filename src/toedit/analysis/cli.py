"""CLI verbs of the analysis capability (`toedit analyze`); registered by `toedit.cli`."""

from __future__ import annotations

import argparse
import json


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..cli import _values
    from ..config import IOConfig, ScoreConfig, build
    from .report import analyze, summary_text

    values = _values(args)
    report = analyze(
        args.inputs,
        args.output,
        labels=args.labels,
        model=args.model,
        threshold=args.threshold,
        embeddings=args.embeddings,
        embed_docs=args.embed_docs,
        permutations=args.permutations,
        tsne=args.tsne,
        score_edited=args.score_edited,
        seed=args.seed,
        score=build(ScoreConfig, values),
        io=build(IOConfig, values),
        progress=args.progress,
    )
    print(json.dumps(report["findings"], indent=2) if args.json else summary_text(report))
    print(f"\nreport: {args.output}/report.html  numbers: {args.output}/report.json")
    return 0


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Add this capability's verbs to the `toedit` sub-command parser."""
    from ..cli import add_config_flags
    from ..config import SECTIONS

    help_text = (
        "compare corpora or run directories: PPL, token probabilities, n-grams, embeddings -> report.html"
    )
    p = sub.add_parser("analyze", help=help_text, description=help_text)
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT_OR_RUN_DIR", help="corpora (scored once) or run directories"
    )
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR")
    p.add_argument(
        "--labels", help="comma-separated, one per input; the first is the reference (default: names)"
    )
    p.add_argument(
        "--model", default="default", help="prior for corpora that are not run dirs (default: default)"
    )
    p.add_argument("--threshold", type=float, default=0.99, help="editable = p > this (default: 0.99)")
    p.add_argument(
        "--embeddings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="MiniLM embedding shift (default: on)",
    )
    p.add_argument(
        "--embed-docs", type=int, default=500, help="documents embedded per corpus, seeded (default: 500)"
    )
    p.add_argument("--permutations", type=int, default=200, help="MMD permutation test (default: 200)")
    p.add_argument(
        "--tsne", action=argparse.BooleanOptionalAction, default=True, help="t-SNE map (default: on)"
    )
    p.add_argument(
        "--score-edited",
        action="store_true",
        help="edit runs: also score the edited texts (their PPL) instead of reusing the source's scores",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    for section in ("score", "io"):
        add_config_flags(p, SECTIONS[section], f"{section} options (corpora scored here)")
    p.set_defaults(func=cmd_analyze)
