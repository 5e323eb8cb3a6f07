"""Resumable sharded runs over files: run directories, markers, manifests, merged stats."""

from .manifest import RunDirError
from .report import run_report
from .run import RunSummary, format_status, run_edit, run_score, run_status
from .shard import TooManyErrors

__all__ = [
    "RunDirError",
    "RunSummary",
    "TooManyErrors",
    "format_status",
    "run_report",
    "run_edit",
    "run_score",
    "run_status",
]
