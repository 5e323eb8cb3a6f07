"""Resumable sharded runs over files: run directories, markers, manifests, merged stats."""

from .layout import RunDirError
from .lock import RunLocked
from .report import run_report
from .run import run_edit, run_score
from .rundir import RunDir, is_run_dir
from .scorefiles import Span
from .shard import TooManyErrors
from .status import format_status, run_status
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
