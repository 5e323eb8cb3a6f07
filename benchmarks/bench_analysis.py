"""Benchmark: hashed n-gram featurisation (toedit.analysis.ngrams) vs the data-selection package.

Corpus: the values of the stdlib's ``pydoc_data.topics.topics`` (real English documentation, some
non-ASCII), repeated to about ``--mb`` MB.  Prints

    ngram_mb_per_s: X            ours, one process, warm caches (the corpus repeats)
    ngram_workers2_mb_per_s: X2  ours, featurize(workers=2)
    ngram_cold_mb_per_s: Xc      ours, fresh featurizer, every n-gram new to the caches
    dsir_pkg_mb_per_s: Y         data_selection.hashed_ngram_dsir.get_ngram_counts, one process
    ngram/dsir_pkg: R            X / Y
    features_identical: True/False

The package is timed on a prefix of the documents (``--pkg-mb``, it is slow) and its features are
compared with ours on that prefix and on every distinct document.  Run:
``.venv/bin/python benchmarks/bench_analysis.py``.

``--run RUN_DIR [RUN_DIR ...]`` instead times the analysis of finished runs (``collect_run``: PPL, token
probabilities, n-grams and the embedding sample from scores/ and the texts, no forward pass) against the
time their scoring took (the ``seconds`` of their done/ markers), and prints

    analysis_seconds: A, scoring_seconds: S, input_mb: M, analysis_mb_per_s: M/A, scoring/analysis: S/A
"""

from __future__ import annotations

import argparse
import time
from pydoc_data.topics import topics

import numpy as np

from toedit.analysis.ngrams import HashedNgramFeaturizer, detect_nltk_engine


def corpus(mb: float) -> tuple[list[str], list[str]]:
    distinct = [topics[k] for k in sorted(topics)]
    size = sum(len(d.encode("utf-8")) for d in distinct)
    reps = max(1, round(mb * 1e6 / size))
    return distinct, distinct * reps


def mbytes(texts: list[str]) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_runs(run_dirs: list[str]) -> None:
    import json
    from pathlib import Path

    from toedit.analysis.corpus import collect_run

    for run in run_dirs:
        root = Path(run)
        manifest = json.loads((root / "manifest.json").read_text())
        scoring = sum(json.loads(m.read_text()).get("seconds", 0.0) for m in (root / "done").glob("*.json"))
        size_mb = sum(e.get("size", 0) for e in manifest["inputs"]) / 1e6
        t = time.perf_counter()
        stats, _ = collect_run(root.name, root)
        took = time.perf_counter() - t
        print(
            f"{run}: {stats.num_docs} docs, {stats.n_scored:,} scored tokens; analysis_seconds: {took:.2f}, "
            f"scoring_seconds: {scoring:.1f}, input_mb: {size_mb:.2f}, analysis_mb_per_s: {size_mb / took:.2f}, "
            f"scoring/analysis: {scoring / took:.0f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20.0, help="corpus size in MB (default 20)")
    ap.add_argument("--pkg-mb", type=float, default=4.0, help="MB given to the data-selection featurizer")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--engine",
        choices=["nltk", "re", "regex"],
        default="nltk",
        help="nltk: the one the installed nltk uses",
    )
    ap.add_argument("--run", nargs="+", metavar="RUN_DIR", help="time the analysis of these finished runs")
    args = ap.parse_args()
    if args.run:
        bench_runs(args.run)
        return

    distinct, docs = corpus(args.mb)
    total_mb = mbytes(docs)
    # by default tokenise like the installed nltk, so that the features can be compared with the package's
    engine = (detect_nltk_engine() or "re") if args.engine == "nltk" else args.engine
    print(f"corpus: {len(docs)} docs, {total_mb:.1f} MB ({len(distinct)} distinct); engine: {engine}")

    f = HashedNgramFeaturizer(engine=engine)
    f.featurize(distinct)  # warm the caches once; the timed runs see the repeated corpus
    t1 = best_time(lambda: f.featurize(docs), args.repeats)
    ours_mb_s = total_mb / t1
    tw = best_time(lambda: f.featurize(docs, workers=args.workers), args.repeats)
    cold = best_time(lambda: HashedNgramFeaturizer(engine=engine).featurize(distinct), args.repeats)
    cold_mb_s = mbytes(distinct) / cold
    print(f"ngram_mb_per_s: {ours_mb_s:.2f}")
    print(f"ngram_workers{args.workers}_mb_per_s: {total_mb / tw:.2f}")
    print(f"ngram_cold_mb_per_s: {cold_mb_s:.2f}")

    try:
        from data_selection.hashed_ngram_dsir import get_ngram_counts
    except ImportError:
        print("dsir_pkg_mb_per_s: nan  (data-selection not installed)")
        print("ngram/dsir_pkg: nan")
        ours = f.featurize(distinct).toarray()
        again = np.stack([f.features(d) for d in distinct])
        print(f"features_identical: {bool((ours == again).all())}  (self-consistency only)")
        return

    sub: list[str] = []
    for d in docs:
        if mbytes(sub) >= args.pkg_mb:
            break
        sub.append(d)
    sub_mb = mbytes(sub)
    t = time.perf_counter()
    theirs = np.stack([get_ngram_counts(d) for d in sub])
    pkg_mb_s = sub_mb / (time.perf_counter() - t)
    print(f"dsir_pkg_mb_per_s: {pkg_mb_s:.2f}  (on {len(sub)} docs, {sub_mb:.1f} MB)")
    print(f"ngram/dsir_pkg: {ours_mb_s / pkg_mb_s:.1f}")
    identical = bool((f.featurize(sub).toarray() == theirs).all())
    identical &= all((f.features(d) == get_ngram_counts(d)).all() for d in distinct)
    one, two = f.featurize(docs), f.featurize(docs, workers=args.workers)  # the parallel path too
    identical &= (one != two).nnz == 0
    print(f"features_identical: {identical}")


if __name__ == "__main__":
    main()
