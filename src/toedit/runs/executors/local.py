"""The local executor: N spawned worker processes, one prior each; with devices, one worker per GPU.

Each worker talks to the driver over its own pair of pipes (no lock shared between processes, so a worker
killed mid-message cannot block the others), and the driver waits on the pipes and the processes' sentinels
together, so a death is noticed at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from ...io import Shard
from .base import (
    Executor,
    Job,
    Outcome,
    default_threads,
    fatal_error,
    finished_marker,
    remove_temp_files,
    run_shard,
)

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10


def _worker_main(job: Job, device: str | None, threads: int, inbox, outbox) -> None:
    """Body of a spawned worker: load the prior once, then process the shards sent to it until None."""
    try:
        ctx = job.context(device, threads)
    except BaseException as exc:
        outbox.send(("init_failed", type(exc).__name__, str(exc)))
        return
    outbox.send(("ready", os.getpid()))
    while (item := inbox.recv()) is not None:
        shard, errors_before = item
        try:
            marker = run_shard(ctx, job, shard, errors_before, lambda r, t: outbox.send(("progress", r, t)))
        except BaseException as exc:
            outbox.send(("error", type(exc).__name__, str(exc), traceback.format_exc()))
        else:
            outbox.send(("done", marker))


@dataclass
class _Worker:
    proc: Any
    inbox: Any  # driver -> worker
    outbox: Any  # worker -> driver
    device: str | None
    pid: int | None = None  # set once the worker has loaded its prior
    task: tuple[Shard, int] | None = None  # (shard, attempts including this one)
    progress: list[int] = field(default_factory=lambda: [0, 0])  # this attempt's (records, tokens)


class LocalExecutor(Executor):
    """N spawned worker processes on this machine (`spawn`: safe with CUDA and threads), one prior each."""

    def __init__(
        self,
        workers: int = 2,
        devices: Sequence[str] | None = None,
        max_retries: int = 2,
        threads: int | None = None,
    ):
        super().__init__(max_retries)
        self.devices = list(devices) if devices else None
        self.workers = len(self.devices) if self.devices else workers
        self.threads = threads or default_threads(self.workers)

    def run(self, shards, job, on_progress, errors_before=0):
        import multiprocessing

        mp = multiprocessing.get_context("spawn")
        outcome = Outcome()
        todo: deque[tuple[Shard, int]] = deque((s, 0) for s in shards)
        workers: list[_Worker] = []
        errors = errors_before
        run_dir = Path(job.run_dir)

        def spawn(device: str | None) -> None:
            inbox_r, inbox_w = mp.Pipe(duplex=False)
            outbox_r, outbox_w = mp.Pipe(duplex=False)
            proc = mp.Process(
                target=_worker_main,
                args=(job, device, self.threads, inbox_r, outbox_w),
                name="toedit-worker",
                daemon=True,
            )
            proc.start()
            inbox_r.close()  # the child holds its own copies
            outbox_w.close()
            workers.append(_Worker(proc, inbox_w, outbox_r, device))

        def end_attempt(w: _Worker) -> tuple[Shard, int]:
            """Forget the worker's current attempt; undo its progress unless the shard completed."""
            task = w.task
            w.task, w.progress = None, [0, 0]
            return task

        def retry_or_fail(w: _Worker, error: str, detail: str | None = None) -> None:
            progress = w.progress
            shard, attempts = end_attempt(w)
            if on_progress and any(progress):
                on_progress(-progress[0], -progress[1])
            if self._should_retry(outcome, shard, attempts, error, detail):
                todo.appendleft((shard, attempts))

        def bury(w: _Worker) -> None:
            """A worker process ended: clean its temp files, settle its shard, replace it if work is left."""
            workers.remove(w)
            w.inbox.close()
            w.outbox.close()
            if w.pid is None:
                raise RuntimeError(
                    f"a toedit worker died while loading the prior (exit code {w.proc.exitcode})"
                )
            remove_temp_files(run_dir, w.pid)
            if w.task is not None:
                if (marker := finished_marker(job, w.task[0])) is not None:
                    outcome.markers.append(marker)  # it died after writing the marker
                    end_attempt(w)
                else:
                    retry_or_fail(w, f"worker died (exit code {w.proc.exitcode})")
            if todo:
                spawn(w.device)

        def handle(w: _Worker, msg: tuple) -> None:
            nonlocal errors
            kind, *rest = msg
            if kind == "init_failed":
                raise fatal_error(*rest) or RuntimeError(f"a toedit worker failed to start: {rest[1]}")
            if kind == "ready":
                w.pid = rest[0]
            elif kind == "progress":
                w.progress[0] += rest[0]
                w.progress[1] += rest[1]
                if on_progress:
                    on_progress(*rest)
            elif kind == "done":
                outcome.markers.append(rest[0])
                errors += rest[0]["stats"]["n_errors"]
                end_attempt(w)
            elif kind == "error":
                name, message, tb = rest
                if (exc := fatal_error(name, message)) is not None:
                    raise exc
                retry_or_fail(w, f"{name}: {message}", tb)

        devices = self.devices or [None] * self.workers
        for device in devices[: max(1, min(self.workers, len(shards)))]:
            spawn(device)
        try:
            while todo or any(w.task for w in workers):
                for w in workers:
                    if w.pid is not None and w.task is None and todo:
                        shard, attempts = todo.popleft()
                        w.task = (shard, attempts + 1)
                        with contextlib.suppress(OSError):  # it just died: its sentinel says so next
                            w.inbox.send((shard, errors))
                by_handle = {w.outbox: w for w in workers} | {w.proc.sentinel: w for w in workers}
                for ready in wait(list(by_handle)):
                    w = by_handle[ready]
                    if w not in workers:
                        continue
                    if ready is w.outbox:
                        try:
                            msg = w.outbox.recv()
                        except (EOFError, OSError):  # the pipe closed: the process is ending
                            w.proc.join()
                            bury(w)
                            continue
                        handle(w, msg)
                    elif not w.outbox.poll():  # dead, and every message it sent has been read
                        w.proc.join()
                        bury(w)
        finally:
            self._stop(workers, run_dir)
        return outcome

    @staticmethod
    def _stop(workers: list[_Worker], run_dir: Path) -> None:
        for w in workers:
            with contextlib.suppress(OSError):
                w.inbox.send(None)
        for w in workers:
            w.proc.join(timeout=STOP_TIMEOUT_S)
            if w.proc.is_alive():  # still busy (the run was interrupted): its shard stays unfinished
                w.proc.kill()
                w.proc.join()
            if w.pid is not None:
                remove_temp_files(run_dir, w.pid)
            w.inbox.close()
            w.outbox.close()
