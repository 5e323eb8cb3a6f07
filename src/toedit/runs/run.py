"""Resumable sharded runs: `run_edit` and `run_score` (what the CLI verbs call)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..compiling import estimate_tokens, resolved_compile
from ..config import ConfigError, EditConfig, IOConfig, RunConfig, ScoreConfig
from ..io import Shard, count_records, discover, write_json_atomic
from ..io.hashing import content_hashes
from ..pipeline import calibrate_threshold, check_settings
from ..prior import Prior, load_prior
from . import stats as run_stats
from .executors import Job, make_executor, parse_devices, uses_workers
from .layout import RunDirError
from .manifest import fingerprint, fingerprint_payload, versions
from .rundir import RUN_DIRS, RunDir
from .sample import sample_texts
from .schema import field_spec
from .shard import RunContext, RunSpec
from .summary import RunSummary

log = logging.getLogger(__name__)
# a new RUN_DIR named like a data file is most likely a user expecting one output file: warned about
FILE_LIKE = (".jsonl", ".json", ".parquet", ".txt", ".csv", ".gz", ".zst", ".bz2", ".xz")
COUNT_FOR_ETA_BYTES = 2 * 1024**3


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


def _prepare(rd: RunDir, manifest: dict[str, Any], overwrite: bool, own: list[Shard] | None) -> None:
    """Check or reset RUN_DIR (held by this process), remove temp files of killed processes (only `own`
    shards' when several launches share RUN_DIR: the others' may be in flight) and write the manifest."""
    try:
        old = rd.read_manifest()
    except RunDirError:
        if not overwrite:
            raise
        old = None  # a damaged manifest: --overwrite starts again
    differs = old is not None and old.get("fingerprint") != manifest["fingerprint"]
    if differs and not overwrite:
        raise RunDirError(
            f"{rd.root} holds a run with a different configuration (fingerprint {old.get('fingerprint', '?')[:12]} "
            f"vs {manifest['fingerprint'][:12]}); use another RUN_DIR or pass --overwrite"
        )
    if differs or overwrite:
        rd.reset()
    elif old is not None:
        _check_inputs(rd, old, manifest)
    rd.make_dirs()
    rd.remove_temp_files(shards=own)
    rd.write_manifest(manifest)


def _check_inputs(rd: RunDir, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Resume only over the same input bytes: a changed input would leave stale outputs."""
    before = {i["name"]: i for i in old.get("inputs", [])}
    for item in new["inputs"]:
        prev = before.get(item["name"])
        if prev is None or prev.get("sha256") == item.get("sha256"):
            continue
        what = "standard input" if item.get("source") == "-" else f"input {item['path']}"
        raise RunDirError(
            f"{what} is not the one {rd.root} was started with (content sha256 {str(prev.get('sha256'))[:12]} "
            f"vs {str(item.get('sha256'))[:12]}); its outputs would be stale: use another RUN_DIR or pass "
            "--overwrite to start again"
        )


def _merge_outputs(rd: RunDir, shards: list[Shard]) -> dict[str, Any]:
    """errors.jsonl and stats.json from the per-shard files, in shard order."""
    fp = (rd.read_manifest() or {}).get("fingerprint")
    markers = [rd.done_marker(s.name, fp) for s in shards]
    tmp = rd.errors_path.with_name(f"errors.jsonl.tmp-{os.getpid()}")  # several launches may merge at once
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for s in shards:
                path = rd.shard_errors_path(s.name)
                if path.exists():
                    out.write(path.read_text(encoding="utf-8"))
        tmp.replace(rd.errors_path)
    finally:
        tmp.unlink(missing_ok=True)
    merged = run_stats.merge(m["stats"] for m in markers if m)
    merged["shards_done"] = sum(m is not None for m in markers)
    merged["shards"] = len(shards)
    calibration = (rd.read_manifest() or {}).get("calibration")
    extra = {"calibration": calibration} if calibration else {}
    write_json_atomic(rd.stats_path, merged | {"rates": run_stats.rates(merged)} | extra)
    return merged


def _check_paths(run_dir: Path | None, shards: list[Shard], rank: int | None) -> None:
    """RUN_DIR must not be an input file or lie inside one (`-o in.jsonl`, `-o in.jsonl/x`), must be a
    directory (or not exist yet), and nothing it writes may lead outside it or into an input."""
    if run_dir is None:
        return
    target = run_dir.resolve()
    for shard in shards:
        if shard.path == "-":
            continue
        src = Path(shard.path).resolve()
        if src.is_file() and (target == src or src in target.parents):
            raise RunDirError(
                f"RUN_DIR {run_dir} is the input file {shard.path} (or inside it): pick another -o"
            )
    for path in (run_dir, *run_dir.parents):
        if path.is_symlink() and not path.exists():
            raise ConfigError(
                f"-o {run_dir}: {path} is a symbolic link to nothing; RUN_DIR must be a directory"
            )
        if path.exists() and not path.is_dir():
            raise ConfigError(
                f"-o {run_dir}: {path} is an existing file, not a directory; RUN_DIR must be a directory "
                "(a new one, or a previous run's)"
            )
    RunDir(run_dir).check_confined(shards, rank)


def _spool_stdin(shards: list[Shard], rd: RunDir | None, stack: contextlib.ExitStack) -> list[Shard]:
    """Read standard input once into a file (RUN_DIR/stdin.jsonl, or a temp file for -o -), so a retried
    shard re-reads the same bytes and a rerun is keyed by their content."""
    if not any(s.path == "-" for s in shards):
        return shards
    if rd is not None:
        rd.root.mkdir(parents=True, exist_ok=True)
        tmp = rd.stdin_path.with_name(f"{rd.stdin_path.name}.tmp-{os.getpid()}")
        final = rd.stdin_path
    else:
        fd, name = tempfile.mkstemp(prefix="toedit-stdin-", suffix=".jsonl")
        os.close(fd)
        tmp = final = Path(name)
        stack.callback(final.unlink, missing_ok=True)
    try:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    except BaseException:
        if tmp != final:
            tmp.unlink(missing_ok=True)
        raise
    if tmp != final:
        os.replace(tmp, final)
    size = final.stat().st_size
    return [dataclasses.replace(s, path=str(final), size=size) if s.path == "-" else s for s in shards]


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
    for cfg in (score, edit, io, run):
        if cfg is not None:
            cfg.validate()
    rank = resolve_rank(run)
    run_dir = None if output == "-" else Path(output)
    if run_dir is not None and not run_dir.exists() and run_dir.name.endswith(FILE_LIKE):
        log.warning(
            "-o %s: RUN_DIR is a directory; toedit %s creates it and writes %s inside",
            output,
            kind,
            "data/ and scores/ (-o - for JSONL on stdout)" if kind == "edit" else "scores/",
        )
    exclude = [run_dir] if run_dir is not None else []
    found = discover(inputs, run.shard_lines, exclude=exclude, fence=RUN_DIRS)
    shards = found.shards
    skipped = [s.to_json() for s in found.skipped]
    _check_paths(run_dir, shards, rank[0] if rank and rank[1] > 1 else None)
    if run_dir is None and (uses_workers(run) or rank):
        raise ConfigError(
            "-o - streams from this one process: drop --workers/--devices/--executor ray/--rank"
        )
    if rank and rank[1] > 1 and run.overwrite:
        raise ConfigError(
            "--overwrite with --world-size > 1 would let launches wipe each other: clear RUN_DIR first"
        )
    if dry_run:
        plan = [_plan_item(s) for s in shards]
        return RunSummary(
            str(run_dir) if run_dir else None,
            len(shards),
            0,
            run_stats.new_stats(),
            0.0,
            0,
            plan,
            skipped=skipped,
            kind=kind,
        )
    if kind == "score" and run_dir is None:
        raise RunDirError("`toedit score` writes scores/ into a RUN_DIR; -o - is only for `toedit edit`")
    rd = RunDir(run_dir) if run_dir is not None else None
    with contextlib.ExitStack() as stack:
        if rd is not None:
            stack.enter_context(rd.lock(rank[0] if rank and rank[1] > 1 else None))
            # whatever happens, this process leaves none of its own temp files behind
            stack.callback(rd.remove_temp_files, pid=os.getpid())
        shards = _spool_stdin(shards, rd, stack)
        request = RunRequest(
            kind=kind,
            run_dir=rd,
            shards=shards,
            skipped=skipped,
            score=score,
            io=io,
            run=run,
            edit=edit,
            rank=rank,
        )
        return _run_locked(request, prior)


@dataclass(frozen=True)
class RunRequest:
    """A run as `_execute` hands it on once RUN_DIR is locked: the verb, where it writes, its inputs (stdin
    spooled) and its validated settings."""

    kind: str  # "edit" | "score"
    run_dir: RunDir | None  # None: stream edited records to stdout
    shards: list[Shard]
    skipped: list[dict[str, str]]  # found in the inputs but not read (Skipped.to_json), for the manifest
    score: ScoreConfig
    io: IOConfig
    run: RunConfig
    edit: EditConfig | None
    rank: tuple[int, int] | None  # (rank, world size) of a manual launch


def _run_locked(req: RunRequest, prior: Prior | None) -> RunSummary:
    """Plan, fingerprint, write the manifest, run the shards still to do, merge; `prior`: None loads --model."""
    kind, rd, shards, skipped, rank = req.kind, req.run_dir, req.shards, req.skipped, req.rank
    score, io, run, edit = req.score, req.io, req.run, req.edit
    digests = content_hashes([s.path for s in shards])
    plan = [_plan_item(s) | {"sha256": digests[s.path]} for s in shards]
    for item, shard in zip(plan, shards, strict=True):
        if shard.name == "stdin" and rd is not None and Path(shard.path) == rd.stdin_path:
            item["source"] = "-"
    hashes = {item["name"]: item["sha256"] for item in plan}
    own_prior = prior is None
    devices = parse_devices(run.devices)
    prior = prior or load_prior(
        run.model, devices[0] if devices else run.device, run.dtype, run.trust_remote_code
    )
    # `--compile auto` resolved once, from the whole input's size (every rank and worker alike): on | off
    score = dataclasses.replace(score, compile=resolved_compile(score.compile, prior, _input_tokens(shards)))
    window = check_settings(prior, score, edit)  # before any shard: a config error, not a failed shard
    calibration = None
    if edit is not None and (edit.target_change_rate is not None or edit.target_selected_rate is not None):
        calibration = _calibration(shards, edit, score, io, prior, rd, run.overwrite)
        edit = dataclasses.replace(edit, threshold=calibration["threshold"])
    payload = fingerprint_payload(kind, prior, window, score, io, edit)
    model_name = prior.name  # the prior itself may be freed before the summary
    fp = fingerprint(payload)
    spec = RunSpec(kind, str(rd.root) if rd else None, score, io, edit, fp, hashes)
    ctx = RunContext(spec, prior)
    done_before: list[Shard] = []
    mine = [s for i, s in enumerate(shards) if rank is None or i % rank[1] == rank[0]]
    todo = mine
    errors_before = 0
    if rd is not None:
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
            "model": {
                "name": prior.name,
                "fingerprint": prior.fingerprint,
                "dtype": payload["dtype"],
                "compile": payload["score"]["compile"],
                "context_id": payload["context_id"],
            },
            "inputs": plan,
            "skipped_inputs": skipped,
            "calibration": calibration,
            "versions": versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _prepare(rd, manifest, run.overwrite, mine if rank and rank[1] > 1 else None)
        _drop_stale_markers(rd, mine, fp)
        done_markers = [m for s in shards if (m := rd.marker(s.name, fp))]
        done_names = {m["shard"] for m in done_markers}
        done_before = [s for s in mine if s.name in done_names]
        todo = [s for s in mine if s.name not in done_names]
        errors_before = sum(m["stats"]["n_errors"] for m in done_markers)
    job = Job(spec, run.model, prior.fingerprint, run.dtype, run.trust_remote_code)
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
    merged = None
    try:
        outcome = executor.run(todo, job, on_progress, errors_before)
    finally:
        if bar is not None:
            bar.close()
        if rd is not None:
            merged = _settle(rd, shards, outcome)
    seconds = time.time() - t0
    if rd is None:  # stdout: say how much of each failed shard was printed before it failed
        for failure in outcome.failed:
            failure["records_written"] = ctx.emitted.get(failure["shard"], 0)
    if merged is None:
        merged = run_stats.merge(m["stats"] for m in outcome.markers)
    return RunSummary(
        str(rd.root) if rd else None,
        len(shards),
        len(done_before),
        merged,
        seconds,
        tokens,
        [{k: v for k, v in p.items() if k != "sha256"} for p in plan],
        calibration=calibration,
        failed=outcome.failed,
        skipped=skipped,
        model=model_name,
        dtype=payload["dtype"],
        compile=payload["score"]["compile"],
        kind=kind,
    )


def _drop_stale_markers(rd: RunDir, shards: list[Shard], fp: str) -> None:
    """A shard is done only while its outputs match its marker (size and sha256): one whose output was
    deleted, truncated or changed runs again (its marker goes first, so nothing reports it done meanwhile)."""
    for shard in shards:
        marker = rd.marker(shard.name, fp)
        if marker is not None and (why := rd.outputs_problem(marker, deep=True)) is not None:
            log.warning("shard %s is not done after all: %s; running it again", shard.name, why)
            rd.drop_marker(shard.name)


def _settle(rd: RunDir, shards: list[Shard], outcome) -> dict[str, Any] | None:
    """Record failures and merge the outputs; a full disk here is reported, never a traceback."""
    try:
        if outcome is not None:
            for marker in outcome.markers:
                rd.clear_failure(marker["shard"])
            for failure in outcome.failed:
                rd.record_failure(failure)
        return _merge_outputs(rd, shards)
    except OSError as exc:
        log.error("could not write the run's summary files in %s: %s", rd.root, exc)
        if outcome is not None and not outcome.failed:
            outcome.failed.append({"shard": "(summary files)", "attempts": 1, "error": str(exc)})
        return None


def _input_tokens(shards: list[Shard]) -> int:
    """The input's size in tokens, estimated from its files' sizes (a file split into parts counted once)."""
    files = {
        s.path: (s.size, s.compression is not None or s.format in ("parquet", "datasets")) for s in shards
    }
    return estimate_tokens(files)


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


def _calibration(
    shards, edit: EditConfig, score: ScoreConfig, io: IOConfig, prior: Prior, rd: RunDir | None, overwrite
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
    old = rd.read_manifest() if rd is not None and not overwrite else None
    if old and (old.get("calibration") or {}).get("request") == request:
        return old["calibration"]
    texts, _ = sample_texts(shards, field_spec(io), edit.calibration_docs, edit.seed)
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
