"""Content identity: a streaming sha256 of a file (or a directory's files), cached by path, size and times.

The cache is one small JSON file under the toedit cache dir. An entry is reused only while the file's size,
mtime, ctime, inode and device are unchanged (ctime cannot be set back by `touch` or `cp -p`, so an edit that
keeps size and mtime is still seen). Files changed less than RACY_NS before hashing are not cached: a second
write within one timestamp tick would be invisible. Writers merge under an advisory lock and replace the file
atomically, so concurrent processes never corrupt it (a reader without the lock sees the old or the new one);
a process keeps a copy in memory and writes its new entries in batches (see _Memory).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CACHE_NAME = "hashes.json"
MAX_ENTRIES = 10_000  # oldest entries are dropped past this: a cache, not a registry
RACY_NS = 2_000_000_000
FLUSH_EVERY_S = 1.0
CHUNK = 1 << 20
_VERSION = 1


def cache_root() -> Path:
    """The toedit cache dir: $TOEDIT_CACHE, else ~/.cache/toedit."""
    return Path(os.environ.get("TOEDIT_CACHE", Path.home() / ".cache" / "toedit"))


def cache_file() -> Path:
    return cache_root() / CACHE_NAME


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _load(path: Path) -> dict[str, Any]:
    """The cached entries; an unreadable or foreign file is an empty cache (it is rebuilt on the next store)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != _VERSION
        or not isinstance(data.get("files"), dict)
    ):
        return {}
    return data["files"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `<path>.lock` (POSIX flock; elsewhere no lock: atomic replace only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _store(path: Path, new: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, ...]]:
    """Merge `new` entries into the cache file under the lock and replace it atomically; returns the merged
    entries and the identity of the file written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        files = _load(path)
        files.update(new)
        if len(files) > MAX_ENTRIES:
            keep = sorted(files.items(), key=lambda kv: kv[1].get("stored", 0))[-MAX_ENTRIES:]
            files = dict(keep)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps({"version": _VERSION, "files": files}), encoding="utf-8")
            ident = _file_ident(tmp)  # the inode and times survive the rename
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return files, ident


def _file_ident(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


class _Memory:
    """This process's copy of the cache: the file is re-read only when it changed, and new entries are
    written in batches (each content_hashes call of several files, at most once a second for single files,
    and at exit), so hashing N inputs one by one does not rewrite the file N times."""

    path: Path | None = None
    ident: tuple[int, ...] | None = None
    files: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    flushed_at = float("-inf")


_MEM = _Memory()


def _entries(path: Path) -> dict[str, Any]:
    if _MEM.path != path:
        flush()
        _MEM.path, _MEM.ident, _MEM.files = path, None, {}
    try:
        ident: tuple[int, ...] | None = _file_ident(path)
    except OSError:
        ident = None
    if ident != _MEM.ident:
        _MEM.files, _MEM.ident = (_load(path) if ident else {}), ident
    return _MEM.files


def flush() -> None:
    """Write this process's new cache entries now (also run at exit); an unwritable cache is left alone."""
    if not _MEM.pending or _MEM.path is None:
        return
    pending, _MEM.pending = _MEM.pending, {}
    _MEM.flushed_at = time.monotonic()
    with contextlib.suppress(OSError):  # a read-only cache dir only costs re-hashing next time
        _MEM.files, _MEM.ident = _store(_MEM.path, pending)


atexit.register(flush)


def _files(root: str) -> list[str]:
    """Every file under a directory (symlinks followed, each real directory entered once), sorted."""
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        out += [os.path.join(dirpath, f) for f in filenames]
    return sorted(out)


def content_hashes(paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
    """sha256 hex digest of each file's bytes, keyed by the path as given (the cache is read and written once).

    A directory's digest hashes its files' relative paths and digests, so it changes when any file's bytes,
    name or presence changes, and not when the directory is copied elsewhere."""
    paths = [os.fspath(p) for p in paths]
    plan: dict[str, list[tuple[str, str]] | None] = {}  # path -> None (a file) or [(rel, file path)]
    wanted: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            members = [(os.path.relpath(f, p).replace(os.sep, "/"), f) for f in _files(p)]
            plan[p] = members
            wanted += [f for _, f in members]
        else:
            plan[p] = None
            wanted.append(p)
    digests = _file_hashes(wanted)
    out = {}
    for p, members in plan.items():
        if members is None:
            out[p] = digests[p]
            continue
        h = hashlib.sha256()
        for rel, f in members:
            h.update(f"{rel}\0{digests[f]}\n".encode("utf-8", "surrogateescape"))
        out[p] = h.hexdigest()
    return out


def _file_hashes(paths: list[str]) -> dict[str, str]:
    cached = _entries(cache_file())
    out: dict[str, str] = {}
    for p in paths:
        if p in out:
            continue
        key = os.path.realpath(p)
        before = os.stat(p)
        entry = _MEM.pending.get(key) or cached.get(key)
        if entry is not None and entry.get("id") == _identity(before):
            out[p] = entry["sha256"]
            continue
        started = time.time_ns()
        digest = _sha256_file(p)
        out[p] = digest
        after = os.stat(p)
        if _identity(after) == _identity(before) and started - after.st_mtime_ns > RACY_NS:
            _MEM.pending[key] = {"id": _identity(after), "sha256": digest, "stored": time.time()}
    if _MEM.pending and (len(paths) > 1 or time.monotonic() - _MEM.flushed_at > FLUSH_EVERY_S):
        flush()
    return out


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes, or of a directory's files (see content_hashes); cached."""
    return content_hashes([path])[os.fspath(path)]
