"""The local executor: N spawned worker processes, one prior each; with devices, one worker per GPU.

Each worker talks to the driver over its own pair of pipes (no lock shared between processes, so a worker
killed mid-message cannot block the others), and the driver waits on the pipes and the processes' sentinels
together, so a death is noticed at once. Queue, retries and clean-up are the template's (`base.Executor`).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from ..rundir import RunDir
from .base import Died, Done, Executor, Failed, Job, Progress, default_threads, fatal_error, run_shard

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


@dataclass(eq=False)
class _Worker:
    proc: Any
    inbox: Any  # driver -> worker
    outbox: Any  # worker -> driver
    device: str | None
    pid: int | None = None  # set once the worker has loaded its prior


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
        self.size = len(self.devices) if self.devices else workers
        self.threads = threads or default_threads(self.size)
        self.workers: list[_Worker] = []

    def _spawn(self, device: str | None) -> _Worker:
        import multiprocessing

        mp = multiprocessing.get_context("spawn")
        inbox_r, inbox_w = mp.Pipe(duplex=False)
        outbox_r, outbox_w = mp.Pipe(duplex=False)
        proc = mp.Process(
            target=_worker_main,
            args=(self.job, device, self.threads, inbox_r, outbox_w),
            name="toedit-worker",
            daemon=True,
        )
        proc.start()
        inbox_r.close()  # the child holds its own copies
        outbox_w.close()
        worker = _Worker(proc, inbox_w, outbox_r, device)
        self.workers.append(worker)
        return worker

    def _ready(self, worker: _Worker) -> _Worker:
        """Wait for the worker to load its prior; a failure to load stops the run."""
        try:
            msg = worker.outbox.recv()
        except (EOFError, OSError):
            worker.proc.join()
            raise RuntimeError(
                f"a toedit worker died while loading the prior (exit code {worker.proc.exitcode})"
            ) from None
        if msg[0] == "init_failed":
            raise fatal_error(*msg[1:]) or RuntimeError(f"a toedit worker failed to start: {msg[2]}")
        worker.pid = msg[1]
        return worker

    def start(self, n: int, job: Job) -> list[_Worker]:
        self.job = job
        devices = self.devices or [None] * self.size
        started = [self._spawn(device) for device in devices[: max(1, n)]]
        return [self._ready(w) for w in started]

    def submit(self, slot: _Worker, shard, errors_before: int) -> None:
        with contextlib.suppress(OSError):  # it just died: its sentinel says so next
            slot.inbox.send((shard, errors_before))

    def wait(self, busy: list[_Worker]) -> list[Any]:
        by_handle = {w.outbox: w for w in self.workers} | {w.proc.sentinel: w for w in self.workers}
        events: list[Any] = []
        for ready in wait(list(by_handle)):
            w = by_handle[ready]
            if w not in self.workers:
                continue
            if ready is w.outbox:
                try:
                    msg = w.outbox.recv()
                except (EOFError, OSError):  # the pipe closed: the process is ending
                    events.append(self._bury(w))
                    continue
                kind, *rest = msg
                if kind == "progress":
                    events.append(Progress(w, *rest))
                elif kind == "done":
                    events.append(Done(w, rest[0]))
                elif kind == "error":
                    events.append(Failed(w, *rest))
            elif not w.outbox.poll():  # dead, and every message it sent has been read
                events.append(self._bury(w))
        return events

    def _bury(self, w: _Worker) -> Died:
        w.proc.join()
        self.workers.remove(w)
        w.inbox.close()
        w.outbox.close()
        return Died(w, f"exit code {w.proc.exitcode}")

    def replace(self, slot: _Worker) -> _Worker:
        return self._ready(self._spawn(slot.device))

    def stop(self) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.inbox.send(None)
        for w in self.workers:
            w.proc.join(timeout=STOP_TIMEOUT_S)
            if w.proc.is_alive():  # still busy (the run was interrupted): its shard stays unfinished
                w.proc.kill()
                w.proc.join()
            if w.pid is not None and self.job.spec.run_dir is not None:
                RunDir(self.job.spec.run_dir).remove_temp_files(pid=w.pid)
            w.inbox.close()
            w.outbox.close()
        self.workers = []
