"""Offline corpora: the chapter splitter, the pydoc topics, and (integration) Jane Austen from Debian."""

from __future__ import annotations

import json
import pydoc_data.topics
import shutil

import pytest

from toedit.corpora import CorpusError, fetch_corpus, pydoc_documents, split_chapters


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
        None,
        "",
        "",
        "Chapter II",
        "Second line",
        "",
        "VOLUME II",
        "",
        "CHAPTER 3",
        "Third.",
        "",
    ]
    chapters = split_chapters(lines)
    assert [n for n, _ in chapters] == [0, 1, 2, 3]
    assert chapters[0][1] == "TITLE\n\nby someone"
    assert chapters[1][1] == "VOLUME I\n\nCHAPTER I\n\nFirst."
    assert chapters[2][1] == "Chapter II\nSecond line"
    assert chapters[3][1] == "VOLUME II\n\nCHAPTER 3\nThird."
    assert split_chapters(["", "CHAPTER 1", "x"]) == [(1, "CHAPTER 1\nx")]


def test_pydoc_corpus(tmp_path):
    docs = pydoc_documents()
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert all(d["text"] == pydoc_data.topics.topics[d["title"]] for d in docs)
    (path,) = fetch_corpus("pydoc", tmp_path)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == docs
    mtime = path.stat().st_mtime_ns
    assert fetch_corpus("pydoc", tmp_path) == [path] and path.stat().st_mtime_ns == mtime


def test_unknown_corpus():
    with pytest.raises(ValueError, match="austen, pydoc"):
        fetch_corpus("shakespeare", "/tmp/never")


@pytest.mark.integration
def test_austen_from_debian(tmp_path_factory):
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get not available")
    dest = tmp_path_factory.mktemp("austen")
    try:
        paths = fetch_corpus("austen", dest)
    except CorpusError as exc:
        pytest.skip(f"Debian package not reachable: {exc}")
    assert [p.name for p in paths][:2] == ["emma.jsonl", "mansfield_park.jsonl"] and len(paths) == 6
    pp = [
        json.loads(line)
        for line in (dest / "pride_and_prejudice.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    chapters = [r for r in pp if r["chapter"] > 0]
    assert len(chapters) == 61
    assert "It is a truth universally acknowledged" in chapters[0]["text"]
