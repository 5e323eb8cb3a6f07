"""Resumable sharded runs: `run_edit`, `run_score` and `run_status` (what the CLI verbs call)."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, EditConfig, IOConfig, RunConfig, ScoreConfig
from ..io import Shard, count_records, list_shards, write_json_atomic
from ..pipeline import calibrate_threshold
from ..prior import Prior, load_prior
from ..scoring import resolve_window
from . import stats as run_stats
from .executors import Job, make_executor, parse_devices, uses_workers
from .manifest import RunDirError, fingerprint, fingerprint_payload, read_json, versions
from .sample import sample_texts
from .shard import RunContext, output_path

SUBDIRS = ("data", "scores", "done", "errors", "failed")
COUNT_FOR_ETA_BYTES = 2 * 1024**3


@dataclass
class RunSummary:
    """What a run did: merged stats over all shards, and this invocation's throughput."""

    run_dir: str | None
    shards: int
    shards_done_before: int
    stats: dict[str, Any]
    seconds: float
    tokens_this_run: int
    plan: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)  # shards that failed every retry

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_this_run / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_second": self.tokens_per_second, **run_stats.rates(self.stats)}

    def format(self) -> str:
        s, r = self.stats, run_stats.rates(self.stats)
        lines = [
            f"run dir        {self.run_dir or '(stdout)'}",
            f"shards         {self.shards} ({self.shards_done_before} already done)",
            f"documents      {s['n_records']:,} ({s['n_empty']:,} empty, {s['n_errors']:,} bad records)",
            f"tokens         {s['n_tokens']:,} ({s['n_scored']:,} scored)",
            f"above thr.     {s['n_above']:,} ({100 * r['above_rate']:.2f} % of scored)",
            f"changed        {s['n_changed']:,} ({100 * r['change_rate']:.3f} % of scored)",
            f"dropped        {s['n_dropped']:,} ({100 * r['drop_rate']:.3f} %)",
            f"skipped unsafe {s['n_skipped_unsafe']:,}",
            f"speed          {self.tokens_per_second:,.0f} tokens/s ({self.tokens_this_run:,} tokens in {self.seconds:.1f} s)",
        ]
        if self.failed:
            names = ", ".join(f["shard"] for f in self.failed[:10])
            lines.append(
                f"FAILED shards  {len(self.failed)} after every retry: {names} (see RUN_DIR/failed/)"
            )
        if self.calibration:
            c = self.calibration
            lines.insert(
                5,
                f"threshold      {c['threshold']:.6g}, chosen for {c['target']} {c['target_rate']:g} "
                f"(expected change {100 * c['expected_change_rate']:.3f} %, selected {100 * c['selected_rate']:.2f} % "
                f"on {c['sample_docs']} sampled texts)",
            )
        return "\n".join(lines)


def _prepare_dir(
    run_dir: Path, manifest: dict[str, Any], overwrite: bool, own: list[Shard] | None = None
) -> None:
    """Check or reset RUN_DIR, remove temp files of killed processes (only `own` shards' when several
    launches share RUN_DIR: the others' may be in flight) and write the manifest."""
    old = read_json(run_dir / "manifest.json")
    differs = old is not None and old.get("fingerprint") != manifest["fingerprint"]
    if differs and not overwrite:
        raise RunDirError(
            f"{run_dir} holds a run with a different configuration (fingerprint {old.get('fingerprint', '?')[:12]} "
            f"vs {manifest['fingerprint'][:12]}); use another RUN_DIR or pass --overwrite"
        )
    if differs or overwrite:
        for sub in SUBDIRS:
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        for name in ("stats.json", "errors.jsonl"):
            (run_dir / name).unlink(missing_ok=True)
    elif old is not None:
        _check_inputs(run_dir, old, manifest)
    mine = None if own is None else {n for s in own for n in _output_names(s)}
    for sub in SUBDIRS:
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
        for stale in (run_dir / sub).glob("*.tmp-*"):  # left by a killed process
            if mine is None or stale.name.rpartition(".tmp-")[0] in mine:
                stale.unlink(missing_ok=True)
    write_json_atomic(run_dir / "manifest.json", manifest)


def _output_names(shard: Shard) -> tuple[str, ...]:
    """File names a shard's outputs have in RUN_DIR's subdirectories."""
    n = shard.name
    return (output_path(Path("."), shard).name, f"{n}.parquet", f"{n}.jsonl", f"{n}.json")


def resolve_rank(run: RunConfig) -> tuple[int, int] | None:
    """(rank, world size) of a manual launch: --rank, else $SLURM_ARRAY_TASK_ID (minus the array's first id)."""
    if run.world_size is None:
        if run.rank is not None:
            raise ConfigError("--rank needs --world-size")
        return None
    rank = run.rank
    if rank is None:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if task is None:
            raise ConfigError("--world-size needs --rank (or SLURM_ARRAY_TASK_ID in a Slurm array job)")
        rank = int(task) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    if not 0 <= rank < run.world_size:
        raise ConfigError(f"rank {rank} is outside [0, {run.world_size})")
    return rank, run.world_size


def _check_inputs(run_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    before = {i["name"]: i for i in old.get("inputs", [])}
    for item in new["inputs"]:
        prev = before.get(item["name"])
        if prev is not None and item["path"] != "-" and prev["size"] != item["size"]:
            raise RunDirError(
                f"input {item['path']} changed size since {run_dir} was started ({prev['size']} -> {item['size']} "
                "bytes); its outputs would be stale: pass --overwrite to start again"
            )


def _done(run_dir: Path, shard: Shard, fp: str) -> dict[str, Any] | None:
    marker = read_json(run_dir / "done" / f"{shard.name}.json")
    return marker if marker is not None and marker.get("fingerprint") == fp else None


def _merge_outputs(run_dir: Path, shards: list[Shard]) -> dict[str, Any]:
    """errors.jsonl and stats.json from the per-shard files, in shard order."""
    markers = [read_json(run_dir / "done" / f"{s.name}.json") for s in shards]
    tmp = run_dir / f"errors.jsonl.tmp-{os.getpid()}"  # several launches may merge at once
    with open(tmp, "w", encoding="utf-8") as out:
        for s in shards:
            path = run_dir / "errors" / f"{s.name}.jsonl"
            if path.exists():
                out.write(path.read_text(encoding="utf-8"))
    tmp.replace(run_dir / "errors.jsonl")
    merged = run_stats.merge(m["stats"] for m in markers if m)
    merged["shards_done"] = sum(m is not None for m in markers)
    merged["shards"] = len(shards)
    calibration = (read_json(run_dir / "manifest.json") or {}).get("calibration")
    extra = {"calibration": calibration} if calibration else {}
    write_json_atomic(run_dir / "stats.json", merged | {"rates": run_stats.rates(merged)} | extra)
    return merged


def _execute(
    kind: str,
    inputs: Sequence[str],
    output: str,
    edit: EditConfig | None,
    score: ScoreConfig | None,
    io: IOConfig | None,
    run: RunConfig | None,
    dry_run: bool,
    prior: Prior | None,
) -> RunSummary:
    score, io, run = score or ScoreConfig(), io or IOConfig(), run or RunConfig()
    for cfg in (score, edit, run):
        if cfg is not None:
            cfg.validate()
    rank = resolve_rank(run)
    shards = list_shards(inputs, run.shard_lines)
    plan = [_plan_item(s) for s in shards]
    run_dir = None if output == "-" else Path(output)
    if run_dir is None and (uses_workers(run) or rank):
        raise ConfigError(
            "-o - streams from this one process: drop --workers/--devices/--executor ray/--rank"
        )
    if rank and rank[1] > 1 and run.overwrite:
        raise ConfigError(
            "--overwrite with --world-size > 1 would let launches wipe each other: clear RUN_DIR first"
        )
    if dry_run:
        return RunSummary(
            str(run_dir) if run_dir else None, len(shards), 0, run_stats.new_stats(), 0.0, 0, plan
        )
    if kind == "score" and run_dir is None:
        raise RunDirError("`toedit score` writes scores/ into a RUN_DIR; -o - is only for `toedit edit`")
    own_prior = prior is None
    devices = parse_devices(run.devices)
    prior = prior or load_prior(
        run.model, devices[0] if devices else run.device, run.dtype, run.trust_remote_code
    )
    window = resolve_window(prior, score)
    calibration = None
    if edit is not None and (edit.target_change_rate is not None or edit.target_selected_rate is not None):
        calibration = _calibration(shards, edit, score, io, prior, run_dir, run.overwrite)
        edit = dataclasses.replace(edit, threshold=calibration["threshold"])
    payload = fingerprint_payload(kind, prior, window, score, io, edit)
    fp = fingerprint(payload)
    ctx = RunContext(kind, run_dir, prior, score, io, edit, fp)
    done_before: list[Shard] = []
    mine = [s for i, s in enumerate(shards) if rank is None or i % rank[1] == rank[0]]
    todo = mine
    if run_dir is not None:
        manifest = {
            "kind": kind,
            "fingerprint": fp,
            "config": payload,
            "settings": {
                "score": asdict(score),
                "io": asdict(io),
                "run": asdict(run),
                "edit": edit and asdict(edit),
            },
            "model": {"name": prior.name, "fingerprint": prior.fingerprint, "context_id": prior.context_id},
            "inputs": plan,
            "calibration": calibration,
            "versions": versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _prepare_dir(run_dir, manifest, run.overwrite, mine if rank and rank[1] > 1 else None)
        done_markers = [m for s in shards if (m := _done(run_dir, s, fp))]
        done_names = {m["shard"] for m in done_markers}
        done_before = [s for s in mine if s.name in done_names]
        todo = [s for s in mine if s.name not in done_names]
        errors_before = sum(m["stats"]["n_errors"] for m in done_markers)
    else:
        errors_before = 0
    job = Job(
        kind,
        str(run_dir or ""),
        score,
        io,
        edit,
        fp,
        run.model,
        prior.fingerprint,
        run.dtype,
        run.trust_remote_code,
    )
    executor = make_executor(run, ctx)
    if uses_workers(run) and own_prior and todo:  # the workers load their own; free this copy (GPU memory)
        del ctx, prior
        _release_memory()
    t0 = time.time()
    tokens = 0
    bar = _progress(todo, run.progress)

    def on_progress(n_records: int, n_tokens: int) -> None:
        nonlocal tokens
        tokens += n_tokens
        if bar is not None:
            bar.update(n_records)
            bar.set_postfix(tok_s=f"{tokens / max(time.time() - t0, 1e-9):,.0f}", refresh=False)

    outcome = None
    try:
        outcome = executor.run(todo, job, on_progress, errors_before)
        if run_dir is not None:
            _record_failures(run_dir, outcome)
    finally:
        if bar is not None:
            bar.close()
        if run_dir is not None:
            merged = _merge_outputs(run_dir, shards)
    seconds = time.time() - t0
    if run_dir is None:
        merged = run_stats.merge(m["stats"] for m in outcome.markers)
    summary = RunSummary(
        str(run_dir) if run_dir else None, len(shards), len(done_before), merged, seconds, tokens, plan
    )
    summary.calibration = calibration
    summary.failed = outcome.failed
    return summary


def _plan_item(shard: Shard) -> dict[str, Any]:
    item = {"name": shard.name, "path": shard.path, "format": shard.format, "size": shard.size}
    if shard.is_part:
        item["lines"] = [shard.start + 1, shard.stop]
    return item


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _record_failures(run_dir: Path, outcome) -> None:
    """failed/<shard>.json for every shard that failed every retry; cleared when a later try succeeds."""
    for marker in outcome.markers:
        (run_dir / "failed" / f"{marker['shard']}.json").unlink(missing_ok=True)
    for failure in outcome.failed:
        write_json_atomic(run_dir / "failed" / f"{failure['shard']}.json", failure)


def _calibration(
    shards, edit: EditConfig, score: ScoreConfig, io: IOConfig, prior: Prior, run_dir, overwrite
):
    """Threshold for a target rate, fitted on a seeded sample; reused from RUN_DIR's manifest on resume."""
    request = {
        "target_change_rate": edit.target_change_rate,
        "target_selected_rate": edit.target_selected_rate,
        "calibration_docs": edit.calibration_docs,
        "seed": edit.seed,
        "top_k": edit.top_k,
        "beta": edit.beta,
        "exclude_original": edit.exclude_original,
        "model": prior.fingerprint,
    }
    old = read_json(run_dir / "manifest.json") if run_dir is not None and not overwrite else None
    if old and (old.get("calibration") or {}).get("request") == request:
        return old["calibration"]
    spec = RunContext("edit", None, prior, score, io, edit, "").spec
    texts, _ = sample_texts(shards, spec, edit.calibration_docs, edit.seed)
    return calibrate_threshold(texts, prior, edit, score).to_dict() | {"request": request}


def _progress(todo: list[Shard], enabled: bool):
    if not enabled or not todo:
        return None
    from tqdm.auto import tqdm

    total = None
    # counting records reads the inputs once more: worth it for an ETA, not for terabytes
    if sum(s.size for s in todo) <= COUNT_FOR_ETA_BYTES:
        counts = [count_records(s) for s in todo]
        total = None if any(c is None for c in counts) else sum(counts)
    return tqdm(total=total, unit="doc", desc="toedit", file=sys.stderr, dynamic_ncols=True)


def run_edit(
    inputs: Sequence[str],
    output: str,
    edit: EditConfig | None = None,
    score: ScoreConfig | None = None,
    io: IOConfig | None = None,
    run: RunConfig | None = None,
    dry_run: bool = False,
    prior: Prior | None = None,
) -> RunSummary:
    """Edit every document of `inputs` into RUN_DIR `output` (or stdout for "-"); resumable."""
    return _execute("edit", inputs, output, edit or EditConfig(), score, io, run, dry_run, prior)


def run_score(
    inputs: Sequence[str],
    output: str,
    score: ScoreConfig | None = None,
    io: IOConfig | None = None,
    run: RunConfig | None = None,
    dry_run: bool = False,
    prior: Prior | None = None,
) -> RunSummary:
    """Score every document of `inputs` into RUN_DIR/scores (for analysis); resumable."""
    return _execute("score", inputs, output, None, score, io, run, dry_run, prior)


def run_status(run_dir: str) -> dict[str, Any]:
    """Progress of a run directory: shards done / pending, merged stats so far, errors."""
    root = Path(run_dir)
    manifest = read_json(root / "manifest.json")
    if manifest is None:
        raise RunDirError(f"{root} is not a toedit run directory (no manifest.json)")
    fp = manifest["fingerprint"]
    names = [i["name"] for i in manifest.get("inputs", [])]
    markers = {n: read_json(root / "done" / f"{n}.json") for n in names}
    done = [n for n, m in markers.items() if m and m.get("fingerprint") == fp]
    merged = run_stats.merge(markers[n]["stats"] for n in done)
    seconds = sum(markers[n].get("seconds", 0.0) for n in done)
    failed = [f for n in names if n not in done and (f := read_json(root / "failed" / f"{n}.json"))]
    return {
        "run_dir": str(root),
        "kind": manifest.get("kind"),
        "model": manifest.get("model", {}).get("name"),
        "fingerprint": fp,
        "shards": len(names),
        "shards_done": len(done),
        "pending": [n for n in names if n not in done],
        "failed": failed,
        "stats": merged,
        "rates": run_stats.rates(merged),
        "tokens_per_second": merged["n_tokens"] / seconds if seconds else None,
        "errors_file": str(root / "errors.jsonl"),
    }


def format_status(status: dict[str, Any]) -> str:
    s, r = status["stats"], status["rates"]
    lines = [
        f"{status['run_dir']}: {status['kind']} run, model {status['model']}",
        f"shards {status['shards_done']}/{status['shards']} done"
        + (f"; pending: {', '.join(status['pending'][:10])}" if status["pending"] else ""),
        f"documents {s['n_records']:,}  tokens {s['n_tokens']:,}  bad records {s['n_errors']:,}",
        f"above threshold {100 * r['above_rate']:.2f} %  changed {100 * r['change_rate']:.3f} %",
    ]
    if status.get("failed"):
        lines.append(
            f"FAILED after every retry: {', '.join(f['shard'] for f in status['failed'][:10])} "
            f"(rerun the same command to try them again; reasons in {status['run_dir']}/failed/)"
        )
    return "\n".join(lines)
