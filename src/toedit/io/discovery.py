"""Find input shards: files, directories, globs, `datasets` dirs and stdin; line-range parts of big JSONL files."""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import glob
import json
import os
import re
import stat
from collections.abc import Callable, Sequence

from .decoding import CORRUPT, NL, open_binary, unreadable
from .fields import type_name
from .records import STDIN_LABEL, InputError, Shard, printable

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


HIDDEN_REASON = "hidden (its name starts with '.'): pass it by name to read it"


@dataclasses.dataclass(frozen=True)
class Fence:
    """Directories discovery never reads although they hold readable files: the caller says which (a run
    fences off run directories, whose layout io does not know; see toedit.runs.rundir.RUN_DIRS)."""

    holds: Callable[[str], bool]  # is this directory fenced off?
    reason: str  # the Skipped reason of one met inside a directory or glob
    refusal: Callable[[str], str]  # the InputError message for one named as an input


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
    fenced or excluded directory, and records every unsupported file it passes over."""

    def __init__(self, exclude: Sequence[str | os.PathLike[str]] = (), fence: Fence | None = None):
        self.exclude = {os.path.realpath(p) for p in exclude}
        self.fence = fence
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
        elif self.fence is not None and self.fence.holds(d):
            self.skipped.append(Skipped(d, self.fence.reason))
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
        if finder.fence is not None and finder.fence.holds(item):
            raise InputError(finder.fence.refusal(item))
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
    inputs: Sequence[str],
    shard_lines: int | None = None,
    exclude: Sequence[str | os.PathLike[str]] = (),
    fence: Fence | None = None,
) -> Discovery:
    """Expand files, dirs, globs, datasets dirs and "-" (stdin JSONL) into shards sorted by path, and list
    what directories and globs contained but will not be read (unsupported files, fenced dirs, symlink loops).

    `exclude`: directories never read (a run passes its own RUN_DIR); `fence`: a kind of directory never
    read, skipped inside an input and refused as one. With `shard_lines`, JSONL files longer than that are
    split into line-range parts (`split_shards`)."""
    if not inputs:
        raise InputError("no inputs given")
    finder = _Finder(exclude, fence)
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


def list_shards(
    inputs: Sequence[str], shard_lines: int | None = None, fence: Fence | None = None
) -> list[Shard]:
    """The shards of `discover` (what was skipped is dropped: use discover to report it)."""
    return discover(inputs, shard_lines, fence=fence).shards


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
    with open_binary(shard) as f:
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
        except CORRUPT as exc:
            raise unreadable(shard, exc) from exc
    total = n + (last != NL)
    if starts[-1][0] == total:  # the file ends exactly at a part boundary
        starts.pop()
    return [*starts, (total, pos)]
