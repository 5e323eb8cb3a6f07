"""The run-directory layout: every path a run writes, and the checks that keep them inside RUN_DIR.

```
RUN_DIR/
  manifest.json           kind, fingerprint, settings, model, inputs (with content hashes), versions
  data/<shard><suffix>    edited records (edit runs), mirroring the input shard's format
  scores/<shard>.parquet  per-record stats, token ids and log-probs (+ top-k, spans when asked for)
  done/<shard>.json       completion marker (fingerprint, input hash, stats, size and sha256 of each output),
                          written last; a shard is done only while its outputs still match it
  errors/<shard>.jsonl    bad records of the shard; errors.jsonl merges them in shard order
  failed/<shard>.json     a shard that failed every retry (removed when a later try succeeds)
  stdin.jsonl             the spooled standard input of a `-` run (read once, hashed, then resumable)
  stats.json              merged counts and histograms (per round with --rounds N)
  report.md               `toedit report`
  .lock, .lock-rank-N     advisory locks naming their holder (one writer per RUN_DIR, or per rank)
```
Nothing else builds these paths, and none of them may lead outside RUN_DIR or into an input
(`check_confined`: symlinks are resolved first).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..io import Shard

SUBDIRS = ("data", "scores", "done", "errors", "failed")
MANIFEST = "manifest.json"
STDIN_SPOOL = "stdin.jsonl"
# edited-output suffixes a shard can have (Shard.out_suffix): (suffix, format, compression)
OUTPUT_SUFFIXES = (
    (".jsonl", "jsonl", None),
    (".jsonl.gz", "jsonl", "gzip"),
    (".jsonl.zst", "jsonl", "zstd"),
    (".parquet", "parquet", None),
    (".txt", "txt", None),
)


class RunDirError(RuntimeError):
    """RUN_DIR holds a different run (or is otherwise unusable)."""


def read_json(path: Path) -> dict[str, Any] | None:
    """A run directory's JSON object file (None if absent); anything else is a RunDirError naming it."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}); remove it or use --overwrite") from exc
    if not isinstance(data, dict):
        raise RunDirError(
            f"{path} holds a JSON {type(data).__name__}, not an object: it is damaged; remove it or use --overwrite"
        )
    return data


class RunLayout:
    """The paths of one run directory, where they may lead, and their clean-up (`RunDir` adds the contents)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    # ------------------------------------------------------------------------------------------- paths
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def stats_path(self) -> Path:
        return self.root / "stats.json"

    @property
    def errors_path(self) -> Path:
        return self.root / "errors.jsonl"

    @property
    def report_path(self) -> Path:
        return self.root / "report.md"

    @property
    def stdin_path(self) -> Path:
        return self.root / STDIN_SPOOL

    def data_path(self, shard: Shard) -> Path:
        return self.root / "data" / f"{shard.name}{shard.out_suffix}"

    def scores_path(self, name: str) -> Path:
        return self.root / "scores" / f"{name}.parquet"

    def marker_path(self, name: str) -> Path:
        return self.root / "done" / f"{name}.json"

    def shard_errors_path(self, name: str) -> Path:
        return self.root / "errors" / f"{name}.jsonl"

    def failed_path(self, name: str) -> Path:
        return self.root / "failed" / f"{name}.json"

    def lock_path(self, rank: int | None = None) -> Path:
        """`.lock` (the whole RUN_DIR), or `.lock-rank-N` (one rank of a launch split by --rank)."""
        return self.root / (".lock" if rank is None else f".lock-rank-{rank}")

    def output_names(self, shard: Shard) -> tuple[str, ...]:
        """File names a shard's outputs have in the subdirectories (temp files add `.tmp-<pid>`)."""
        return tuple(p.name for p in self._shard_paths(shard))

    def _shard_paths(self, shard: Shard) -> tuple[Path, ...]:
        n = shard.name
        return (
            self.data_path(shard),
            self.scores_path(n),
            self.marker_path(n),
            self.shard_errors_path(n),
            self.failed_path(n),
        )

    def shard_outputs(self, shard: Shard, kind: str) -> list[Path]:
        """The files a finished shard leaves (its marker records each one's size and sha256)."""
        data = [self.data_path(shard)] if kind == "edit" else []
        return [*data, self.scores_path(shard.name), self.shard_errors_path(shard.name)]

    # ------------------------------------------------------------------------------------------- safety
    def written_paths(self, shards: list[Shard], rank: int | None = None) -> list[Path]:
        """Every path a run over `shards` writes in RUN_DIR (temp files go beside them)."""
        top = [self.manifest_path, self.stats_path, self.errors_path, self.report_path, self.stdin_path]
        top += [self.lock_path()] + ([self.lock_path(rank)] if rank is not None else [])
        subdirs = [self.root / sub for sub in SUBDIRS]
        return top + subdirs + [p for s in shards for p in self._shard_paths(s)]

    def check_confined(self, shards: list[Shard], rank: int | None = None) -> None:
        """Refuse to run when a path RUN_DIR writes, symlinks resolved, leads outside RUN_DIR or to an input
        (a file, or a directory holding one): `data -> ../in` would overwrite the input."""
        root = self.root.resolve()
        inputs = [Path(s.path).resolve() for s in shards if s.path != "-"]
        for path in self.written_paths(shards, rank):
            real = path.resolve()
            rel = path.relative_to(self.root).as_posix()
            if real != root and root not in real.parents:
                raise RunDirError(
                    f"{self.root}: {rel} leads outside the run directory (to {real}) through a symbolic link; "
                    "a run writes only inside RUN_DIR: remove the link, or put the whole RUN_DIR where you want "
                    "its outputs"
                )
            hit = next((i for i in inputs if real == i or real in i.parents or i in real.parents), None)
            if hit is not None:
                raise RunDirError(
                    f"{self.root}: {rel} leads to the input {hit}; writing it would overwrite the input: "
                    "use another RUN_DIR"
                )

    # -------------------------------------------------------------------------------------- maintenance
    def reset(self) -> None:
        """Remove every output (keeps the directory, its lock files and a spooled stdin)."""
        for sub in SUBDIRS:
            shutil.rmtree(self.root / sub, ignore_errors=True)
        for path in (self.stats_path, self.errors_path, self.report_path):
            path.unlink(missing_ok=True)

    def make_dirs(self) -> None:
        for sub in SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def remove_temp_files(self, pid: int | None = None, shards: list[Shard] | None = None) -> None:
        """Delete temp files (`*.tmp-<pid>`) left by a killed process: those of `pid`, or all of them, or only
        those of `shards` (other launches' shards may be in flight)."""
        mine = None if shards is None else {n for s in shards for n in self.output_names(s)}
        pattern = f"*.tmp-{pid}" if pid is not None else "*.tmp-*"
        for path in [*self.root.glob(f"*/{pattern}"), *self.root.glob(pattern)]:
            if mine is None or path.name.rpartition(".tmp-")[0] in mine:
                path.unlink(missing_ok=True)
