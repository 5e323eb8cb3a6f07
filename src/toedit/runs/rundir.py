"""`RunDir`: the one owner of a run directory's layout, for writing and for reading.

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
  .lock, .lock-rank-N     advisory locks naming their holder (one writer per RUN_DIR, or per rank)
```
Nothing else builds these paths, and none of them may lead outside RUN_DIR or into an input
(`check_confined`: symlinks are resolved first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..config import EditConfig, IOConfig, RunConfig, ScoreConfig
from ..io import FieldSpec, Shard, ShardWriter, content_hashes, list_shards, write_json_atomic

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
_SECTIONS = {"edit": EditConfig, "score": ScoreConfig, "io": IOConfig, "run": RunConfig}


class RunDirError(RuntimeError):
    """RUN_DIR holds a different run (or is otherwise unusable)."""


class RunLocked(RunDirError):
    """Another live process holds RUN_DIR (or the same rank of it)."""


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


def _manifest_problem(data: dict[str, Any]) -> str | None:
    """What makes a manifest unusable (None if it has the shape `RunDir` reads)."""
    if not isinstance(data.get("fingerprint"), str):
        return "no fingerprint"
    if data.get("kind") not in ("edit", "score"):
        return f"kind {str(data.get('kind'))[:40]!r} is neither edit nor score"
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get("path"), str)
        for i in inputs
    ):
        return "'inputs' is not a list of {name, path} objects"
    for key in ("settings", "model"):
        if not isinstance(data.get(key) or {}, dict):
            return f"{key!r} is not an object"
    if not all(isinstance(v or {}, dict) for v in (data.get("settings") or {}).values()):
        return "a section of 'settings' is not an object"
    return None


def sha256_of(paths: list[Path]) -> dict[Path, str]:
    """sha256 of each file's bytes (cached by path and identity, see toedit.io.hashing)."""
    digests = content_hashes([str(p) for p in paths])
    return {p: digests[str(p)] for p in paths}


def field_spec(io: IOConfig | dict[str, Any]) -> FieldSpec:
    """Where a run's editable text lives (from its IOConfig or the manifest's io settings)."""
    io = io if isinstance(io, dict) else dataclasses.asdict(io)
    roles = tuple(r.strip() for r in str(io.get("roles") or "assistant").split(",") if r.strip())
    return FieldSpec(
        io.get("text_field") or "text",
        io.get("id_field"),
        io.get("messages_field"),
        roles,
        io.get("response_field"),
    )


@dataclass(frozen=True)
class Span:
    """One recorded edit: [start, end) in that round's input text, the old and new token text, p(old)."""

    start: int
    end: int
    old: str
    new: str  # "" for a dropped token
    p: float
    round: int = 0
    candidates: tuple[tuple[str, float], ...] = ()  # the prior's top-k at this position, descending

    @classmethod
    def from_json(cls, raw: list) -> Span:
        # [start, end, old, new, p, round, candidates]; older runs lack round and candidates
        rnd = int(raw[5]) if len(raw) > 5 else 0
        cands = tuple((str(t), float(q)) for t, q in raw[6]) if len(raw) > 6 else ()
        return cls(int(raw[0]), int(raw[1]), str(raw[2]), str(raw[3]), float(raw[4]), rnd, cands)

    @property
    def dropped(self) -> bool:
        return self.new == ""


@dataclass(frozen=True)
class ShardFiles:
    """Where one input shard of a finished run keeps its scores and its texts (edited texts for edit runs)."""

    name: str
    scores: Path
    texts: list[Shard]


class RunDir:
    """A run directory: its paths, manifest, markers, outputs, locks and clean-up."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

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

    # ---------------------------------------------------------------------------------------- manifest
    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest (None if there is none); a damaged one is a RunDirError naming the file."""
        data = read_json(self.manifest_path)
        if data is not None and (problem := _manifest_problem(data)) is not None:
            raise RunDirError(
                f"{self.manifest_path} is not a toedit manifest ({problem}): the run directory is damaged; "
                "rerun its command with --overwrite, or use another RUN_DIR"
            )
        return data

    @property
    def manifest(self) -> dict[str, Any]:
        manifest = self.read_manifest()
        if manifest is None:
            raise RunDirError(f"{self.root} is not a toedit run directory (no {MANIFEST})")
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    def settings(self) -> dict[str, Any]:
        """The run's settings as typed configs: {"edit": EditConfig | None, "score", "io", "run"}
        (keys unknown to this version are ignored, missing ones take their defaults)."""
        raw = self.manifest.get("settings") or {}
        out: dict[str, Any] = {}
        for name, cls in _SECTIONS.items():
            values = raw.get(name)
            if values is None:
                out[name] = None if name == "edit" else cls()
                continue
            known = {f.name for f in dataclasses.fields(cls)}
            out[name] = cls(**{k: v for k, v in values.items() if k in known})
        return out

    def field_spec(self) -> FieldSpec:
        return field_spec((self.manifest.get("settings") or {}).get("io") or {})

    @property
    def kind(self) -> str | None:
        return self.manifest.get("kind")

    def shard_names(self) -> list[str]:
        return [entry["name"] for entry in self.manifest.get("inputs") or []]

    # ----------------------------------------------------------------------------------------- markers
    def marker(self, name: str, fingerprint: str | None = None) -> dict[str, Any] | None:
        """The shard's completion marker, if it is there and (when given) matches `fingerprint`; its outputs
        are not looked at (see `done_marker`)."""
        path = self.marker_path(name)
        marker = read_json(path)
        if marker is None or (fingerprint is not None and marker.get("fingerprint") != fingerprint):
            return None
        if not isinstance(marker.get("stats"), dict):
            raise RunDirError(
                f"{path} is not a completion marker (no stats): remove it and rerun the run's command"
            )
        return marker

    def done_marker(
        self, name: str, fingerprint: str | None = None, deep: bool = False
    ) -> dict[str, Any] | None:
        """The marker of a shard that is really done: it matches `fingerprint` and every output it records is
        there with its recorded size (`deep`: and its sha256)."""
        marker = self.marker(name, fingerprint)
        if marker is None or self.outputs_problem(marker, deep) is not None:
            return None
        return marker

    def is_done(self, name: str, fingerprint: str) -> bool:
        return self.done_marker(name, fingerprint) is not None

    def shard_outputs(self, shard: Shard, kind: str) -> list[Path]:
        """The files a finished shard leaves (its marker records each one's size and sha256)."""
        data = [self.data_path(shard)] if kind == "edit" else []
        return [*data, self.scores_path(shard.name), self.shard_errors_path(shard.name)]

    def describe_outputs(self, paths: list[Path]) -> dict[str, dict[str, Any]]:
        """{path relative to RUN_DIR: {"size", "sha256"}} of freshly written outputs, for their marker."""
        digests = sha256_of(paths)
        return {
            p.relative_to(self.root).as_posix(): {"size": p.stat().st_size, "sha256": digests[p]}
            for p in paths
        }

    def outputs_problem(self, marker: dict[str, Any], deep: bool = False) -> str | None:
        """Why a marker's shard is not done after all (an output missing, resized or, `deep`, changed), or None."""
        outputs = marker.get("outputs")
        if not isinstance(outputs, dict) or not outputs:
            return "its marker records no outputs (written by an older toedit)"
        found: dict[Path, str] = {}
        for rel, info in outputs.items():
            path = self.root / rel
            if not path.is_file():
                return f"{rel} is missing"
            size = path.stat().st_size
            if not isinstance(info, dict) or size != info.get("size"):
                want = info.get("size") if isinstance(info, dict) else "?"
                return f"{rel} has {size:,} bytes where its marker recorded {want}"
            found[path] = str(info.get("sha256"))
        if deep:
            for path, digest in sha256_of(list(found)).items():
                if digest != found[path]:
                    return f"{path.relative_to(self.root).as_posix()} changed after the shard finished (sha256 differs)"
        return None

    def write_marker(self, name: str, marker: dict[str, Any]) -> None:
        write_json_atomic(self.marker_path(name), marker)

    def drop_marker(self, name: str) -> None:
        self.marker_path(name).unlink(missing_ok=True)

    def stale_markers(self) -> dict[str, str]:
        """{shard name: why} of the manifest's shards whose marker claims done while an output disagrees."""
        fp = self.manifest["fingerprint"]
        out = {}
        for name in self.shard_names():
            marker = self.marker(name, fp)
            if marker is not None and (why := self.outputs_problem(marker)) is not None:
                out[name] = why
        return out

    def done_markers(self, fingerprint: str | None = None) -> dict[str, dict[str, Any]]:
        """{shard name: marker} of every finished shard of the manifest (matching the run's fingerprint, with
        every output in place at its recorded size)."""
        fp = fingerprint or self.manifest["fingerprint"]
        return {n: m for n in self.shard_names() if (m := self.done_marker(n, fp)) is not None}

    def failures(self) -> list[dict[str, Any]]:
        return [f for n in self.shard_names() if (f := read_json(self.failed_path(n)))]

    def record_failure(self, failure: dict[str, Any]) -> None:
        write_json_atomic(self.failed_path(failure["shard"]), failure)

    def clear_failure(self, name: str) -> None:
        self.failed_path(name).unlink(missing_ok=True)

    # ---------------------------------------------------------------------------------------- reading
    def scores_files(self) -> list[Path]:
        """scores/ files of the manifest's shards that exist, in shard order."""
        return [p for n in self.shard_names() if (p := self.scores_path(n)).exists()]

    def iter_scores(self, columns: list[str], batch_size: int = 256) -> Iterator[dict[str, Any]]:
        """One dict per record of scores/ (the asked-for columns), in shard and input order."""
        for path in self.scores_files():
            for batch in _batches(path, columns, batch_size):
                cols = batch.to_pydict()
                for i in range(batch.num_rows):
                    yield {c: cols[c][i] for c in columns}

    def has_spans(self) -> bool:
        files = self.scores_files()
        return bool(files) and all("spans" in _schema(p).names for p in files)

    @staticmethod
    def iter_spans(path: Path) -> Iterator[tuple[int, str, int, list[Span]]]:
        """(row, id, line, spans) of every record of one scores file that has a spans column."""
        row = 0
        for batch in _batches(path, ["id", "line", "spans"], 4096):
            cols = batch.to_pydict()
            for doc_id, line, raw in zip(cols["id"], cols["line"], cols["spans"], strict=True):
                try:
                    spans = [Span.from_json(s) for s in (json.loads(raw) if raw else [])]
                except (ValueError, TypeError, IndexError) as exc:
                    raise RunDirError(f"{path} row {row + 1}: its spans are damaged ({exc})") from exc
                yield row, doc_id, int(line), spans
                row += 1

    def edited_shard(self, entry: dict[str, Any]) -> Shard:
        """The shard of edited records the run wrote for one input entry of its manifest."""
        name, fmt = entry["name"], entry.get("format")
        data = self.root / "data"
        found = [(s, f, c) for s, f, c in OUTPUT_SUFFIXES if (data / f"{name}{s}").exists()]
        if len(found) > 1:  # cannot happen for one run; prefer the input's own format
            found = [x for x in found if x[1] == fmt or (fmt == "datasets" and x[1] == "parquet")] or found
        if not found:
            raise RunDirError(f"{self.root}: no edited records for shard {name!r} under data/")
        suffix, f, c = found[0]
        return Shard(str(data / f"{name}{suffix}"), name, f, c)

    def shard_files(self) -> list[ShardFiles]:
        """Per input shard of a finished run: its scores file and the shard(s) holding its texts."""
        manifest = self.manifest
        fp = manifest.get("fingerprint")
        out = []
        for entry in manifest.get("inputs") or []:
            marker = self.marker(entry["name"], fp)
            why = "no completion marker" if marker is None else self.outputs_problem(marker)
            if why is not None:
                raise RunDirError(
                    f"{self.root}: shard {entry['name']!r} is not finished ({why}); rerun the run's command first"
                )
            if manifest.get("kind") == "edit":
                texts = [self.edited_shard(entry)]
            elif entry["path"] == "-":
                texts = [Shard(str(self.stdin_path), entry["name"], "jsonl")]
            else:
                texts = list_shards([entry["path"]])
            out.append(ShardFiles(entry["name"], self.scores_path(entry["name"]), texts))
        if not out:
            raise RunDirError(f"{self.root} has no input shards")
        return out

    def read_stats(self) -> dict[str, Any] | None:
        return read_json(self.stats_path)

    def write_report(self, text: str) -> None:
        """report.md via a temp file and a rename: a kill never leaves a partial report over a good one."""
        with ShardWriter(self.report_path, "txt") as out:
            out.write({"text": text})

    # ------------------------------------------------------------------------------------------- safety
    def written_paths(self, shards: list[Shard], rank: int | None = None) -> list[Path]:
        """Every path a run over `shards` writes in RUN_DIR (temp files go beside them)."""
        top = [self.manifest_path, self.stats_path, self.errors_path, self.report_path, self.stdin_path]
        top += [self.root / ".lock"] + ([self.root / f".lock-rank-{rank}"] if rank is not None else [])
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

    # --------------------------------------------------------------------------------------------- lock
    @contextlib.contextmanager
    def lock(self, rank: int | None = None) -> Iterator[None]:
        """Hold RUN_DIR for this process: exclusively, or shared with the other ranks plus this rank's own
        lock. Another live holder makes this raise RunLocked naming it; a dead holder's lock is free."""
        self.root.mkdir(parents=True, exist_ok=True)
        held: list[Any] = []
        try:
            main = self._acquire(self.root / ".lock", exclusive=rank is None)
            held.append(main)
            if rank is not None:
                held.append(self._acquire(self.root / f".lock-rank-{rank}", exclusive=True))
            _write_holder(held[-1], rank)
            yield
        finally:
            for fh in reversed(held):
                with contextlib.suppress(OSError):
                    fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()

    def _acquire(self, path: Path, exclusive: bool):
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until the run ends)
        try:
            fcntl.flock(fh, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RunLocked(
                f"{self.root} is in use by {self._holders(path)}; wait for it to finish, or use another "
                "RUN_DIR (ranks of one run: pass distinct --rank values)"
            ) from None
        return fh

    def _holders(self, path: Path) -> str:
        """Who holds a lock, from the holder lines the lock files carry."""
        files = [path] if path.name != ".lock" else [path, *sorted(self.root.glob(".lock-rank-*"))]
        who = []
        for f in files:
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(f.read_text(encoding="utf-8") or "{}")
                if info and _alive_here(info):
                    who.append(_describe(info))
        return "; ".join(who) or "another process"


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise RunDirError(f"{path} is not a readable parquet file ({exc}); rerun the run's command") from exc


def _batches(path: Path, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """A scores file's batches; a damaged file is a RunDirError naming it."""
    try:
        yield from pq.ParquetFile(path).iter_batches(columns=columns, batch_size=batch_size)
    except (pa.ArrowException, OSError) as exc:
        raise RunDirError(f"{path} is not a readable parquet file ({exc}); rerun the run's command") from exc


def _write_holder(fh, rank: int | None) -> None:
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
