"""Completion markers (done/<shard>.json): the size and sha256 of each output they record, and whether the
outputs on disk still match them (a shard is done only while they do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import content_hashes
from .layout import RunDirError, read_json


def sha256_of(paths: list[Path]) -> dict[Path, str]:
    """sha256 of each file's bytes (cached by path and identity, see toedit.io.hashing)."""
    digests = content_hashes([str(p) for p in paths])
    return {p: digests[str(p)] for p in paths}


def read_marker(path: Path, fingerprint: str | None = None) -> dict[str, Any] | None:
    """The marker at `path` if it is there and (when given) matches `fingerprint`; its outputs are not
    looked at (see `outputs_problem`)."""
    marker = read_json(path)
    if marker is None or (fingerprint is not None and marker.get("fingerprint") != fingerprint):
        return None
    if not isinstance(marker.get("stats"), dict):
        raise RunDirError(
            f"{path} is not a completion marker (no stats): remove it and rerun the run's command"
        )
    return marker


def describe_outputs(root: Path, paths: list[Path]) -> dict[str, dict[str, Any]]:
    """{path relative to `root`: {"size", "sha256"}} of freshly written outputs, for their marker."""
    digests = sha256_of(paths)
    return {p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": digests[p]} for p in paths}


def outputs_problem(root: Path, marker: dict[str, Any], deep: bool = False) -> str | None:
    """Why a marker's shard is not done after all (an output missing, resized or, `deep`, changed), or None."""
    outputs = marker.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return "its marker records no outputs (written by an older toedit)"
    found: dict[Path, str] = {}
    for rel, info in outputs.items():
        path = root / rel
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
                return (
                    f"{path.relative_to(root).as_posix()} changed after the shard finished (sha256 differs)"
                )
    return None
