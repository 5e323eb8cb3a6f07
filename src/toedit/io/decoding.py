"""Input bytes to text: decompression (gzip, zstd), UTF-8 and JSON escape checks, unreadable-data errors."""

from __future__ import annotations

import gzip
import io
import re
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import pyarrow as pa
import zstandard

from .records import InputError, Shard

BOM = b"\xef\xbb\xbf"
JSON_SPACE = " \t\r\n"
NL = b"\n"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_PAIR_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]")


def lone_surrogate_escape(raw: bytes) -> bool:
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


def not_utf8(raw: bytes, exc: UnicodeDecodeError, multiline: bool = False) -> str:
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


CORRUPT = (OSError, EOFError, zlib.error, zstandard.ZstdError)


def unreadable(shard: Shard, exc: Exception, line: int | None = None) -> InputError:
    what = f"{shard.compression} data" if shard.compression else "data"
    where = f" after line {line}" if line is not None else ""
    return InputError(f"{shard.shown}: unreadable {what}{where}: {exc}")


@contextmanager
def open_binary(shard: Shard) -> Iterator[BinaryIO]:
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


def undecodable_row(table: Any, exc: UnicodeDecodeError) -> str:
    """BadRecord reason for a one-row table holding bytes that are not UTF-8 in a string column."""
    for name in table.column_names:
        try:
            table.column(name).to_pylist()
        except UnicodeDecodeError as col_exc:
            return f"field {_bad_utf8_path(table.column(name), name)!r} holds {_utf8_problem(col_exc)}"
    return f"a string holds {_utf8_problem(exc)}"
