"""The executor template, the picklable `Job` a worker rebuilds its context from, and the in-process executor.

`Executor.run` owns everything but the launching: the queue of shards, retries, progress bookkeeping (an
attempt that fails is undone), removal of a dead worker's temp files and recovery of a shard whose worker died
right after writing its marker. Subclasses only `start` workers, `submit` one attempt to an idle worker,
`wait` for events (progress, done, failed, died), `replace` a dead worker and `stop` them all. Every worker
calls `process_shard`, so outputs and markers are the same bytes whatever runs them.

Bad input (`InputError`), `--max-errors` (`TooManyErrors`), an unloadable model and a run-directory error are
not worth retrying: they stop the run as they do in a single process.
"""

from __future__ import annotations

import logging
import os
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...io import InputError, Shard
from ...prior import PriorError, load_prior
from ..layout import RunDirError
from ..rundir import RunDir
from ..shard import RunContext, RunSpec, TooManyErrors, process_shard
from . import faults

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (records, tokens) since the last call; negative to undo an attempt
_FATAL: dict[str, type[Exception]] = {
    "InputError": InputError,
    "TooManyErrors": TooManyErrors,
    "PriorError": PriorError,
    "RunDirError": RunDirError,
}


@dataclass(frozen=True)
class Job:
    """What a worker needs to rebuild a run's `RunContext`: the run's spec and how to load its prior, never a
    model."""

    spec: RunSpec
    model: str
    model_fingerprint: str
    dtype: str | None = None
    trust_remote_code: bool = False
    fault: str | None = field(default_factory=faults.current)  # tests only (see `faults`)

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
        return RunContext(self.spec, prior)


@dataclass
class Outcome:
    """Markers of the shards finished by this executor, and the shards that failed every try."""

    markers: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"shard", "attempts", "error"}


# events a worker slot reports to the template
@dataclass
class Progress:
    slot: Any
    records: int
    tokens: int


@dataclass
class Done:
    slot: Any
    marker: dict[str, Any]


@dataclass
class Failed:
    slot: Any
    error: str  # exception class name
    message: str
    detail: str | None = None  # traceback


@dataclass
class Died:
    slot: Any
    reason: str


@dataclass
class _Attempt:
    shard: Shard
    number: int  # 1 for the first try
    records: int = 0
    tokens: int = 0


def fatal_error(name: str, message: str) -> Exception | None:
    """The exception to re-raise in the driver for an error that a retry cannot fix, else None."""
    cls = _FATAL.get(name)
    return cls(message) if cls else None


class Executor(ABC):
    """Runs shards to completion on `size` worker slots (see the module docstring for who does what)."""

    size = 1

    def __init__(self, max_retries: int = 2):
        self.max_retries = max_retries

    # ---- what subclasses provide -------------------------------------------------------------------
    @abstractmethod
    def start(self, n: int, job: Job) -> list[Any]:
        """Start `n` workers (each loads its own prior) and return their slots, ready for work."""

    @abstractmethod
    def submit(self, slot: Any, shard: Shard, errors_before: int) -> None:
        """Start one attempt at `shard` on an idle slot."""

    @abstractmethod
    def wait(self, busy: list[Any]) -> list[Any]:
        """Block until at least one event (Progress, Done, Failed, Died) and return them."""

    @abstractmethod
    def replace(self, slot: Any) -> Any:
        """Start a worker in place of a dead one (same device) and return its slot."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every worker; an attempt still running is abandoned (its shard stays unfinished)."""

    def pid(self, slot: Any) -> int | None:
        """The process id whose temp files a dead slot leaves behind."""
        return getattr(slot, "pid", None)

    # ---- the template -------------------------------------------------------------------------------
    def run(
        self, shards: Sequence[Shard], job: Job, on_progress: ProgressFn | None, errors_before: int = 0
    ) -> Outcome:
        outcome = Outcome()
        if not shards:
            return outcome
        todo: deque[tuple[Shard, int]] = deque((s, 0) for s in shards)
        running: dict[int, _Attempt] = {}
        slots: dict[int, Any] = {}
        errors = errors_before
        rd = RunDir(job.spec.run_dir) if job.spec.run_dir is not None else None

        def report(records: int, tokens: int) -> None:
            if on_progress and (records or tokens):
                on_progress(records, tokens)

        def retry_or_fail(attempt: _Attempt, error: str, detail: str | None = None) -> None:
            report(-attempt.records, -attempt.tokens)
            name, n = attempt.shard.name, attempt.number
            if n <= self.max_retries:
                log.warning("shard %s failed (attempt %d), retrying: %s", name, n, error)
                todo.appendleft((attempt.shard, n))
                return
            log.error("shard %s failed %d times, giving up: %s", name, n, error)
            failure = {"shard": name, "attempts": n, "error": error}
            outcome.failed.append(failure | ({"traceback": detail} if detail else {}))

        def finish(attempt: _Attempt, marker: dict[str, Any]) -> None:
            nonlocal errors
            stats = marker["stats"]
            report(stats["n_records"] - attempt.records, stats["n_tokens"] - attempt.tokens)
            outcome.markers.append(marker)
            errors += stats["n_errors"]

        def handle(event: Any) -> None:
            key = id(event.slot)
            attempt = running.get(key)
            if isinstance(event, Progress):
                if attempt is not None:
                    attempt.records += event.records
                    attempt.tokens += event.tokens
                report(event.records, event.tokens)
            elif isinstance(event, Done):
                running.pop(key)
                finish(attempt, event.marker)
                idle.append(event.slot)
            elif isinstance(event, Failed):
                running.pop(key)
                idle.append(event.slot)
                if (exc := fatal_error(event.error, event.message)) is not None:
                    raise exc
                retry_or_fail(attempt, f"{event.error}: {event.message}", event.detail)
            elif isinstance(event, Died):
                running.pop(key, None)
                slots.pop(key, None)
                if event.slot in idle:
                    idle.remove(event.slot)
                if rd is not None and (pid := self.pid(event.slot)) is not None:
                    rd.remove_temp_files(pid=pid)
                if attempt is not None:
                    marker = rd.done_marker(attempt.shard.name, job.spec.fingerprint) if rd else None
                    if marker is not None:  # it died after writing the marker: the shard is done
                        finish(attempt, marker)
                    else:
                        retry_or_fail(attempt, f"worker died ({event.reason})")
                if todo:
                    new = self.replace(event.slot)
                    slots[id(new)] = new
                    idle.append(new)

        self.handle = handle  # subclasses that run attempts inline report progress through it, live
        idle: list[Any] = []
        try:
            idle += self.start(min(self.size, len(shards)), job)
            slots.update({id(s): s for s in idle})
            while todo or running:
                while idle and todo:
                    slot = idle.pop()
                    shard, tries = todo.popleft()
                    running[id(slot)] = _Attempt(shard, tries + 1)
                    self.submit(slot, shard, errors)
                for event in self.wait([slots[k] for k in running]):
                    handle(event)
        finally:
            self.stop()
        return outcome


def run_shard(ctx: RunContext, job: Job, shard: Shard, errors_before: int, report: ProgressFn | None):
    """One attempt at one shard inside a worker (process or actor)."""
    hook = faults.hook(job.fault, shard.name)

    def progress(records: int, tokens: int) -> None:
        if report is not None:
            report(records, tokens)
        hook()

    ctx.errors_seen = errors_before
    ctx.on_progress = progress
    return process_shard(shard, ctx)


def error_event(slot: Any, exc: BaseException) -> Failed:
    return Failed(slot, type(exc).__name__, str(exc), traceback.format_exc())


def default_threads(workers: int) -> int:
    """Split this machine's cores evenly between workers (at least one thread each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


@dataclass(eq=False)
class _Here:
    pid: int


class InProcessExecutor(Executor):
    """Shards one after another in this process, with the prior already loaded (`--workers 1`)."""

    def __init__(self, ctx: RunContext, max_retries: int = 2):
        super().__init__(max_retries)
        self.ctx = ctx
        self._events: list[Any] = []

    def start(self, n, job):
        self._job = job
        return [_Here(os.getpid())]

    def submit(self, slot, shard, errors_before):
        def progress(records: int, tokens: int) -> None:
            self.handle(Progress(slot, records, tokens))

        try:
            marker = run_shard(self.ctx, self._job, shard, errors_before, progress)
        except Exception as exc:
            if fatal_error(type(exc).__name__, str(exc)) is not None:
                raise  # the original exception, traceback included
            self._events = [error_event(slot, exc)]
        else:
            self._events = [Done(slot, marker)]

    def wait(self, busy):
        events, self._events = self._events, []
        return events

    def replace(self, slot):  # pragma: no cover - this process does not die and go on
        return slot

    def stop(self):
        pass
