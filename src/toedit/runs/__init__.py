"""Resumable sharded runs over files: run directories, markers, manifests, merged stats."""

from ..io import is_run_dir
from .report import run_report
from .run import format_status, run_edit, run_score, run_status
from .rundir import RunDir, RunDirError, RunLocked, Span
from .shard import TooManyErrors
from .summary import RunSummary

__all__ = [
    "RunDir",
    "RunDirError",
    "RunLocked",
    "RunSummary",
    "Span",
    "TooManyErrors",
    "format_status",
    "is_run_dir",
    "run_report",
    "run_edit",
    "run_score",
    "run_status",
]
