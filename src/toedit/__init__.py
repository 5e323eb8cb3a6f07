"""toedit: token-level editing of human text into semi-synthetic training data (ToEdit, Zhu et al. 2025).

The public names are imported on first use (PEP 562): `import toedit` or `import toedit.cli` does not import
torch, transformers or pyarrow, so verbs that need none of them (`--help`, `status`, `report`, `theory`)
start in a fraction of a second; `tests/test_startup.py` guards it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

# public name -> the module that defines it
_WHERE = {
    "EditConfig": "config",
    "IOConfig": "config",
    "RunConfig": "config",
    "ScoreConfig": "config",
    "EditResult": "editing",
    "EditStats": "editing",
    "calibrate_threshold": "pipeline",
    "edit_batch": "pipeline",
    "edit_texts": "pipeline",
    "Prior": "prior",
    "PriorError": "prior",
    "load_prior": "prior",
    "prior_from_model": "prior",
    "TokenScores": "scoring",
    "score_texts": "scoring",
    "run_edit": "runs",
    "run_score": "runs",
    "run_status": "runs",
    "ToEditMapper": "runs.adapters",
}

__all__ = [
    "EditConfig",
    "EditResult",
    "EditStats",
    "IOConfig",
    "Prior",
    "PriorError",
    "RunConfig",
    "ScoreConfig",
    "ToEditMapper",
    "TokenScores",
    "calibrate_threshold",
    "edit_batch",
    "edit_texts",
    "load_prior",
    "prior_from_model",
    "run_edit",
    "run_score",
    "run_status",
    "score_texts",
]

if TYPE_CHECKING:
    from .config import EditConfig, IOConfig, RunConfig, ScoreConfig
    from .editing import EditResult, EditStats
    from .pipeline import calibrate_threshold, edit_batch, edit_texts
    from .prior import Prior, PriorError, load_prior, prior_from_model
    from .runs import run_edit, run_score, run_status
    from .runs.adapters import ToEditMapper
    from .scoring import TokenScores, score_texts


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
