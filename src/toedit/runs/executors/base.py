"""The executor interface, the picklable `Job` a worker rebuilds its context from, and the in-process executor.

Every executor calls `process_shard`, so outputs and markers are the same bytes whatever runs them.

A worker rebuilds the run's context from a picklable `Job` (configs + fingerprint; it loads the prior itself,
a model is never pickled). A shard whose worker dies or raises is retried up to `max_retries` times; a killed
attempt leaves only `*.tmp-<pid>` files, which are removed, and never a marker. A shard that fails every try
is reported in `Outcome.failed` and the rest of the run goes on. Bad input (`InputError`) and `--max-errors`
(`TooManyErrors`) are not worth retrying: they stop the run as they do in a single process.
"""

from __future__ import annotations

import logging
import os
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import EditConfig, IOConfig, ScoreConfig
from ...io import InputError, Shard
from ...prior import PriorError, load_prior
from ..manifest import RunDirError, read_json
from ..shard import RunContext, TooManyErrors, process_shard

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (records, tokens) since the last call; negative to undo an attempt
FAULT_ENV = "TOEDIT_FAULT_INJECT"  # tests only: kill workers mid-shard (see _fault_hook)
_FATAL: dict[str, type[Exception]] = {
    "InputError": InputError,
    "TooManyErrors": TooManyErrors,
    "PriorError": PriorError,
    "RunDirError": RunDirError,
}


@dataclass
class Job:
    """What a worker needs to rebuild a run's `RunContext`: configs and fingerprints, never a model."""

    kind: str
    run_dir: str
    score: ScoreConfig
    io: IOConfig
    edit: EditConfig | None
    fingerprint: str
    model: str
    model_fingerprint: str
    dtype: str | None = None
    trust_remote_code: bool = False
    fault: str | None = field(default_factory=lambda: os.environ.get(FAULT_ENV))

    def context(self, device: str | None = None, threads: int | None = None) -> RunContext:
        """Load the prior in this process and check it is the one the run was fingerprinted with."""
        import torch

        if threads:
            torch.set_num_threads(threads)
        if device and device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        prior = load_prior(self.model, device, self.dtype, self.trust_remote_code)
        if prior.fingerprint != self.model_fingerprint:
            raise PriorError(
                f"worker loaded {self.model!r} with fingerprint {prior.fingerprint[:24]}, but the run was "
                f"planned with {self.model_fingerprint[:24]}: pass the same --model to every worker"
            )
        return RunContext(
            self.kind, Path(self.run_dir), prior, self.score, self.io, self.edit, self.fingerprint
        )


@dataclass
class Outcome:
    """Markers of the shards finished by this executor, and the shards that failed every try."""

    markers: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"shard", "attempts", "error"}


class Executor(ABC):
    """Runs shards to completion; subclasses differ only in where `process_shard` runs."""

    def __init__(self, max_retries: int = 2):
        self.max_retries = max_retries

    @abstractmethod
    def run(
        self, shards: Sequence[Shard], job: Job, on_progress: ProgressFn | None, errors_before: int = 0
    ) -> Outcome: ...

    def _should_retry(
        self, outcome: Outcome, shard: Shard, attempts: int, error: str, detail: str | None = None
    ) -> bool:
        """Record a failed attempt: True if the shard gets another try, else it joins `outcome.failed`."""
        if attempts <= self.max_retries:
            log.warning("shard %s failed (attempt %d), retrying: %s", shard.name, attempts, error)
            return True
        log.error("shard %s failed %d times, giving up: %s", shard.name, attempts, error)
        failure = {"shard": shard.name, "attempts": attempts, "error": error}
        outcome.failed.append(failure | ({"traceback": detail} if detail else {}))
        return False


def fatal_error(name: str, message: str) -> Exception | None:
    """The exception to re-raise in the driver for an error that a retry cannot fix, else None."""
    cls = _FATAL.get(name)
    return cls(message) if cls else None


def _fault_hook(job: Job, shard: Shard) -> Callable[[], None]:
    """Test hook (`TOEDIT_FAULT_INJECT`, comma-separated): `<shard>@<flag file>` kills the attempt at <shard>
    that finds no flag file (creating it first, so only one attempt dies); `<shard>` alone kills every attempt.
    The worker dies with os._exit(9) after the shard's first batch, leaving its temp files behind."""
    flags = [
        flag
        for name, _, flag in (f.partition("@") for f in (job.fault or "").split(","))
        if name == shard.name
    ]
    if not flags:
        return lambda: None

    def hook() -> None:
        flag = flags[0]
        if flag and os.path.exists(flag):
            return
        if flag:
            Path(flag).touch()
        os._exit(9)

    return hook


def run_shard(ctx: RunContext, job: Job, shard: Shard, errors_before: int, report: ProgressFn | None):
    """One attempt at one shard inside a worker (process or actor)."""
    hook = _fault_hook(job, shard)

    def progress(records: int, tokens: int) -> None:
        if report is not None:
            report(records, tokens)
        hook()

    ctx.errors_seen = errors_before
    ctx.on_progress = progress
    return process_shard(shard, ctx)


def remove_temp_files(run_dir: Path, pid: int) -> None:
    """Delete the temp files a dead worker left (its outputs are only ever renamed into place whole)."""
    for path in run_dir.glob(f"*/*.tmp-{pid}"):
        path.unlink(missing_ok=True)


def finished_marker(job: Job, shard: Shard) -> dict[str, Any] | None:
    """The shard's marker if an attempt completed it (a worker can die after writing it)."""
    marker = read_json(Path(job.run_dir) / "done" / f"{shard.name}.json")
    return marker if marker is not None and marker.get("fingerprint") == job.fingerprint else None


def default_threads(workers: int) -> int:
    """Split this machine's cores evenly between workers (at least one thread each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


class InProcessExecutor(Executor):
    """Shards one after another in this process, with the prior already loaded (`--workers 1`)."""

    def __init__(self, ctx: RunContext, max_retries: int = 2):
        super().__init__(max_retries)
        self.ctx = ctx

    def run(self, shards, job, on_progress, errors_before=0):
        outcome = Outcome()
        errors = errors_before
        for shard in shards:
            attempts = 0
            while True:
                attempts += 1
                done = [0, 0]

                def progress(records: int, tokens: int, done=done) -> None:
                    done[0] += records
                    done[1] += tokens
                    if on_progress:
                        on_progress(records, tokens)

                self.ctx.errors_seen, self.ctx.on_progress = errors, progress
                try:
                    marker = process_shard(shard, self.ctx)
                except (InputError, TooManyErrors, KeyboardInterrupt):
                    raise
                except Exception as exc:  # anything else may be transient (e.g. out of memory): retry
                    if on_progress:
                        on_progress(-done[0], -done[1])
                    error = f"{type(exc).__name__}: {exc}"
                    if self._should_retry(outcome, shard, attempts, error, traceback.format_exc()):
                        continue
                    break
                outcome.markers.append(marker)
                errors += marker["stats"]["n_errors"]
                break
        return outcome


def parse_devices(devices: str | Sequence[str] | None) -> list[str]:
    """GPU ids ("0,1,3") -> one torch device string per worker (["cuda:0", "cuda:1", "cuda:3"])."""
    if devices is None or devices == "":
        return []
    items = devices.split(",") if isinstance(devices, str) else [str(d) for d in devices]
    out = []
    for item in (i.strip() for i in items):
        if not item.isdigit():
            raise ValueError(f"GPU ids must be integers such as 0,1,2,3, got {item!r}")
        out.append(f"cuda:{item}")
    if len(set(out)) != len(out):
        raise ValueError(f"a GPU is listed twice in {devices!r}")
    return out
