"""Offline human-written corpora as JSONL: Jane Austen's six novels (Debian) and the Python reference topics.

Austen comes from the Debian package `r-cran-janeaustenr` (downloaded with `apt-get download`, unpacked with
`dpkg-deb -x`; R itself is not installed). The novels sit in the package's lazy-load database
(`data/Rdata.rdx` index + `data/Rdata.rdb` records), read with the PyPI package `rdata`. Each novel becomes
one JSONL file with one record per chapter.

The Python reference topics come from the stdlib's `pydoc_data.topics` (always installed): one record per
topic in one file.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

CORPORA = ("austen", "pydoc")
AUSTEN_PACKAGE = "r-cran-janeaustenr"
AUSTEN_SOURCE = f"{AUSTEN_PACKAGE} (Debian)"
PYDOC_SOURCE = "cpython pydoc_data.topics"
AUSTEN_BOOKS = {  # R object -> (file stem, title)
    "sensesensibility": ("sense_and_sensibility", "Sense and Sensibility"),
    "prideprejudice": ("pride_and_prejudice", "Pride and Prejudice"),
    "mansfieldpark": ("mansfield_park", "Mansfield Park"),
    "emma": ("emma", "Emma"),
    "northangerabbey": ("northanger_abbey", "Northanger Abbey"),
    "persuasion": ("persuasion", "Persuasion"),
}
_CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+[0-9IVXLC]+\b")
_VOLUME = re.compile(r"^\s*VOLUME\s+[IVX]+\s*$")
_UNKNOWN_PACKAGE = ("Unable to locate package", "has no installation candidate", "Couldn't find any package")
_MANUAL = (
    f"To get the corpus by hand: on a Debian/Ubuntu machine run `apt-get download {AUSTEN_PACKAGE}` "
    f"(after `apt-get update` if the package is unknown), or fetch the .deb from "
    f"https://packages.debian.org/{AUSTEN_PACKAGE}; then call "
    f"`toedit.corpora.austen_documents_from_deb(path_to_deb, workdir)`, or run "
    f"`toedit corpus austen -o DIR` on such a machine and copy DIR's JSONL files here."
)


class CorpusError(RuntimeError):
    """A corpus cannot be fetched here; the message says what failed and how to get it by hand."""


# ---------------------------------------------------------------------------------------------------------
# chapters


def split_chapters(lines: Sequence[str | None]) -> list[tuple[int, str]]:
    """(chapter number, text) from a novel's lines; front matter is chapter 0 (kept only if non-empty).

    A line matching ``^\\s*(CHAPTER|Chapter)\\s+[0-9IVXLC]+`` starts a chapter; chapters are numbered 1, 2, ...
    in order of appearance. A "VOLUME n" line (with the blank lines after it) just before a chapter heading
    opens that chapter rather than closing the previous one. Missing lines (None, NA, NaN) count as empty.
    Texts are the lines joined with "\\n", trailing empty lines removed (the heading line is kept).
    """
    chapters: list[list[str]] = [[]]
    for raw in lines:
        line = raw if isinstance(raw, str) else ""
        if _CHAPTER.match(line):
            current = chapters[-1]
            carried: list[str] = []
            while current and (not current[-1].strip() or _VOLUME.match(current[-1])):
                carried.insert(0, current.pop())
            while carried and not carried[0].strip():
                carried.pop(0)
            chapters.append(carried)
        chapters[-1].append(line)
    out = []
    for number, chunk in enumerate(chapters):
        while chunk and not chunk[-1].strip():
            chunk.pop()
        if chunk:  # only chapter 0 (front matter) can be empty here
            out.append((number, "\n".join(chunk)))
    return out


# ---------------------------------------------------------------------------------------------------------
# pydoc


def pydoc_documents() -> list[dict]:
    """One record per non-empty topic of the stdlib's `pydoc_data.topics`, sorted by key."""
    from pydoc_data.topics import topics

    return [
        {"id": f"pydoc:{key}", "source": PYDOC_SOURCE, "title": key, "text": topics[key]}
        for key in sorted(topics)
        if topics[key]
    ]


# ---------------------------------------------------------------------------------------------------------
# R lazy-load databases


def decompress_rdb_record(record: bytes, compressed: int | bool = True) -> bytes:
    """The serialized object in one record of an R lazy-load .rdb file.

    A record is a 4-byte big-endian uncompressed length followed by the payload. With the index's
    ``compressed`` flag TRUE/1 (R's default) the payload is a bare zlib stream; with 2 or 3 it starts with a
    type byte: ``Z`` xz, ``2`` bzip2, ``1`` zlib, ``0`` stored.
    """
    if len(record) < 5:
        raise CorpusError(f"R lazy-load record too short ({len(record)} bytes)")
    size = int.from_bytes(record[:4], "big")
    level = int(compressed)
    kind, payload = record[4:5], record[5:]
    try:
        if level == 1:
            out = zlib.decompress(record[4:])
        elif level in (2, 3) and kind == b"Z":
            out = lzma.decompress(payload)
        elif level in (2, 3) and kind == b"2":
            out = bz2.decompress(payload)
        elif level in (2, 3) and kind == b"1":
            out = zlib.decompress(payload)
        elif level in (2, 3) and kind == b"0":
            out = bytes(payload)
        else:
            raise CorpusError(
                f"R lazy-load record (compressed={compressed!r}) has unknown type byte {kind!r}; "
                f"known: compressed=TRUE: bare zlib; 2/3: type byte Z (xz), 2 (bzip2), 1 (zlib), 0 (stored)"
            )
    except (zlib.error, lzma.LZMAError, OSError, ValueError) as exc:
        raise CorpusError(f"cannot decompress R lazy-load record (compressed={compressed!r}): {exc}") from exc
    if len(out) != size:
        raise CorpusError(f"R lazy-load record: {len(out)} bytes decompressed, header says {size}")
    return out


def _parse_r(raw: bytes):
    import rdata

    with warnings.catch_warnings():  # lazy-load records have no RDS magic; rdata warns "assumed RDS"
        warnings.simplefilter("ignore", UserWarning)
        return rdata.conversion.convert(rdata.parser.parse_data(raw))


def read_r_lazyload(data_dir: str | Path, base: str = "Rdata") -> dict:
    """Objects of an R lazy-load database (``<base>.rdx`` + ``<base>.rdb``): name -> converted object."""
    data_dir = Path(data_dir)
    raw_index = (data_dir / f"{base}.rdx").read_bytes()
    # R writes the index through gzfile() (a gzip file); accept a bare zlib stream too
    index_bytes = gzip.decompress(raw_index) if raw_index[:2] == b"\x1f\x8b" else zlib.decompress(raw_index)
    index = _parse_r(index_bytes)
    try:
        variables = index["variables"]
        flag = index.get("compressed", True)
    except (TypeError, KeyError) as exc:
        raise CorpusError(f"{data_dir / base}.rdx is not an R lazy-load index: {exc}") from exc
    compressed = int(flag[0]) if hasattr(flag, "__len__") else int(flag)
    blob = (data_dir / f"{base}.rdb").read_bytes()
    out = {}
    for name, pos in variables.items():
        offset, length = int(pos[0]), int(pos[1])
        out[str(name)] = _parse_r(decompress_rdb_record(blob[offset : offset + length], compressed))
    return out


# ---------------------------------------------------------------------------------------------------------
# Austen


def _download_deb(package: str, workdir: Path) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise CorpusError(f"apt-get/dpkg-deb not found on PATH (not a Debian-like system). {_MANUAL}")

    def download() -> subprocess.CompletedProcess:
        return subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)

    res = download()
    if res.returncode != 0 and any(msg in res.stderr for msg in _UNKNOWN_PACKAGE):
        # an empty or stale package list (fresh container): refresh it once and retry
        upd = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        if upd.returncode != 0:
            raise CorpusError(
                f"`apt-get download {package}` failed ({res.stderr.strip()[-300:]}) and `apt-get update` "
                f"failed too (exit {upd.returncode}: {upd.stderr.strip()[-300:]}). {_MANUAL}"
            )
        res = download()
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if res.returncode != 0 or not debs:
        raise CorpusError(
            f"`apt-get download {package}` failed (exit {res.returncode}): {res.stderr.strip()[-400:]}. "
            f"{_MANUAL}"
        )
    return debs[-1]


def austen_documents_from_deb(deb: str | Path, workdir: str | Path) -> Iterator[dict]:
    """One record per chapter of each novel, from a downloaded `r-cran-janeaustenr` .deb."""
    deb, work = Path(deb), Path(workdir)
    if shutil.which("dpkg-deb") is None:
        raise CorpusError(f"dpkg-deb not found on PATH; cannot unpack {deb}. {_MANUAL}")
    root = work / "unpacked"
    res = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
    if res.returncode != 0:
        raise CorpusError(f"`dpkg-deb -x {deb}` failed: {res.stderr.strip()[-400:]}")
    found = sorted(root.rglob("janeaustenr/data/Rdata.rdx"))
    if not found:
        raise CorpusError(f"{deb.name} has no janeaustenr/data/Rdata.rdx: the package layout changed")
    objects = read_r_lazyload(found[0].parent)
    for obj, (stem, title) in AUSTEN_BOOKS.items():
        if obj not in objects:
            raise CorpusError(f"{deb.name} lacks the novel {obj!r} (has {sorted(objects)})")
        for number, text in split_chapters([x if isinstance(x, str) else None for x in objects[obj]]):
            yield {
                "id": f"{stem}:ch{number:03d}",
                "source": AUSTEN_SOURCE,
                "title": title,
                "book": stem,
                "chapter": number,
                "text": text,
            }


def austen_documents(workdir: str | Path) -> Iterator[dict]:
    """One record per chapter of each novel, downloading and unpacking the Debian package in `workdir`."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    deb = _download_deb(AUSTEN_PACKAGE, work)
    yield from austen_documents_from_deb(deb, work)


# ---------------------------------------------------------------------------------------------------------
# files


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def corpus_files(name: str, dest: str | Path) -> list[Path]:
    """The JSONL files `fetch_corpus(name, dest)` writes, sorted."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; available: {', '.join(CORPORA)}")
    stems = ["pydoc_topics"] if name == "pydoc" else [stem for stem, _ in AUSTEN_BOOKS.values()]
    return sorted(Path(dest) / f"{stem}.jsonl" for stem in stems)


def fetch_corpus(name: str, dest: str | Path, workdir: str | Path | None = None) -> list[Path]:
    """Write corpus `name` as JSONL under `dest` (one file per book); return the files, sorted.

    Idempotent: when every expected file exists nothing is fetched or rewritten. Files are written atomically.
    `workdir` holds the temporary download (default: the system temp dir). Raises ValueError for an unknown
    name and CorpusError (a RuntimeError) when the corpus cannot be fetched here.
    """
    paths = corpus_files(name, dest)
    if all(p.exists() for p in paths):
        return paths
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    if name == "pydoc":
        _write_jsonl(out / "pydoc_topics.jsonl", pydoc_documents())
        return paths
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    books: dict[str, list[dict]] = {stem: [] for stem, _ in AUSTEN_BOOKS.values()}
    with tempfile.TemporaryDirectory(prefix="toedit-austen-", dir=workdir) as tmp:
        for row in austen_documents(tmp):
            books[row["book"]].append(row)
    for stem, rows in books.items():
        if not rows:
            raise CorpusError(f"no chapters found for {stem}")
    for stem, rows in books.items():
        _write_jsonl(out / f"{stem}.jsonl", rows)
    return paths
