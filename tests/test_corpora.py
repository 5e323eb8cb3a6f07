"""Offline corpora: the chapter splitter, R lazy-load records, the pydoc topics, Austen from Debian."""

from __future__ import annotations

import bz2
import json
import lzma
import os
import pydoc_data.topics
import shutil
import stat
import zlib

import pytest

from toedit.corpora import (
    CORPORA,
    CorpusError,
    austen_documents,
    decompress_rdb_record,
    fetch_corpus,
    pydoc_documents,
    split_chapters,
)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------------------------
# chapter splitter


def test_split_chapters():
    lines = [
        "TITLE",
        "",
        "by someone",
        "",
        "VOLUME I",
        "",
        "CHAPTER I",
        "",
        "First.",
        None,  # NA in the R vector
        "",
        "",
        "Chapter II",
        "Second line",
        float("nan"),
        "",
        "VOLUME II",
        "",
        "CHAPTER 3",
        "Third.",
        "",
        "  Chapter XLIV.",
        "last",
        None,
    ]
    chapters = split_chapters(lines)
    assert [n for n, _ in chapters] == [0, 1, 2, 3, 4]
    assert chapters[0][1] == "TITLE\n\nby someone"
    assert chapters[1][1] == "VOLUME I\n\nCHAPTER I\n\nFirst."
    assert chapters[2][1] == "Chapter II\nSecond line"
    assert chapters[3][1] == "VOLUME II\n\nCHAPTER 3\nThird."
    assert chapters[4][1] == "  Chapter XLIV.\nlast"


def test_split_chapters_edge_cases():
    # empty front matter is dropped, a heading keeps its own line, NA-only front matter is empty
    assert split_chapters(["", None, "CHAPTER 1", "x", "", ""]) == [(1, "CHAPTER 1\nx")]
    # not headings: lower case, no number, words after "Chapter" that are not numerals
    text = ["chapter 1", "CHAPTER", "Chapter the first", "CHAPTERS 2"]
    assert split_chapters(text) == [(0, "\n".join(text))]
    # no heading at all: everything is front matter; nothing at all: no chapters
    assert split_chapters(["a", "", "b", ""]) == [(0, "a\n\nb")]
    assert split_chapters([]) == [] and split_chapters(["", None]) == []
    # a chapter with only its heading
    assert split_chapters(["Chapter 1", "", "Chapter 2", "y"]) == [(1, "Chapter 1"), (2, "Chapter 2\ny")]


# ---------------------------------------------------------------------------------------------------------
# R lazy-load records


@pytest.mark.parametrize(
    ("compressed", "encode"),
    [
        (True, lambda b: zlib.compress(b)),
        (1, lambda b: zlib.compress(b)),
        (2, lambda b: b"2" + bz2.compress(b)),
        (2, lambda b: b"0" + b),
        (3, lambda b: b"Z" + lzma.compress(b)),
        (3, lambda b: b"2" + bz2.compress(b)),
        (3, lambda b: b"1" + zlib.compress(b)),
        (3, lambda b: b"0" + b),
    ],
)
def test_decompress_rdb_record(compressed, encode):
    body = b"X\n" + bytes(range(256)) * 40
    record = len(body).to_bytes(4, "big") + encode(body)
    assert decompress_rdb_record(record, compressed) == body


def test_decompress_rdb_record_errors():
    body = b"payload" * 10
    with pytest.raises(CorpusError, match="unknown type byte b'Q'"):
        decompress_rdb_record(len(body).to_bytes(4, "big") + b"Q" + body, 3)
    with pytest.raises(CorpusError, match="cannot decompress"):
        decompress_rdb_record(len(body).to_bytes(4, "big") + b"Z" + body, 3)
    with pytest.raises(CorpusError, match="header says"):
        decompress_rdb_record((len(body) + 1).to_bytes(4, "big") + zlib.compress(body), True)
    with pytest.raises(CorpusError, match="too short"):
        decompress_rdb_record(b"\0\0\0", True)


# ---------------------------------------------------------------------------------------------------------
# pydoc


def test_pydoc_documents():
    docs = pydoc_documents()
    topics = pydoc_data.topics.topics
    assert docs and all(d["text"] for d in docs)
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert ids == [f"pydoc:{k}" for k in sorted(topics) if topics[k]]
    assert all(d["text"] == topics[d["title"]] for d in docs)
    assert {d["source"] for d in docs} == {"cpython pydoc_data.topics"}
    assert all(set(d) == {"id", "source", "title", "text"} for d in docs)


def test_fetch_pydoc_roundtrip_and_idempotent(tmp_path):
    dest = tmp_path / "out" / "pydoc"  # created on demand
    (path,) = fetch_corpus("pydoc", dest)
    assert path == dest / "pydoc_topics.jsonl"
    assert read_jsonl(path) == pydoc_documents()
    assert sorted(os.listdir(dest)) == ["pydoc_topics.jsonl"]  # no temporary file left behind
    mtime = path.stat().st_mtime_ns
    assert fetch_corpus("pydoc", str(dest)) == [path]
    assert path.stat().st_mtime_ns == mtime


def test_unknown_corpus(tmp_path):
    with pytest.raises(ValueError, match="available: austen, pydoc"):
        fetch_corpus("shakespeare", tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert CORPORA == ("austen", "pydoc")


# ---------------------------------------------------------------------------------------------------------
# Austen: failure paths with a stand-in apt-get (fast), the real package (integration)


def _fake_tool(bindir, name, script):
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_austen_download_failure_is_explained(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    _fake_tool(
        bindir,
        "apt-get",
        f'echo "$@" >> {log}\n'
        'if [ "$1" = download ]; then echo "E: Unable to locate package $2" >&2; exit 100; fi\nexit 0',
    )
    _fake_tool(bindir, "dpkg-deb", "exit 0")
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(CorpusError, match="apt-get download r-cran-janeaustenr` failed") as info:
        list(austen_documents(tmp_path / "work"))
    assert isinstance(info.value, RuntimeError) and "by hand" in str(info.value)
    # an unknown package triggers exactly one `apt-get update` and one retry
    assert log.read_text().splitlines() == [
        "download r-cran-janeaustenr",
        "update -qq",
        "download r-cran-janeaustenr",
    ]
    with pytest.raises(CorpusError):
        fetch_corpus("austen", tmp_path / "dest", workdir=tmp_path / "w")
    assert not list((tmp_path / "dest").glob("*.jsonl"))


def test_austen_without_apt(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(CorpusError, match="apt-get/dpkg-deb not found"):
        fetch_corpus("austen", tmp_path / "dest")


@pytest.fixture(scope="session")
def austen_dir(tmp_path_factory):
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get/dpkg-deb not on PATH: the Austen corpus needs a Debian-like system")
    dest = tmp_path_factory.mktemp("austen")
    try:
        fetch_corpus("austen", dest)
    except CorpusError as exc:
        pytest.skip(f"Debian package r-cran-janeaustenr not reachable: {exc}")
    return dest


@pytest.mark.integration
def test_austen_from_debian(austen_dir):
    paths = fetch_corpus("austen", austen_dir)  # cached: returns the files without refetching
    assert [p.name for p in paths] == [
        "emma.jsonl",
        "mansfield_park.jsonl",
        "northanger_abbey.jsonl",
        "persuasion.jsonl",
        "pride_and_prejudice.jsonl",
        "sense_and_sensibility.jsonl",
    ]
    books = {p.stem: read_jsonl(p) for p in paths}
    counts = {stem: sum(r["chapter"] > 0 for r in rows) for stem, rows in books.items()}
    assert counts == {
        "emma": 55,
        "mansfield_park": 48,
        "northanger_abbey": 31,
        "persuasion": 24,
        "pride_and_prejudice": 61,
        "sense_and_sensibility": 50,
    }
    for stem, rows in books.items():
        assert [r["chapter"] for r in rows if r["chapter"] > 0] == list(range(1, counts[stem] + 1))
        assert all(r["id"] == f"{stem}:ch{r['chapter']:03d}" and r["book"] == stem for r in rows)
        assert all(r["source"] == "r-cran-janeaustenr (Debian)" and r["text"].strip() for r in rows)
        assert all(r["text"] == r["text"].rstrip("\n") for r in rows)
    pp = [r for r in books["pride_and_prejudice"] if r["chapter"] > 0]
    assert pp[0]["title"] == "Pride and Prejudice" and pp[0]["text"].startswith("Chapter 1\n")
    assert "It is a truth universally acknowledged" in pp[0]["text"]
    assert books["emma"][1]["text"].startswith("VOLUME I\n")
