"""CLI verbs of the experiments capability (`toedit generate`, `train`, `experiment`); registered by `toedit.cli`."""

from __future__ import annotations

import argparse


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Add this capability's verbs to the `toedit` sub-command parser."""
