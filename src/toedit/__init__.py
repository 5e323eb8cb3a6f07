"""toedit: token-level editing of human text into semi-synthetic training data (ToEdit, Zhu et al. 2025)."""

from ._version import __version__ as __version__
from .config import EditConfig, IOConfig, RunConfig, ScoreConfig
from .editing import EditResult, EditStats
from .pipeline import calibrate_threshold, edit_batch, edit_texts
from .prior import Prior, PriorError, load_prior, prior_from_model
from .scoring import TokenScores, score_texts

__all__ = [
    "EditConfig",
    "calibrate_threshold",
    "EditResult",
    "EditStats",
    "IOConfig",
    "Prior",
    "PriorError",
    "RunConfig",
    "ScoreConfig",
    "TokenScores",
    "ToEditMapper",
    "edit_batch",
    "edit_texts",
    "load_prior",
    "prior_from_model",
    "run_edit",
    "run_score",
    "run_status",
    "score_texts",
]


def __getattr__(name: str):
    # the run layer imports the I/O stack; load it only when asked for
    if name in ("run_edit", "run_score", "run_status"):
        from . import runs

        return getattr(runs, name)
    if name == "ToEditMapper":
        from .runs.adapters import ToEditMapper

        return ToEditMapper
    raise AttributeError(name)
