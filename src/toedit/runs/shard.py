"""Process one shard: read -> score -> (edit) -> write outputs, scores and errors -> completion marker."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import EditConfig, IOConfig, ScoreConfig
from ..editing import STAT_KEYS, EditStats
from ..io import (
    BadRecord,
    FieldSpec,
    Record,
    Shard,
    ShardWriter,
    extract_texts,
    free_key,
    jsonl_line,
    read_shard,
    replace_texts,
    write_jsonl_atomic,
)
from ..pipeline import edit_texts
from ..prior import Prior
from ..scoring import TokenScores, score_texts
from . import arrow
from .rundir import RunDir
from .sample import unit_ids
from .schema import field_spec
from .stats import PROB_BINS, add_hist, new_round, new_stats, prob_histogram


class TooManyErrors(RuntimeError):
    """More bad records than --max-errors allows."""


@dataclass(frozen=True)
class RunSpec:
    """One run as every process of it sees it: what it does, where it writes, its settings and fingerprints
    (the driver's `RunContext` and every worker's `Job` share it)."""

    kind: str  # "edit" | "score"
    run_dir: str | None  # None: stream edited records to stdout
    score: ScoreConfig
    io: IOConfig
    edit: EditConfig | None
    fingerprint: str
    input_hashes: Mapping[str, str] = field(default_factory=dict)  # shard name -> content hash of its input


@dataclass
class RunContext:
    """A run's spec with this process's prior and its per-process state."""

    spec: RunSpec
    prior: Prior
    on_progress: Callable[[int, int], None] | None = None  # (records, tokens) done since the last call
    errors_seen: int = 0
    emitted: dict[str, int] = field(default_factory=dict)  # stdout mode: records already printed per shard

    @cached_property
    def run_dir(self) -> RunDir | None:
        return RunDir(self.spec.run_dir) if self.spec.run_dir is not None else None

    @property
    def fields(self) -> FieldSpec:
        return field_spec(self.spec.io)


def _writer_format(path: Path) -> tuple[str, str | None]:
    name = path.name
    if name.endswith(".parquet"):
        return "parquet", None
    if name.endswith(".txt"):
        return "txt", None
    return "jsonl", {".gz": "gzip", ".zst": "zstd"}.get(path.suffix)


class _StdoutWriter:
    """Streams records to stdout; a retried attempt skips the records an earlier attempt already printed
    (outputs are deterministic), so nothing is written twice."""

    def __init__(self, emitted: dict[str, int], shard: str):
        self.emitted, self.shard, self.seen = emitted, shard, 0

    def write(self, data: dict, source: Record | None = None) -> None:
        self.seen += 1
        if self.seen <= self.emitted.get(self.shard, 0):
            return
        sys.stdout.write(jsonl_line(data, *((source.raw, source.data) if source is not None else ())))
        self.emitted[self.shard] = self.seen

    def commit(self) -> None:
        sys.stdout.flush()

    def abort(self) -> None:
        sys.stdout.flush()


class _ScoresWriter:
    """scores/<shard>.parquet: one row per record with its stats and token-level arrays (atomic on commit)."""

    def __init__(self, path: Path, save_topk: bool, with_spans: bool):
        self.path, self.save_topk, self.with_spans = path, save_topk, with_spans
        fields = [("id", pa.string()), ("line", pa.int64())]
        fields += [(key, pa.int64()) for key in (*STAT_KEYS, "n_texts")]
        fields += [("token_ids", pa.list_(pa.int32())), ("logprob", pa.list_(pa.float32()))]
        if save_topk:
            fields += [
                ("topk_ids", pa.list_(pa.list_(pa.int32()))),
                ("topk_logprobs", pa.list_(pa.list_(pa.float32()))),
            ]
        if with_spans:
            fields.append(("spans", pa.string()))
        self.schema = pa.schema(fields)
        self.rows: dict[str, list] = {name: [] for name in self.schema.names}
        self.tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(self.tmp, self.schema)

    def add(self, rec: Record, stats: EditStats, scores: list[TokenScores], spans: list | None) -> None:
        row: dict[str, Any] = {"id": rec.id, "line": rec.line, **stats.to_dict(), "n_texts": len(scores)}
        row["token_ids"] = [int(t) for s in scores for t in s.token_ids]
        row["logprob"] = [float(x) for s in scores for x in s.logprob]
        if self.save_topk:
            row["topk_ids"] = [r.tolist() for s in scores for r in s.topk_ids]
            row["topk_logprobs"] = [r.tolist() for s in scores for r in s.topk_logprobs]
        if self.with_spans:
            row["spans"] = json.dumps(spans or [], ensure_ascii=False)
        for key, value in row.items():
            self.rows[key].append(value)
        if len(self.rows["id"]) >= 256:
            self._flush()

    def _flush(self) -> None:
        self.writer.write_table(arrow.table(self.rows, self.schema))  # pandas-free pa.Table.from_pydict
        self.rows = {name: [] for name in self.schema.names}

    def commit(self) -> None:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # e.g. out of space while closing: the temp file goes anyway
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


def _process_batch(batch: list[Record], ctx: RunContext, fields: FieldSpec):
    """Score/edit every text of a batch of records; yields (record, new_data, stats, scores, spans)."""
    run = ctx.spec
    texts, ids, owners = [], [], []
    for j, rec in enumerate(batch):
        parts = extract_texts(rec.data, fields)
        for text in parts:
            texts.append(text)
            owners.append(j)
        ids.extend(unit_ids(rec.id, len(parts), fields))
    if run.kind == "edit":
        results = edit_texts(texts, ctx.prior, run.edit, ids=ids, score_config=run.score, keep_scores=True)
    else:
        scores_only = score_texts(texts, ctx.prior, run.score)
    per_rec: list[list[int]] = [[] for _ in batch]
    for i, j in enumerate(owners):
        per_rec[j].append(i)
    for j, rec in enumerate(batch):
        stats = EditStats()
        if run.kind == "edit":
            rs = [results[i] for i in per_rec[j]]
            for r in rs:
                stats += r.stats
            new_data = replace_texts(rec.data, fields, [r.text for r in rs])
            scores = [r.scores for r in rs]
            spans = [s for r in rs for s in (r.spans or [])] if run.edit.record_spans else None
            per_round = _round_totals(rs)
        else:
            scores = [scores_only[i] for i in per_rec[j]]
            for s in scores:
                stats += EditStats(n_tokens=len(s), n_scored=s.n_scored)
            new_data, spans, per_round = rec.data, None, []
        yield rec, new_data, stats, scores, spans, len(per_rec[j]), per_round


def _inline_stats(stats: EditStats, spans: list | None, arrow: bool) -> dict[str, Any]:
    """A record's inline stats object; spans as a list (JSONL), or as its JSON text as in scores/ (parquet)."""
    out: dict[str, Any] = dict(stats.to_dict())
    if spans is not None:
        out["spans"] = json.dumps(spans, ensure_ascii=False) if arrow else spans
    return out


def _round_totals(results: list) -> list[tuple[EditStats, np.ndarray]]:
    """Per-round (stats, probability histogram) of one record, summed over its texts."""
    n = max((len(r.rounds) for r in results), default=0)
    out = []
    for i in range(n):
        st, hist = EditStats(), np.zeros(PROB_BINS, dtype=np.int64)
        for r in results:
            if i < len(r.rounds):
                st += r.rounds[i]
                hist += r.round_hists[i]
        out.append((st, hist))
    return out


def process_shard(shard: Shard, ctx: RunContext) -> dict[str, Any]:
    """Run one shard to completion and return its marker (written only after every output is in place)."""
    t0 = time.time()
    run, fields = ctx.spec, ctx.fields
    stats = new_stats()
    hist = np.zeros(len(stats["prob_hist"]), dtype=np.int64)
    rounds: list[dict[str, Any]] = []
    errors: list[dict] = []
    writers: list[Any] = []  # opened inside the try: nothing is left behind whatever fails
    run_dir = ctx.run_dir

    def flush(batch: list[Record], data_writer, scores_writer) -> None:
        tokens = 0
        for rec, new_data, st, scores, spans, n_texts, per_round in _process_batch(batch, ctx, fields):
            stats["n_records"] += 1
            stats["n_texts"] += n_texts
            stats["n_empty"] += int(n_texts > 0 and st.n_tokens == 0)
            for key in STAT_KEYS:
                stats[key] += getattr(st, key)
            for s in scores:
                hist[:] += prob_histogram(s.logprob)
            for r, (rst, rhist) in enumerate(per_round):
                if r == len(rounds):
                    rounds.append(new_round())
                for key in STAT_KEYS:
                    rounds[r][key] += getattr(rst, key)
                rounds[r]["prob_hist"] = add_hist(rounds[r]["prob_hist"], rhist)
            tokens += st.n_tokens
            if data_writer is not None:
                if run.io.inline_stats and run.kind == "edit":
                    new_data = dict(new_data)  # the stats never overwrite a field of the record's own
                    new_data[free_key(rec.data, "toedit")] = _inline_stats(st, spans, arrow)
                data_writer.write(new_data, rec)
            if scores_writer is not None:
                scores_writer.add(rec, st, scores, spans)
        if ctx.on_progress:
            ctx.on_progress(len(batch), tokens)

    arrow = False  # parquet output: spans go in as a JSON string (one Arrow type for any span list)
    try:
        data_writer = scores_writer = None
        if run_dir is None:
            data_writer = _StdoutWriter(ctx.emitted, shard.name)
        else:
            if run.kind == "edit":
                out = run_dir.data_path(shard)
                fmt, comp = _writer_format(out)
                data_writer = ShardWriter(out, fmt, comp)
                arrow = fmt == "parquet"
                writers.append(data_writer)
            with_spans = run.edit is not None and run.edit.record_spans
            scores_writer = _ScoresWriter(run_dir.scores_path(shard.name), run.io.save_topk, with_spans)
            writers.append(scores_writer)
        batch: list[Record] = []
        for item in read_shard(shard, fields):
            if isinstance(item, BadRecord):
                errors.append(item.to_json())
                ctx.errors_seen += 1
                if run.io.max_errors is not None and ctx.errors_seen > run.io.max_errors:
                    raise TooManyErrors(
                        f"{ctx.errors_seen} bad records (more than --max-errors {run.io.max_errors}); "
                        f"last: {item.file} line {item.line}: {item.reason}"
                    )
                continue
            batch.append(item)
            if len(batch) >= run.io.docs_per_batch:
                flush(batch, data_writer, scores_writer)
                batch = []
        if batch:
            flush(batch, data_writer, scores_writer)
        stats["n_errors"] = len(errors)
        stats["prob_hist"] = hist.tolist()
        if run.kind == "edit" and run.edit is not None and run.edit.rounds > 1:
            stats["rounds"] = rounds
        marker = {
            "shard": shard.name,
            "path": shard.path,
            "size": shard.size,
            "input_sha256": run.input_hashes.get(shard.name),
            "fingerprint": run.fingerprint,
            "stats": stats,
            "seconds": round(time.time() - t0, 3),
        }
        if run_dir is None:
            sys.stdout.flush()
            for err in errors:
                print(json.dumps(err, ensure_ascii=False), file=sys.stderr)
            return marker
        for w in writers:
            w.commit()
        write_jsonl_atomic(run_dir.shard_errors_path(shard.name), errors)
        marker["outputs"] = run_dir.describe_outputs(run_dir.shard_outputs(shard, run.kind))
        run_dir.write_marker(shard.name, marker)
        return marker
    except BaseException:
        for w in writers:
            with contextlib.suppress(Exception):
                w.abort()
        raise
