"""Corpus analysis: PPL distributions, token probabilities, n-gram concentration, embedding shift, DSIR, report.

`analyze` is imported lazily (it pulls in the run machinery; the n-gram modules stay light).
"""

from __future__ import annotations

from typing import Any

__all__ = ["analyze"]


def __getattr__(name: str) -> Any:
    if name == "analyze":
        from .report import analyze

        return analyze
    raise AttributeError(name)
