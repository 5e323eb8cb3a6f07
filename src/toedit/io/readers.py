"""Find input shards and stream their records (JSONL[.gz|.zst], parquet, txt/md, `datasets` dirs, stdin)."""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import glob
import gzip
import io
import itertools
import json
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from . import jsontext
from .fields import FieldError, FieldSpec, extract_texts, record_id, type_name, unencodable
from .records import BadRecord, Record, Shard, printable

BATCH_ROWS = 1000
_COMPRESSION_EXTS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_PLAIN_EXTS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "txt",
    ".md": "txt",
}
_SUPPORTED = ".jsonl/.json/.ndjson (optionally .gz/.zst), .parquet, .txt/.md, or a datasets save_to_disk dir"
_DATASET_FILES = ("state.json", "dataset_info.json")
_UNSAFE = re.compile(r'[\x00-\x1f<>:"|?*\\\ud800-\udfff]')  # + surrogates: names that are not UTF-8
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = " \t\r\n"
NL = b"\n"


STDIN_LABEL = "<stdin>"


class InputError(ValueError):
    """An input that cannot be used (missing path, unknown format, empty glob, name collision)."""


def _detect(path: str) -> tuple[str, str | None, str] | None:
    """(format, compression, path without its extensions) for a supported file name, else None."""
    base, ext = os.path.splitext(path)
    compression = _COMPRESSION_EXTS.get(ext.lower())
    if compression is not None:
        base, ext = os.path.splitext(base)
    fmt = _PLAIN_EXTS.get(ext.lower())
    if fmt is None or (compression is not None and fmt != "jsonl") or not os.path.basename(base):
        return None
    return fmt, compression, base


def _datasets_kind(path: str) -> str | None:
    """Kind of a `datasets` save_to_disk dir: "dict" (DatasetDict), "dataset", or None for other dirs."""
    if os.path.isfile(os.path.join(path, "dataset_dict.json")):
        return "dict"
    return "dataset" if any(os.path.isfile(os.path.join(path, f)) for f in _DATASET_FILES) else None


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _datasets_entries(path: str) -> list[tuple[str, str, str | None, str]]:
    """(path, format, compression, name path) for a Dataset dir, or one per split of a DatasetDict dir."""
    if _datasets_kind(path) == "dataset":
        return [(path, "datasets", None, path)]
    listing = os.path.join(path, "dataset_dict.json")
    try:
        with open(listing, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type_name(data)}, expected an object")
        splits = data.get("splits") or sorted(os.listdir(path))
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise ValueError("'splits' is not a list of names")
    except (OSError, ValueError) as exc:
        raise InputError(f"{printable(listing)}: not a datasets split listing ({exc})") from exc
    root = os.path.realpath(path)
    split_dirs = []
    for split in splits:
        d = os.path.join(path, split)
        real = os.path.realpath(d)
        if os.path.isabs(split) or real == root or os.path.commonpath([real, root]) != root:
            raise InputError(
                f"{printable(listing)} lists the split {split!r}, which is not a directory inside "
                f"{printable(path)}: refused (a split is read only from inside the named input)"
            )
        split_dirs.append(d)
    return [(d, "datasets", None, d) for d in split_dirs if _datasets_kind(d) == "dataset"]


def _inside_datasets(path: str, root: str) -> bool:
    """True if `path` lies inside a datasets save_to_disk dir at or below `root` (its metadata is not input)."""
    parent, root = os.path.dirname(os.path.abspath(path)), os.path.abspath(root)
    while os.path.commonpath([parent, root]) == root:
        if _datasets_kind(parent):
            return True
        if parent == root:
            break
        parent = os.path.dirname(parent)
    return False


RUN_DIR_REASON = "a toedit run directory (its outputs are never read as input)"
HIDDEN_REASON = "hidden (its name starts with '.'): pass it by name to read it"


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True if `path` is a toedit RUN_DIR: a directory whose manifest.json is an object with
    "fingerprint" and "kind" (discovery never reads one, so a run's outputs never become its inputs)."""
    manifest = os.path.join(path, "manifest.json")
    if not os.path.isfile(manifest):
        return False
    try:
        with open(manifest, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "fingerprint" in data and "kind" in data


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file or directory found inside an input directory or glob that is not read, and why."""

    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": printable(self.path), "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Discovery:
    """The shards the inputs expand to, and what was found but not read (for the run summary)."""

    shards: list[Shard]
    skipped: list[Skipped]


Entry = tuple[str, str, str | None, str]  # (path, format, compression, name path)


def _broken_link(path: str) -> InputError | None:
    """An InputError for a path that cannot be opened because of a symlink (dangling or a loop), else None."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return InputError(f"{printable(path)}: symbolic link loop (the link points back to itself)")
        if os.path.islink(path):
            return InputError(
                f"{printable(path)}: broken symbolic link (to {os.readlink(path)!r}, which does not exist)"
            )
        return InputError(f"{printable(path)}: {exc.strerror}")
    return None


class _Finder:
    """Walks input directories and globs: follows directory symlinks but never a cycle, never enters a
    RUN_DIR or an excluded directory, and records every unsupported file it passes over."""

    def __init__(self, exclude: Sequence[str | os.PathLike[str]] = ()):
        self.exclude = {os.path.realpath(p) for p in exclude}
        self.skipped: list[Skipped] = []

    def _listdir(self, d: str) -> list[str]:
        try:
            return sorted(os.listdir(d or "."))
        except OSError as exc:
            self.skipped.append(Skipped(d or ".", f"cannot list the directory: {exc.strerror}"))
            return []

    def _enter(self, d: str, ancestors: frozenset) -> frozenset | None:
        """`ancestors` plus `d`'s identity if `d` may be entered, else None (the reason is recorded)."""
        try:
            st = os.stat(d)
        except OSError as exc:
            self.skipped.append(Skipped(d, f"cannot read: {exc.strerror}"))
            return None
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            self.skipped.append(Skipped(d, "symbolic link loop (points back to an enclosing directory)"))
        elif os.path.realpath(d) in self.exclude:
            self.skipped.append(Skipped(d, "the run's own output directory"))
        elif is_run_dir(d):
            self.skipped.append(Skipped(d, RUN_DIR_REASON))
        else:
            return ancestors | {key}
        return None

    def _file(self, path: str) -> Entry | None:
        detected = _detect(path)
        if detected is None:
            self.skipped.append(Skipped(path, f"unsupported file type (expected {_SUPPORTED})"))
            return None
        if (broken := _broken_link(path)) is not None:
            raise broken
        if not stat.S_ISREG(os.stat(path).st_mode):
            self.skipped.append(Skipped(path, "not a regular file"))
            return None
        return (path, *detected)

    def walk(self, top: str, ancestors: frozenset = frozenset()) -> list[Entry]:
        """Every supported file (and datasets dir) under the directory `top`, skipping hidden entries."""
        if _datasets_kind(top):
            return _datasets_entries(top)
        inside = self._enter(top, ancestors)
        if inside is None:
            return []
        found: list[Entry] = []
        for name in self._listdir(top):
            if name.startswith("."):
                self.skipped.append(Skipped(os.path.join(top, name), HIDDEN_REASON))
                continue
            path = os.path.join(top, name)
            if os.path.isdir(path):
                found += self.walk(path, inside)
            elif (entry := self._file(path)) is not None:
                found.append(entry)
        return found

    def glob(self, pattern: str, root: str) -> list[Entry]:
        """The entries a glob names (`**`: any depth); matched directories are walked."""
        parts = pattern.split(os.sep)
        k = next(i for i, p in enumerate(parts) if glob.has_magic(p))
        base = os.sep.join(parts[:k]) or (os.sep if pattern.startswith(os.sep) else "")
        matches: list[str] = []
        start = self._enter(base or ".", frozenset())
        if start is not None:
            self._match(base, [p for p in parts[k:] if p], start, matches)
        found: list[Entry] = []
        walked: set[str] = set()
        for match in dict.fromkeys(matches):  # `**/**` can name a path twice
            if os.path.isdir(match):
                if _within(match, walked):
                    continue  # already walked as part of a matched parent
                walked.add(match)
                found += self.walk(match)
            elif not _inside_datasets(match, root) and (entry := self._file(match)) is not None:
                found.append(entry)
        return found

    def _match(self, base: str, parts: list[str], ancestors: frozenset, out: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if head == "**":
            if rest:
                self._match(base, rest, ancestors, out)
            else:
                out.append(base or ".")
            names = [n for n in self._listdir(base) if not n.startswith(".")]
            for name in names:
                path = os.path.join(base, name)
                if os.path.isdir(path) and not _datasets_kind(path):
                    inside = self._enter(path, ancestors)
                    if inside is not None:
                        self._match(path, parts, inside, out)
            return
        if glob.has_magic(head):
            names = [n for n in self._listdir(base) if fnmatch.fnmatchcase(n, head)]
            names = [n for n in names if not n.startswith(".") or head.startswith(".")]
        else:
            names = [head] if os.path.lexists(os.path.join(base, head)) else []
        for name in names:
            path = os.path.join(base, name)
            if not rest:
                out.append(path)
            elif os.path.isdir(path) and not _datasets_kind(path):
                inside = self._enter(path, ancestors)
                if inside is not None:
                    self._match(path, rest, inside, out)


def _within(path: str, dirs: set[str]) -> bool:
    parent = os.path.dirname(path)
    while parent and parent != os.path.dirname(parent):
        if parent in dirs:
            return True
        parent = os.path.dirname(parent)
    return parent in dirs


def _glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard component."""
    parts = pattern.split(os.sep)
    fixed = parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts) - 1)]
    return os.sep.join(fixed) or (os.sep if pattern.startswith(os.sep) else ".")


def _skipped_note(skipped: list[Skipped], show: int = 3) -> str:
    if not skipped:
        return ""
    more = f" and {len(skipped) - show} more" if len(skipped) > show else ""
    return "; skipped " + "; ".join(f"{printable(s.path)}: {s.reason}" for s in skipped[:show]) + more


def _expand(item: str, finder: _Finder) -> tuple[list[Entry], str]:
    """The entries one input names, and the root its shard names are relative to."""
    if os.path.isdir(item):
        if is_run_dir(item):
            raise InputError(
                f"{item} is a toedit run directory; to read its edited documents, pass {os.path.join(item, 'data')}"
            )
        if _datasets_kind(item):
            if not (found := _datasets_entries(item)):
                raise InputError(f"no splits found in the datasets directory {item}")
            return found, os.path.dirname(os.path.abspath(item))
        n_skipped = len(finder.skipped)
        found = finder.walk(item)
        if not found:
            raise InputError(
                f"no supported input files under {item} (expected {_SUPPORTED})"
                + _skipped_note(finder.skipped[n_skipped:])
            )
        return found, item
    if os.path.isfile(item):
        detected = _detect(item)
        if detected is None:
            raise InputError(f"unsupported input format: {item} (expected {_SUPPORTED})")
        return [(item, *detected)], os.path.dirname(item) or "."
    if os.path.islink(item) and (broken := _broken_link(item)) is not None:
        raise broken
    if not glob.has_magic(item):
        raise InputError(f"input not found: {item}")
    root = _glob_root(item)
    n_skipped = len(finder.skipped)
    found = finder.glob(item, root)
    if not found:
        raise InputError(f"no supported input files match {item}" + _skipped_note(finder.skipped[n_skipped:]))
    return found, root


def _shard_name(name_path: str, root: str) -> str:
    rel = os.path.relpath(os.path.abspath(name_path), root)
    return _UNSAFE.sub("_", rel.replace(os.sep, "__").replace("/", "__"))


def discover(
    inputs: Sequence[str], shard_lines: int | None = None, exclude: Sequence[str | os.PathLike[str]] = ()
) -> Discovery:
    """Expand files, dirs, globs, datasets dirs and "-" (stdin JSONL) into shards sorted by path, and list
    what directories and globs contained but will not be read (unsupported files, RUN_DIRs, symlink loops).

    `exclude`: directories never read (a run passes its own RUN_DIR). With `shard_lines`, JSONL files
    longer than that are split into line-range parts (`split_shards`)."""
    if not inputs:
        raise InputError("no inputs given")
    finder = _Finder(exclude)
    entries: list[Entry] = []
    roots: list[str] = []
    stdin = False
    for item in inputs:
        if item == "-":
            stdin = True
            continue
        found, root = _expand(item, finder)
        entries += found
        roots.append(os.path.abspath(root))
    common = os.path.commonpath(roots) if roots else ""
    shards, seen = [], set()
    for path, fmt, compression, name_path in entries:
        key = os.path.realpath(path)
        if key in seen:
            continue
        seen.add(key)
        size = _dir_size(path) if fmt == "datasets" else os.path.getsize(path)
        shards.append(Shard(path, _shard_name(name_path, common), fmt, compression, size))
    if stdin:
        shards.append(Shard("-", "stdin", "jsonl", None, 0, label=STDIN_LABEL))
    shards.sort(key=lambda s: s.path)
    if shard_lines:
        shards = split_shards(shards, shard_lines)
    names: dict[str, str] = {}
    for s in shards:
        if s.name in names:
            raise InputError(f"inputs {names[s.name]} and {s.path} would both write output {s.name!r}")
        names[s.name] = s.path
    skipped = list({(s.path, s.reason): s for s in finder.skipped}.values())
    return Discovery(shards, sorted(skipped, key=lambda s: s.path))


def list_shards(inputs: Sequence[str], shard_lines: int | None = None) -> list[Shard]:
    """The shards of `discover` (what was skipped is dropped: use discover to report it)."""
    return discover(inputs, shard_lines).shards


def _check(
    shard: Shard,
    line: int,
    data: Any,
    spec: FieldSpec,
    default_id: str,
    strings_checked: bool = True,
    raw: str | None = None,
    row: Any = None,
) -> Record | BadRecord:
    """A Record if `data` is an object with the configured fields, else a BadRecord saying why.

    `strings_checked=False` when `data` may hold strings that cannot be written as UTF-8 (JSON escapes of
    lone surrogates): the whole record is walked, so one such record never fails a shard's writer."""
    if not isinstance(data, dict):
        name = type_name(data)
        article = "" if name == "null" else ("an " if name[0] in "aeiou" else "a ")
        return BadRecord(shard.shown, line, f"record is {article}{name}, expected a JSON object")
    try:
        extract_texts(data, spec)
    except FieldError as exc:
        return BadRecord(shard.shown, line, str(exc))
    if not strings_checked and (why := unencodable(data)) is not None:
        return BadRecord(shard.shown, line, why)
    return Record(line, record_id(data, spec, default_id), data, raw, row)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_PAIR_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]")


def _lone_surrogate_escape(raw: bytes) -> bool:
    """True if a JSON line holds a \\uD800-\\uDFFF escape that json.loads cannot pair (a lone surrogate).

    json.loads joins a high escape followed at once by a low one into one character; any other surrogate
    escape stays a lone surrogate, which cannot be written as UTF-8. Escaped backslashes are masked first
    so that `\\\\ud800` (a backslash, then text) is not taken for an escape."""
    if b"\\" not in raw:  # memchr: most lines stop here
        return False
    raw = raw.replace(b"\\\\", b"_")  # not b"": that would join the escapes around it into a pair
    if _SURROGATE_ESCAPE.search(raw) is None:
        return False
    return len(_SURROGATE_ESCAPE.findall(raw)) != 2 * len(_PAIR_ESCAPE.findall(raw))


def _not_utf8(raw: bytes, exc: UnicodeDecodeError, multiline: bool = False) -> str:
    where = f"col {exc.start + 1}"
    if multiline:
        start = raw.rfind(b"\n", 0, exc.start) + 1
        where = f"line {raw.count(NL, 0, exc.start) + 1} col {exc.start - start + 1}"
    return f"not UTF-8 (byte 0x{raw[exc.start]:02x} at {where})"


class _ZstdReader(io.RawIOBase):
    """Streams concatenated zstd frames; unlike stream_reader, a file cut inside a frame raises ZstdError."""

    def __init__(self, raw: BinaryIO):
        self._raw, self._dctx = raw, zstandard.ZstdDecompressor()
        self._obj: Any = None
        self._buf, self._pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._buf):
            chunk = self._raw.read(1 << 16)
            if not chunk:
                if self._obj is not None and not self._obj.eof:
                    raise zstandard.ZstdError("compressed data ends inside a frame (truncated file?)")
                return 0
            out = []
            while chunk:
                if self._obj is None or self._obj.eof:
                    self._obj = self._dctx.decompressobj()
                out.append(self._obj.decompress(chunk))
                chunk = self._obj.unused_data if self._obj.eof else b""
            self._buf, self._pos = b"".join(out), 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n


_CORRUPT = (OSError, EOFError, zlib.error, zstandard.ZstdError)


def _unreadable(shard: Shard, exc: Exception, line: int | None = None) -> InputError:
    what = f"{shard.compression} data" if shard.compression else "data"
    where = f" after line {line}" if line is not None else ""
    return InputError(f"{shard.shown}: unreadable {what}{where}: {exc}")


@contextmanager
def _open_binary(shard: Shard) -> Iterator[BinaryIO]:
    """A binary stream of the decompressed JSONL bytes (stdin: sys.stdin.buffer, not closed)."""
    if shard.path == "-":
        yield sys.stdin.buffer
        return
    with open(shard.path, "rb") as raw:
        if shard.compression == "gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                yield f  # type: ignore[misc]
        elif shard.compression == "zstd":
            with io.BufferedReader(_ZstdReader(raw), buffer_size=1 << 16) as f:
                yield f
        else:
            yield raw


def split_shards(shards: Sequence[Shard], lines: int) -> list[Shard]:
    """Split JSONL files of more than `lines` physical lines into line-range parts named `<name>.part-NNNNN`.

    Parts of uncompressed files record the byte offset of their first line, so a worker seeks to it;
    parts of compressed files decompress and skip the lines before them. Other shards are kept whole.
    """
    if lines < 1:
        raise ValueError("lines per shard must be >= 1")
    out: list[Shard] = []
    for shard in shards:
        if shard.format != "jsonl" or shard.path == "-":
            out.append(shard)
            continue
        starts = _line_starts(shard, lines)  # (line index, byte offset) of every part's first line
        if len(starts) <= 2:  # one part: keep the file whole
            out.append(shard)
            continue
        total = starts.pop()[0]
        for i, (start, offset) in enumerate(starts):
            stop = starts[i + 1][0] if i + 1 < len(starts) else total
            name = f"{shard.name}.part-{i:05d}"
            offset = offset if shard.compression is None else 0  # compressed streams cannot seek
            out.append(
                dataclasses.replace(
                    shard, name=name, start=start, stop=stop, offset=offset, source=shard.name
                )
            )
    return out


def _line_starts(shard: Shard, lines: int) -> list[tuple[int, int]]:
    """Every `lines`-th line start of a JSONL shard as (lines before it, byte offset), then (total lines, size)."""
    starts, n, pos, last = [(0, 0)], 0, 0, NL
    with _open_binary(shard) as f:
        try:
            while chunk := f.read(1 << 20):
                i = chunk.find(NL)
                while i >= 0:
                    n += 1
                    if n % lines == 0:
                        starts.append((n, pos + i + 1))
                    i = chunk.find(NL, i + 1)
                pos += len(chunk)
                last = chunk[-1:]
        except _CORRUPT as exc:
            raise _unreadable(shard, exc) from exc
    total = n + (last != NL)
    if starts[-1][0] == total:  # the file ends exactly at a part boundary
        starts.pop()
    return [*starts, (total, pos)]


def _read_jsonl(shard: Shard, spec: FieldSpec) -> Iterator[Record | BadRecord]:
    line = shard.start
    with _open_binary(shard) as f:
        try:
            if shard.offset and shard.compression is None:
                f.seek(shard.offset)
            else:
                for _ in itertools.islice(f, shard.start):
                    pass
            for raw in f:
                if shard.stop is not None and line >= shard.stop:
                    break
                line += 1
                if line == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8").rstrip(_JSON_SPACE)
                except UnicodeDecodeError as exc:
                    yield BadRecord(shard.shown, line, _not_utf8(raw, exc))
                    continue
                try:
                    data = jsontext.loads(text)
                except json.JSONDecodeError as exc:
                    yield BadRecord(shard.shown, line, f"invalid JSON: {exc.msg} (col {exc.colno})")
                    continue
                except jsontext.DuplicateKey as exc:
                    yield BadRecord(shard.shown, line, f"{exc} (JSON leaves its value undefined)")
                    continue
                except (ValueError, RecursionError) as exc:
                    yield BadRecord(shard.shown, line, f"invalid JSON: {exc}")
                    continue
                lone = _lone_surrogate_escape(raw)
                yield _check(shard, line, data, spec, f"{shard.id_name}:{line}", not lone, raw=text)
        except _CORRUPT as exc:
            raise _unreadable(shard, exc, line) from exc


def _utf8_problem(exc: UnicodeDecodeError) -> str:
    """Describe the bytes Arrow could not decode, spelling out a UTF-8-encoded surrogate (CESU-8 / WTF-8)."""
    raw = exc.object[exc.start : exc.start + 3]
    if len(raw) == 3 and raw[0] == 0xED and 0xA0 <= raw[1] <= 0xBF:
        code = ((raw[0] & 0x0F) << 12) | ((raw[1] & 0x3F) << 6) | (raw[2] & 0x3F)
        return f"an unencodable string (lone surrogate U+{code:04X} stored as bytes {raw.hex(' ')})"
    return f"invalid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1})"


def _bad_utf8_path(arr: Any, path: str) -> str:
    """The deepest struct field / list item of a one-row array whose strings do not decode."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if pa.types.is_struct(arr.type):
        for i in range(arr.type.num_fields):
            child = arr.field(i)
            try:
                child.to_pylist()
            except UnicodeDecodeError:
                return _bad_utf8_path(child, f"{path}.{arr.type.field(i).name}")
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        items = arr.flatten()
        for i in range(len(items)):
            try:
                items.slice(i, 1).to_pylist()
            except UnicodeDecodeError:
                return _bad_utf8_path(items.slice(i, 1), f"{path}[{i}]")
    return path


def _undecodable_row(table: Any, exc: UnicodeDecodeError) -> str:
    """BadRecord reason for a one-row table holding bytes that are not UTF-8 in a string column."""
    for name in table.column_names:
        try:
            table.column(name).to_pylist()
        except UnicodeDecodeError as col_exc:
            return f"field {_bad_utf8_path(table.column(name), name)!r} holds {_utf8_problem(col_exc)}"
    return f"a string holds {_utf8_problem(exc)}"


def _read_rows(shard: Shard, batches: Iterator[Any], spec: FieldSpec) -> Iterator[Record | BadRecord]:
    """Records of Arrow batches (RecordBatch or Table), each holding its one-row table for the writer."""
    row = 0
    try:
        for batch in batches:
            table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            try:
                rows = table.to_pylist()
            except UnicodeDecodeError:  # a string column holds bytes that are not UTF-8: find the rows
                rows = None
            if rows is not None:
                for i, data in enumerate(rows):
                    row += 1
                    yield _check(shard, row, data, spec, f"{shard.name}:{row}", row=table.slice(i, 1))
                continue
            for i in range(table.num_rows):
                row += 1
                one = table.slice(i, 1)
                try:
                    (data,) = one.to_pylist()
                except UnicodeDecodeError as exc:
                    yield BadRecord(shard.shown, row, _undecodable_row(one, exc))
                    continue
                yield _check(shard, row, data, spec, f"{shard.name}:{row}", row=one)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(shard, exc, row) from exc


def _parquet_file(path: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-parquet data
        raise InputError(f"{path}: not a readable parquet file: {exc}") from exc


def _load_from_disk(path: str) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            f"reading the datasets directory {path} needs the `datasets` package: pip install 'toedit[datasets]'"
        ) from exc
    return datasets.load_from_disk(path)


def _read_txt(shard: Shard, spec: FieldSpec) -> Iterator[Record | BadRecord]:
    with open(shard.path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield BadRecord(shard.shown, 1, _not_utf8(raw, exc, multiline=True))
        return
    yield _check(shard, 1, {"text": text}, spec, shard.name)


def read_shard(shard: Shard, spec: FieldSpec) -> Iterator[Record | BadRecord]:
    """Stream a shard's records in input order; unusable lines/rows come out as BadRecords."""
    if shard.format == "jsonl":
        yield from _read_jsonl(shard, spec)
    elif shard.format == "parquet":
        yield from _read_rows(shard, _parquet_file(shard.path).iter_batches(batch_size=BATCH_ROWS), spec)
    elif shard.format == "datasets":
        ds = _load_from_disk(shard.path).with_format("arrow")
        yield from _read_rows(shard, ds.iter(batch_size=BATCH_ROWS), spec)
    elif shard.format == "txt":
        yield from _read_txt(shard, spec)
    else:
        raise InputError(f"{shard.shown}: unknown shard format {shard.format!r}")


def count_records(shard: Shard) -> int | None:
    """Cheap total for progress bars: physical lines (JSONL; None for stdin), rows, or 1 (txt)."""
    if shard.format == "txt":
        return 1
    if shard.format == "parquet":
        return _parquet_file(shard.path).metadata.num_rows
    if shard.format == "datasets":
        return _load_from_disk(shard.path).num_rows
    if shard.path == "-":
        return None
    if shard.stop is not None:
        return shard.stop - shard.start
    lines, last = 0, NL
    with _open_binary(shard) as f:
        try:
            while chunk := f.read(1 << 20):
                lines += chunk.count(NL)
                last = chunk[-1:]
        except _CORRUPT as exc:
            raise _unreadable(shard, exc) from exc
    return lines + (last != NL)
