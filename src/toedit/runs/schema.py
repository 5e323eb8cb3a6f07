"""What a manifest must hold for `RunDir` to read it, and its settings read back as typed configs."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import EditConfig, IOConfig, RunConfig, ScoreConfig
from ..io import FieldSpec

_SECTIONS = {"edit": EditConfig, "score": ScoreConfig, "io": IOConfig, "run": RunConfig}


def manifest_problem(data: dict[str, Any]) -> str | None:
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


def typed_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A manifest's "settings" as typed configs: {"edit": EditConfig | None, "score", "io", "run"} (keys
    unknown to this version are ignored, missing ones take their defaults)."""
    out: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name)
        if values is None:
            out[name] = None if name == "edit" else cls()
            continue
        known = {f.name for f in dataclasses.fields(cls)}
        out[name] = cls(**{k: v for k, v in values.items() if k in known})
    return out


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
