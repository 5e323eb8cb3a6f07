"""Run manifests: what was run, with which model and versions, and the fingerprint that guards resume."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from typing import Any

from .._version import __version__
from ..compiling import resolved_compile
from ..config import EditConfig, IOConfig, ScoreConfig
from ..prior import Prior
from ..scoring import context_id

# score settings that change results (token_budget and head_chunk only change speed)
_SCORE_KEYS = ("window", "stride", "store_k", "entropy")
_IO_KEYS = (
    "text_field",
    "id_field",
    "messages_field",
    "roles",
    "response_field",
    "inline_stats",
    "save_topk",
)


def versions() -> dict[str, str]:
    import numpy
    import torch
    import transformers

    return {
        "toedit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
    }


def fingerprint_payload(
    kind: str,
    prior: Prior,
    window: tuple[int, int],
    score: ScoreConfig,
    io: IOConfig,
    edit: EditConfig | None,
) -> dict[str, Any]:
    """Everything that determines the outputs, and nothing that only changes speed."""
    sc = {k: getattr(score, k) for k in _SCORE_KEYS}
    sc["window"], sc["stride"] = window
    sc["compile"] = resolved_compile(score.compile, prior)  # compiled kernels round differently
    return {
        "kind": kind,
        "toedit": __version__,
        "model": prior.fingerprint,
        "dtype": prior.dtype_name,
        "context_id": context_id(prior, score),
        "score": sc,
        "io": {k: getattr(io, k) for k in _IO_KEYS},
        "edit": dataclasses.asdict(edit) if edit is not None else None,
    }


def fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
