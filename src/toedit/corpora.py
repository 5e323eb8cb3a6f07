"""Offline human-written corpora as JSONL: Jane Austen's six novels (Debian) and the Python reference topics.

Austen comes from the Debian package `r-cran-janeaustenr` (downloaded with `apt-get download`, unpacked with
`dpkg-deb -x`; R itself is not installed). The novels sit in the package's lazy-load database
(`data/Rdata.rdx` index + `data/Rdata.rdb` records), read with the PyPI package `rdata`.
"""

from __future__ import annotations

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


class CorpusError(RuntimeError):
    """A corpus cannot be fetched here; the message says what failed and how to get it by hand."""


def split_chapters(lines: Sequence[str | None]) -> list[tuple[int, str]]:
    """(chapter number, text) from a novel's lines; front matter is chapter 0 (kept only if non-empty).

    A "VOLUME n" line just before a chapter heading opens that chapter. Texts are the lines joined with
    "\\n", trailing empty lines removed.
    """
    chapters: list[list[str]] = [[]]
    for raw in lines:
        line = "" if raw is None or not isinstance(raw, str) else raw
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
        if chunk:
            out.append((number, "\n".join(chunk)))
    return out


def pydoc_documents() -> list[dict]:
    """One record per topic of the stdlib's `pydoc_data.topics`, sorted by key."""
    from pydoc_data.topics import topics

    return [
        {"id": f"pydoc:{key}", "source": "cpython pydoc_data.topics", "title": key, "text": topics[key]}
        for key in sorted(topics)
        if topics[key]
    ]


def _download_deb(package: str, workdir: Path) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise CorpusError(
            f"apt-get/dpkg-deb not found: on a Debian-like system run `apt-get download {package}` and "
            f"`dpkg-deb -x` it, or fetch the corpus on such a machine and copy the JSONL files"
        )

    def download() -> subprocess.CompletedProcess:
        return subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)

    res = download()
    if res.returncode != 0:  # an empty or stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        res = download()
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if res.returncode != 0 or not debs:
        raise CorpusError(f"`apt-get download {package}` failed: {res.stderr.strip()[-400:]}")
    return debs[-1]


def _r_lazyload(data_dir: Path) -> dict:
    """Objects of an R lazy-load database: name -> converted Python object."""
    import rdata

    def parse(raw: bytes):
        with warnings.catch_warnings():  # lazy-load records have no RDS header; rdata says so
            warnings.simplefilter("ignore", UserWarning)
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = parse(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    blob = (data_dir / "Rdata.rdb").read_bytes()
    out = {}
    for name, (offset, length) in index["variables"].items():
        record = blob[int(offset) : int(offset) + int(length)]
        kind = record[4:5]  # after a 4-byte length: a type byte, or directly a zlib stream
        if kind == b"Z":
            raw = lzma.decompress(record[5:])
        elif kind == b"2":
            import bz2

            raw = bz2.decompress(record[5:])
        else:
            raw = zlib.decompress(record[4:])
        out[str(name)] = parse(raw)
    return out


def austen_documents(workdir: str | Path) -> Iterator[dict]:
    """One record per chapter of each novel, downloading and unpacking the Debian package in `workdir`."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    deb = _download_deb(AUSTEN_PACKAGE, work)
    root = work / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True)
    found = sorted(root.rglob("janeaustenr/data/Rdata.rdx"))
    if not found:
        raise CorpusError(f"{deb.name} has no data/Rdata.rdx: the package layout changed")
    objects = _r_lazyload(found[0].parent)
    for obj, (stem, title) in AUSTEN_BOOKS.items():
        if obj not in objects:
            raise CorpusError(f"{deb.name} lacks the novel {obj!r}")
        for number, text in split_chapters([None if x is None else str(x) for x in objects[obj]]):
            yield {
                "id": f"{stem}:ch{number:03d}",
                "source": f"{AUSTEN_PACKAGE} (Debian)",
                "title": title,
                "book": stem,
                "chapter": number,
                "text": text,
            }


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def fetch_corpus(name: str, dest: str | Path, workdir: str | Path | None = None) -> list[Path]:
    """Write corpus `name` as JSONL under `dest` (one file per book); idempotent. Returns the files."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; available: {', '.join(CORPORA)}")
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    stems = ["pydoc_topics"] if name == "pydoc" else [stem for stem, _ in AUSTEN_BOOKS.values()]
    paths = sorted(out / f"{stem}.jsonl" for stem in stems)
    if all(p.exists() for p in paths):
        return paths
    if name == "pydoc":
        _write_jsonl(out / "pydoc_topics.jsonl", pydoc_documents())
        return paths
    with tempfile.TemporaryDirectory(prefix="toedit-austen-", dir=workdir) as tmp:
        books: dict[str, list[dict]] = {}
        for row in austen_documents(tmp):
            books.setdefault(row["book"], []).append(row)
    for stem, rows in books.items():
        _write_jsonl(out / f"{stem}.jsonl", rows)
    return paths
