"""`RunDir`: the one owner of a run directory, for writing and for reading.

The paths are `RunLayout`'s (runs/layout.py, which draws the tree); this class adds what they hold: the
manifest (checked by runs/schema.py), the completion markers (runs/markers.py), the scores files
(runs/scorefiles.py), the edited records and the lock (runs/lock.py). Nothing else opens these files.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import Fence, FieldSpec, Shard, ShardWriter, list_shards, write_json_atomic
from . import markers, scorefiles
from .layout import MANIFEST, OUTPUT_SUFFIXES, RunDirError, RunLayout, read_json
from .lock import hold
from .schema import field_spec, manifest_problem, typed_settings
from .scorefiles import Span


@dataclass(frozen=True)
class ShardFiles:
    """Where one input shard of a finished run keeps its scores and its texts (edited texts for edit runs)."""

    name: str
    scores: Path
    texts: list[Shard]


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True if `path` is a toedit RUN_DIR: a directory whose manifest.json is an object with "fingerprint" and
    "kind" (lenient: a damaged manifest is not one; `RunDir.manifest` is strict)."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "fingerprint" in data and "kind" in data


def _refusal(path: str) -> str:
    return (
        f"{path} is a toedit run directory; to read its edited documents, pass {os.path.join(path, 'data')}"
    )


# what input discovery never reads: a run's outputs never become another run's inputs (pass it as `fence`)
RUN_DIRS = Fence(is_run_dir, "a toedit run directory (its outputs are never read as input)", _refusal)


class RunDir(RunLayout):
    """A run directory: its manifest, markers, outputs and lock (its paths and clean-up: `RunLayout`)."""

    # ---------------------------------------------------------------------------------------- manifest
    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest (None if there is none); a damaged one is a RunDirError naming the file."""
        data = read_json(self.manifest_path)
        if data is not None and (problem := manifest_problem(data)) is not None:
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
        return typed_settings(self.manifest.get("settings") or {})

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
        return markers.read_marker(self.marker_path(name), fingerprint)

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

    def describe_outputs(self, paths: list[Path]) -> dict[str, dict[str, Any]]:
        """{path relative to RUN_DIR: {"size", "sha256"}} of freshly written outputs, for their marker."""
        return markers.describe_outputs(self.root, paths)

    def outputs_problem(self, marker: dict[str, Any], deep: bool = False) -> str | None:
        """Why a marker's shard is not done after all (an output missing, resized or, `deep`, changed), or None."""
        return markers.outputs_problem(self.root, marker, deep)

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
        return scorefiles.iter_rows(self.scores_files(), columns, batch_size)

    def has_spans(self) -> bool:
        files = self.scores_files()
        return bool(files) and all(scorefiles.has_column(p, "spans") for p in files)

    @staticmethod
    def iter_spans(path: Path) -> Iterator[tuple[int, str, int, list[Span]]]:
        """(row, id, line, spans) of every record of one scores file that has a spans column."""
        return scorefiles.iter_spans(path)

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
                texts = list_shards([entry["path"]], fence=RUN_DIRS)
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

    # --------------------------------------------------------------------------------------------- lock
    def lock(self, rank: int | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold RUN_DIR for this process: exclusively, or shared with the other ranks plus this rank's own
        lock. Another live holder makes this raise RunLocked naming it; a dead holder's lock is free."""
        return hold(self, rank)
