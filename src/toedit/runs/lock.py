"""Advisory locks on a run directory: one writer per RUN_DIR, or one per rank of a launch split by --rank.

Each lock file carries a holder line (pid, host, rank, start time, command) so a refusal can say who holds it;
a holder known to be dead (same host, no such process) does not count.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .layout import RunDirError, RunLayout


class RunLocked(RunDirError):
    """Another live process holds RUN_DIR (or the same rank of it)."""


@contextlib.contextmanager
def hold(layout: RunLayout, rank: int | None = None) -> Iterator[None]:
    """Hold RUN_DIR for this process: exclusively, or shared with the other ranks plus this rank's own lock.
    Another live holder makes this raise RunLocked naming it; a dead holder's lock is free."""
    layout.root.mkdir(parents=True, exist_ok=True)
    held: list[IO[str]] = []
    try:
        held.append(_acquire(layout, layout.lock_path(), exclusive=rank is None))
        if rank is not None:
            held.append(_acquire(layout, layout.lock_path(rank), exclusive=True))
        _write_holder(held[-1], rank)
        yield
    finally:
        for fh in reversed(held):
            with contextlib.suppress(OSError):
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


def _acquire(layout: RunLayout, path: Path, exclusive: bool) -> IO[str]:
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until the run ends)
    try:
        fcntl.flock(fh, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise RunLocked(
            f"{layout.root} is in use by {_holders(layout, path)}; wait for it to finish, or use another "
            "RUN_DIR (ranks of one run: pass distinct --rank values)"
        ) from None
    return fh


def _holders(layout: RunLayout, path: Path) -> str:
    """Who holds a lock, from the holder lines the lock files carry."""
    files = [path] if path != layout.lock_path() else [path, *sorted(layout.root.glob(".lock-rank-*"))]
    who = []
    for f in files:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(f.read_text(encoding="utf-8") or "{}")
            if info and _alive_here(info):
                who.append(_describe(info))
    return "; ".join(who) or "another process"


def _write_holder(fh: IO[str], rank: int | None) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "rank": rank,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
    }
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps(info))
    fh.flush()


def _alive_here(info: dict[str, Any]) -> bool:
    """False only for a holder known to be dead (same host, no such process)."""
    if info.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def _describe(info: dict[str, Any]) -> str:
    rank = f" (rank {info['rank']})" if info.get("rank") is not None else ""
    return f"pid {info.get('pid')} on {info.get('host')}{rank} since {info.get('started')}: {info.get('command')}"
