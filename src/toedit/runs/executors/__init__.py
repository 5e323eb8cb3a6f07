"""Executors behind one interface: in this process, local worker processes (one per GPU), or a Ray actor pool."""

from __future__ import annotations

from collections.abc import Sequence

from ...config import RunConfig
from ..shard import RunContext
from .base import Executor, InProcessExecutor, Job, Outcome, default_threads
from .local import LocalExecutor
from .ray_pool import RayExecutor

__all__ = [
    "Executor",
    "InProcessExecutor",
    "Job",
    "LocalExecutor",
    "Outcome",
    "RayExecutor",
    "default_threads",
    "make_executor",
    "parse_devices",
    "uses_workers",
]


def uses_workers(run: RunConfig) -> bool:
    """True if shards run outside this process (each worker then loads its own prior)."""
    return run.executor == "ray" or run.workers > 1 or bool(run.devices)


def make_executor(run: RunConfig, ctx: RunContext | None = None) -> Executor:
    """The executor `run` asks for; the in-process one reuses `ctx` (whose prior is already loaded)."""
    devices = parse_devices(run.devices)
    if run.executor == "ray":
        on_gpu = bool(devices) or (run.device or "").startswith("cuda")
        return RayExecutor(len(devices) or run.workers, run.ray_address, 1 if on_gpu else 0, run.max_retries)
    if uses_workers(run):
        return LocalExecutor(run.workers, devices, run.max_retries)
    if ctx is None:
        raise ValueError("the in-process executor needs the run's context")
    return InProcessExecutor(ctx, run.max_retries)


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
