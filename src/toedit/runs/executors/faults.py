"""Test-only fault injection: kill a worker mid-shard to prove that retries and resume lose nothing.

No flag, config key or environment variable reaches it: a test turns it on around a run with `injected`, in
the driver process; the `Job` carries the setting to the workers it starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

_active: str | None = None


def current() -> str | None:
    """The faults injected now (None outside `injected`)."""
    return _active


@contextlib.contextmanager
def injected(faults: str | None) -> Iterator[None]:
    """Inject `faults` (comma-separated) into the runs started inside: `<shard>@<flag file>` kills the attempt
    at <shard> that finds no flag file (creating it first, so only one attempt dies); `<shard>` alone kills
    every attempt."""
    global _active
    before, _active = _active, faults
    try:
        yield
    finally:
        _active = before


def hook(faults: str | None, shard: str) -> Callable[[], None]:
    """What a worker calls after each batch of `shard`: nothing, or os._exit(9) (its temp files stay behind)."""
    flags = [flag for name, _, flag in (f.partition("@") for f in (faults or "").split(",")) if name == shard]
    if not flags:
        return lambda: None

    def kill() -> None:
        flag = flags[0]
        if flag and os.path.exists(flag):
            return
        if flag:
            Path(flag).touch()
        os._exit(9)

    return kill
