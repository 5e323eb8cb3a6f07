"""One corpus's statistics, read from a run directory (scores/ + texts) without a forward pass; mergeable.

A shard's statistics are counts, fixed-bin histograms, per-document PPL values and a bounded embedding
sample, so the statistics of many shards (computed anywhere, e.g. one per cluster task) merge exactly into
those of the whole corpus: ``sum(shard_stats(...) for each shard)``.

The embedding sample is a bottom-k sample: each document gets the key sha256(seed, shard, line) and the
`sample_size` smallest keys are kept. The merge of two bottom-k samples is the bottom-k of the union, so the
sample does not depend on how the corpus was sharded.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..io import BadRecord, Shard, extract_texts, read_shard
from ..probs import PROB_BINS, prob_histogram
from ..runs.rundir import RunDir, ShardFiles
from .ngrams import NgramStats
from .ppl import doc_ppl

LOG_PPL_BINS = 240  # fixed bins over log PPL in [0, 12] (PPL 1 .. 1.6e5); outside values go to the end bins
LOG_PPL_MAX = 12.0

__all__ = ["CorpusStats", "RunTexts", "collect_run", "run_texts", "shard_stats"]


@dataclass
class CorpusStats:
    """Mergeable statistics of one corpus (or one shard of it)."""

    label: str
    threshold: float = 0.99  # the "editable" share counts tokens with p > threshold
    sample_size: int = 500
    seed: int = 0
    num_docs: int = 0  # records whose text was read
    num_bad: int = 0  # unreadable records (already reported in the run's errors.jsonl)
    ppl: list[float] = field(default_factory=list)  # per scored document with a finite PPL
    num_no_ppl: int = 0  # scored documents without a scored token
    log_ppl_hist: np.ndarray = field(default_factory=lambda: np.zeros(LOG_PPL_BINS, dtype=np.int64))
    prob_hist: np.ndarray = field(default_factory=lambda: np.zeros(PROB_BINS, dtype=np.int64))
    n_scored: int = 0
    n_above: int = 0
    ngrams: NgramStats = field(default_factory=NgramStats)
    sample: list[tuple[str, str]] = field(default_factory=list)  # (key, text), ascending key

    # -- accumulation -----------------------------------------------------------------------------------
    def add_scores(self, logprob: np.ndarray) -> None:
        """One scored document's token log-probs (NaN = unscored)."""
        lp = np.asarray(logprob, dtype=np.float64)
        p = doc_ppl(lp)
        if math.isfinite(p):
            self.ppl.append(p)
            b = int(np.clip(math.log(max(p, 1.0)) / LOG_PPL_MAX * LOG_PPL_BINS, 0, LOG_PPL_BINS - 1))
            self.log_ppl_hist[b] += 1
        else:
            self.num_no_ppl += 1
        scored = lp[~np.isnan(lp)]
        self.prob_hist += prob_histogram(scored)
        self.n_scored += int(scored.shape[0])
        self.n_above += int((np.exp(scored) > self.threshold).sum())

    def add_texts(self, keyed_texts: list[tuple[str, str]]) -> None:
        """Documents as (unique key, text): n-gram counts and the bottom-k embedding sample."""
        self.ngrams.add_texts([t for _, t in keyed_texts])
        self.num_docs += len(keyed_texts)
        seeded = [(_sample_key(self.seed, k), t) for k, t in keyed_texts]
        self.sample = heapq.nsmallest(self.sample_size, self.sample + seeded)

    # -- merging ----------------------------------------------------------------------------------------
    def merge(self, other: CorpusStats) -> CorpusStats:
        """Statistics of both (self's documents first); settings must agree."""
        mine = (self.threshold, self.sample_size, self.seed)
        if mine != (other.threshold, other.sample_size, other.seed):
            raise ValueError("cannot merge CorpusStats with different threshold/sample_size/seed")
        return CorpusStats(
            label=self.label,
            threshold=self.threshold,
            sample_size=self.sample_size,
            seed=self.seed,
            num_docs=self.num_docs + other.num_docs,
            num_bad=self.num_bad + other.num_bad,
            ppl=self.ppl + other.ppl,
            num_no_ppl=self.num_no_ppl + other.num_no_ppl,
            log_ppl_hist=self.log_ppl_hist + other.log_ppl_hist,
            prob_hist=self.prob_hist + other.prob_hist,
            n_scored=self.n_scored + other.n_scored,
            n_above=self.n_above + other.n_above,
            ngrams=self.ngrams.merge(other.ngrams),
            sample=heapq.nsmallest(self.sample_size, self.sample + other.sample),
        )

    __add__ = merge

    def __radd__(self, other: Any) -> CorpusStats:
        if other == 0:  # sum() starts from 0
            return self
        return NotImplemented

    # -- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able and exact (from_dict(to_dict()) merges like the original)."""
        return {
            "label": self.label,
            "threshold": self.threshold,
            "sample_size": self.sample_size,
            "seed": self.seed,
            "num_docs": self.num_docs,
            "num_bad": self.num_bad,
            "ppl": self.ppl,
            "num_no_ppl": self.num_no_ppl,
            "log_ppl_hist": self.log_ppl_hist.tolist(),
            "prob_hist": self.prob_hist.tolist(),
            "n_scored": self.n_scored,
            "n_above": self.n_above,
            "ngrams": self.ngrams.to_dict(),
            "sample": [list(x) for x in self.sample],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusStats:
        return cls(
            label=d["label"],
            threshold=float(d["threshold"]),
            sample_size=int(d["sample_size"]),
            seed=int(d["seed"]),
            num_docs=int(d["num_docs"]),
            num_bad=int(d["num_bad"]),
            ppl=[float(x) for x in d["ppl"]],
            num_no_ppl=int(d["num_no_ppl"]),
            log_ppl_hist=np.asarray(d["log_ppl_hist"], dtype=np.int64),
            prob_hist=np.asarray(d["prob_hist"], dtype=np.int64),
            n_scored=int(d["n_scored"]),
            n_above=int(d["n_above"]),
            ngrams=NgramStats.from_dict(d["ngrams"]),
            sample=[(str(k), str(t)) for k, t in d["sample"]],
        )

    # -- derived ----------------------------------------------------------------------------------------
    def prob_table(self) -> dict[str, Any]:
        """The paper's Table 6 format: ten bins of width 0.1 with counts and %, and the share above threshold."""
        total = int(self.prob_hist.sum())
        rows = []
        for i, c in enumerate(self.prob_hist.tolist()):
            hi = "1.0]" if i == PROB_BINS - 1 else f"{(i + 1) / PROB_BINS:.1f})"
            rows.append(
                {
                    "bin": f"[{i / PROB_BINS:.1f}, {hi}",
                    "count": int(c),
                    "pct": 100 * c / total if total else 0,
                }
            )
        return {
            "rows": rows,
            "n_scored": self.n_scored,
            "threshold": self.threshold,
            "n_above": self.n_above,
            "above_pct": 100 * self.n_above / self.n_scored if self.n_scored else 0.0,
        }


def _sample_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------------------------------- run directories


RunTexts = ShardFiles  # one shard of a run: its scores file and the shard(s) holding its texts


def run_texts(run_dir: str | Path) -> tuple[dict[str, Any], list[ShardFiles]]:
    """The manifest of a finished run and, per input shard, its scores file and text shard(s)."""
    rd = RunDir(run_dir)
    return rd.manifest, rd.shard_files()


def _keyed_texts(shards: list[Shard], spec, stats: CorpusStats) -> Iterator[tuple[str, str]]:
    for shard in shards:
        for rec in read_shard(shard, spec):
            if isinstance(rec, BadRecord):
                stats.num_bad += 1
                continue
            yield f"{shard.name}:{rec.line}", "\n\n".join(extract_texts(rec.data, spec))


def shard_stats(
    label: str,
    part: RunTexts,
    spec,
    threshold: float = 0.99,
    sample_size: int = 500,
    seed: int = 0,
    batch: int = 1024,
) -> CorpusStats:
    """Statistics of one shard of a run: its scores (PPL, token probabilities) and its texts."""
    stats = CorpusStats(label, threshold, sample_size, seed)
    for rb in pq.ParquetFile(part.scores).iter_batches(columns=["logprob"], batch_size=256):
        for lp in rb.column("logprob").to_pylist():
            stats.add_scores(np.asarray(lp if lp is not None else [], dtype=np.float64))
    buf: list[tuple[str, str]] = []
    for item in _keyed_texts(part.texts, spec, stats):
        buf.append(item)
        if len(buf) >= batch:
            stats.add_texts(buf)
            buf = []
    if buf:
        stats.add_texts(buf)
    return stats


def collect_run(
    label: str, run_dir: str | Path, threshold: float = 0.99, sample_size: int = 500, seed: int = 0
) -> tuple[CorpusStats, dict[str, Any]]:
    """Merged statistics of a finished run directory, and its manifest."""
    rd = RunDir(run_dir)
    manifest, parts = rd.manifest, rd.shard_files()
    spec = rd.field_spec()
    total = CorpusStats(label, threshold, sample_size, seed)
    for part in parts:
        total = total.merge(shard_stats(label, part, spec, threshold, sample_size, seed))
    return total, manifest
