"""Units of I/O: an input shard, a readable record, a record that could not be used, and the input error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FORMATS = ("jsonl", "parquet", "txt", "datasets")
COMPRESSIONS = (None, "gzip", "zstd")
_JSONL_SUFFIX = {None: ".jsonl", "gzip": ".jsonl.gz", "zstd": ".jsonl.zst"}


def printable(path: str) -> str:
    """A path safe to print and to write as UTF-8: bytes of a non-UTF-8 file name become `\\xff` escapes."""
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that does not stand for a byte
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Shard:
    """One input unit of work: a file, a `datasets` save_to_disk directory (or split), or stdin ("-")."""

    path: str
    name: str  # unique, filesystem-safe output name without extension, e.g. "sub__part-0001"
    format: str  # "jsonl" | "parquet" | "txt" | "datasets"
    compression: str | None = None  # None | "gzip" | "zstd" (jsonl only)
    size: int = 0  # bytes on disk (0 for stdin; a datasets directory: the sum of its files)
    # a line-range part of a big JSONL file: its physical lines start+1 .. stop (1-based, inclusive)
    start: int = 0
    stop: int | None = None
    offset: int = 0  # byte offset of line start+1 (uncompressed files: parts seek instead of skipping)
    source: str | None = None  # the whole file's shard name: default ids stay `<file>:<line>` when split
    label: str | None = (
        None  # how errors name the input when `path` is not its name ("<stdin>": a spool file)
    )

    @property
    def shown(self) -> str:
        """The input's name in messages and errors.jsonl: its label, else its path."""
        return self.label or self.path

    @property
    def id_name(self) -> str:
        """Prefix of default record ids: the same whether or not the file was split into parts."""
        return self.source or self.name

    @property
    def is_part(self) -> bool:
        return self.stop is not None

    @property
    def out_suffix(self) -> str:
        """Extension of this shard's edited output: same format, datasets -> parquet, stdin -> jsonl."""
        if self.format == "jsonl":
            return _JSONL_SUFFIX[self.compression]
        return ".txt" if self.format == "txt" else ".parquet"


@dataclass
class Record:
    """A record the caller can edit: its 1-based line (or row), id, and the untouched original data.

    `raw` (JSONL) is the line's JSON text and `row` (parquet, datasets) its one-row Arrow table: writers
    keep every value the edit did not change exactly as the input held it."""

    line: int
    id: str
    data: dict[str, Any]
    raw: str | None = field(default=None, compare=False, repr=False)
    row: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BadRecord:
    """A line or row that was skipped, with a short specific reason."""

    file: str
    line: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """{"file", "line", "reason"} for errors.jsonl."""
        return {"file": printable(self.file), "line": self.line, "reason": self.reason}


STDIN_LABEL = "<stdin>"


class InputError(ValueError):
    """An input that cannot be used (missing path, unknown format, empty glob, name collision)."""
