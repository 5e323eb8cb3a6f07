"""Optional dependencies: every import of an optional extra goes through `optional_import`, which names the
extra to install when the package is missing (core verbs never import them at module level)."""

from __future__ import annotations

import importlib
from types import ModuleType

# package -> the toedit extra that installs it
EXTRAS = {
    "scipy": "analysis",
    "matplotlib": "analysis",
    "sklearn": "analysis",
    "sentence_transformers": "analysis",
    "ray": "ray",
    "datasets": "datasets",
    "rdata": "corpora",
    "datatrove": "datatrove",
}


class MissingExtra(ImportError):
    """An optional package is needed for what was asked and is not installed."""


def optional_import(module: str, extra: str | None = None, purpose: str = "this") -> ModuleType:
    """`importlib.import_module(module)`, or MissingExtra saying `pip install 'toedit[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = extra or EXTRAS.get(top, top)
        raise MissingExtra(
            f"{purpose} needs the optional package {top!r}: pip install 'toedit[{extra}]'"
        ) from exc
