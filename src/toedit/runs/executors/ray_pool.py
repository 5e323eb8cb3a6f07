"""The Ray executor: an actor pool (the prior loaded once per actor) pulling shards from the driver's queue.

Actors write the same per-shard outputs and markers as local workers, so RUN_DIR must be on a file system
every node sees. `ray.init(address=...)` joins a cluster, otherwise a local Ray instance is started for the
run and shut down after it. Queue, retries and clean-up are the template's (`base.Executor`); a dead actor is
replaced only while work is queued.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...io import Shard
from ...optional import optional_import
from .base import Died, Done, Executor, Failed, Job, fatal_error, run_shard

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


@dataclass(eq=False)
class _Actor:
    handle: Any
    pid: int
    ref: Any = None  # the running attempt's object ref


class RayExecutor(Executor):
    """`actors` Ray actors (each with `gpus` GPUs, or CPU threads split evenly)."""

    def __init__(self, actors: int = 2, address: str | None = None, gpus: float = 0, max_retries: int = 2):
        super().__init__(max_retries)
        self.size, self.address, self.gpus = actors, address, gpus
        self.actors: list[_Actor] = []
        self.started_ray = False

    def start(self, n: int, job: Job) -> list[_Actor]:
        ray = self.ray = optional_import("ray", "ray", "--executor ray")
        if not ray.is_initialized():
            self.started_ray = True
            if self.address:
                ray.init(address=self.address)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.job, self.threads = job, max(1, cpus // max(1, n))
        self.remote = ray.remote(num_cpus=1, num_gpus=self.gpus, max_restarts=0)(ShardActor)
        return [self._start_one(n) for _ in range(max(1, n))]

    def _start_one(self, n: int) -> _Actor:
        ray = self.ray
        device = "cuda" if self.gpus else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES for each GPU actor
        handle = self.remote.remote(self.job, device, self.threads)
        try:
            pid = ray.get(handle.ready.remote(), timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as exc:
            ray.kill(handle)
            raise RuntimeError(
                f"a Ray actor was not ready within {READY_TIMEOUT_S} s: does the cluster have "
                f"{n} x (1 CPU, {self.gpus} GPU) free?"
            ) from exc
        except ray.exceptions.RayActorError as exc:
            cause = exc.__cause__ or exc
            raise fatal_error(type(cause).__name__, str(cause)) or RuntimeError(
                f"a Ray actor failed to load the prior: {exc}"
            ) from exc
        actor = _Actor(handle, pid)
        self.actors.append(actor)
        return actor

    def submit(self, slot: _Actor, shard: Shard, errors_before: int) -> None:
        slot.ref = slot.handle.process.remote(shard, errors_before)

    def wait(self, busy: list[_Actor]) -> list[Any]:
        ray = self.ray
        by_ref = {a.ref: a for a in busy}
        [ref], _ = ray.wait(list(by_ref), num_returns=1)
        actor = by_ref[ref]
        actor.ref = None
        try:
            return [Done(actor, ray.get(ref))]
        except ray.exceptions.RayActorError as exc:
            ray.kill(actor.handle)
            self.actors.remove(actor)
            return [Died(actor, f"actor died: {type(exc).__name__}")]
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return [Failed(actor, type(cause).__name__, str(cause), str(exc))]

    def replace(self, slot: _Actor) -> _Actor:
        return self._start_one(self.size)

    def stop(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor.handle)
        self.actors = []
        if self.started_ray and getattr(self, "ray", None) is not None:
            self.ray.shutdown()
            self.started_ray = False
