"""The Ray executor: an actor pool (the prior loaded once per actor) pulling shards from the driver's queue.

Actors write the same per-shard outputs and markers as local workers, so RUN_DIR must be on a file system
every node sees. An actor that dies is replaced and its shard retried; `ray.init(address=...)` joins a
cluster, otherwise a local Ray instance is started for the run and shut down after it.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

from ...io import Shard
from .base import Executor, Job, Outcome, fatal_error, finished_marker, remove_temp_files, run_shard

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 600  # an actor that cannot be placed (no free CPU/GPU) would otherwise wait forever


class ShardActor:
    """Holds one prior; `process` runs one attempt at one shard."""

    def __init__(self, job: Job, device: str | None, threads: int):
        self.job = job
        self.ctx = job.context(device, threads)

    def ready(self) -> int:
        return os.getpid()

    def process(self, shard: Shard, errors_before: int) -> dict[str, Any]:
        return run_shard(self.ctx, self.job, shard, errors_before, None)


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--executor ray needs Ray: pip install 'toedit[ray]'") from exc
    return ray


class RayExecutor(Executor):
    """`actors` Ray actors (each with `gpus` GPUs, or CPU threads split evenly), retrying dead actors' shards."""

    def __init__(self, actors: int = 2, address: str | None = None, gpus: float = 0, max_retries: int = 2):
        super().__init__(max_retries)
        self.actors, self.address, self.gpus = actors, address, gpus

    def run(self, shards, job, on_progress, errors_before=0):
        ray = _import_ray()
        started = not ray.is_initialized()
        if started:
            if self.address:
                ray.init(address=self.address)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
        try:
            return self._run(ray, shards, job, on_progress, errors_before)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, shards, job, on_progress, errors_before) -> Outcome:
        outcome = Outcome()
        n = max(1, min(self.actors, len(shards)))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = max(1, cpus // n)
        device = "cuda" if self.gpus else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES for each GPU actor
        remote = ray.remote(num_cpus=1, num_gpus=self.gpus, max_restarts=0)(ShardActor)

        def start() -> tuple[Any, int]:
            actor = remote.remote(job, device, threads)
            try:
                pid = ray.get(actor.ready.remote(), timeout=READY_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError as exc:
                raise RuntimeError(
                    f"a Ray actor was not ready within {READY_TIMEOUT_S} s: does the cluster have "
                    f"{n} x (1 CPU, {self.gpus} GPU) free?"
                ) from exc
            except ray.exceptions.RayActorError as exc:
                cause = exc.__cause__ or exc
                raise fatal_error(type(cause).__name__, str(cause)) or RuntimeError(
                    f"a Ray actor failed to load the prior: {exc}"
                ) from exc
            return actor, pid

        idle = [start() for _ in range(n)]
        todo: deque[tuple[Shard, int]] = deque((s, 0) for s in shards)
        running: dict[Any, tuple[Any, int, Shard, int]] = {}
        errors = errors_before
        try:
            while todo or running:
                while idle and todo:
                    (actor, pid), (shard, attempts) = idle.pop(), todo.popleft()
                    running[actor.process.remote(shard, errors)] = (actor, pid, shard, attempts + 1)
                [ref], _ = ray.wait(list(running), num_returns=1)
                actor, pid, shard, attempts = running.pop(ref)
                try:
                    marker = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    remove_temp_files(Path(job.run_dir), pid)
                    ray.kill(actor)
                    marker = finished_marker(job, shard)  # it may have died after writing the marker
                    error = f"actor died: {type(exc).__name__}"
                    if marker is None and self._should_retry(outcome, shard, attempts, error, str(exc)):
                        todo.appendleft((shard, attempts))
                    if todo:
                        idle.append(start())
                    if marker is None:
                        continue
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    if (fatal := fatal_error(type(cause).__name__, str(cause))) is not None:
                        raise fatal from exc
                    idle.append((actor, pid))
                    error = f"{type(cause).__name__}: {cause}"
                    if self._should_retry(outcome, shard, attempts, error, str(exc)):
                        todo.appendleft((shard, attempts))
                    continue
                else:
                    idle.append((actor, pid))
                outcome.markers.append(marker)
                errors += marker["stats"]["n_errors"]
                if on_progress:
                    on_progress(marker["stats"]["n_records"], marker["stats"]["n_tokens"])
        finally:
            for actor, _ in idle:
                ray.kill(actor)
            for actor, *_ in running.values():
                ray.kill(actor)
        return outcome
