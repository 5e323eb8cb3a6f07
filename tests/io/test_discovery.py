"""Input discovery: never a fenced directory (a run fences off RUN_DIRs), no symlink cycle followed, broken
links named, skipped files listed."""

from __future__ import annotations

import json
import os
import threading

import pytest

from toedit.io import Fence, FieldSpec, InputError, Record, list_shards, read_shard
from toedit.io.discovery import discover


def _touch(path, data: bytes = b'{"text": "x"}\n'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _bounded(fn, *args, limit_s: float = 120):
    """Run fn in a thread: a hang (the old glob on a symlink loop) fails the test instead of blocking it."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the test thread
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"{fn.__name__}{args} did not finish (a symlink cycle followed?)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _stop_fence():
    """A toy fence: directories holding a STOP file (runs/ fences off run directories the same way)."""
    return Fence(lambda d: os.path.isfile(os.path.join(d, "STOP")), "fenced", lambda d: f"{d} is fenced off")


def test_a_fence_keeps_its_directories_out_of_walks_and_globs(tmp_path):
    corpus = tmp_path / "corpus"
    _touch(corpus / "a.jsonl")
    _touch(corpus / "out" / "STOP")
    _touch(corpus / "out" / "b.jsonl")
    _touch(corpus / "deep" / "older" / "STOP")
    _touch(corpus / "deep" / "older" / "c.jsonl")
    for inputs in (
        [str(corpus)],
        [str(corpus / "**" / "*.jsonl")],
        [str(corpus / "*")],
        [str(corpus / "**")],
    ):
        found = _bounded(discover, inputs, None, (), _stop_fence())
        assert [s.path for s in found.shards] == [str(corpus / "a.jsonl")], inputs
        fenced = [s.path for s in found.skipped if s.reason == "fenced"]
        assert fenced == [str(corpus / "deep" / "older"), str(corpus / "out")], inputs
    assert len(discover([str(corpus)]).shards) == 3  # io knows no fence of its own
    # named, a fenced directory is refused; the files inside it can still be named
    with pytest.raises(InputError, match="out is fenced off"):
        list_shards([str(corpus / "out")], fence=_stop_fence())
    assert [s.name for s in list_shards([str(corpus / "out" / "b.jsonl")], fence=_stop_fence())] == ["b"]


def test_excluded_directory_is_not_read(tmp_path):
    corpus = tmp_path / "corpus"
    _touch(corpus / "a.jsonl")
    _touch(corpus / "out" / "data" / "a.jsonl")  # a RUN_DIR before its manifest is written
    found = discover([str(corpus)], exclude=[str(corpus / "out")])
    assert [s.name for s in found.shards] == ["a"]
    assert [(s.path, s.reason) for s in found.skipped] == [
        (str(corpus / "out"), "the run's own output directory")
    ]


def test_symlink_cycles_are_not_followed(tmp_path):
    corpus = tmp_path / "corpus"
    _touch(corpus / "a.jsonl")
    _touch(corpus / "sub" / "b.jsonl")
    _touch(tmp_path / "elsewhere" / "c.jsonl")
    os.symlink(corpus, corpus / "sub" / "up")  # a loop back to the top
    os.symlink(corpus / "sub", corpus / "sub" / "self")  # a loop to itself
    os.symlink(tmp_path / "elsewhere", corpus / "linked")  # not a loop: followed
    want = ["a", "linked__c", "sub__b"]
    for inputs in ([str(corpus)], [str(corpus / "**" / "*.jsonl")], [str(corpus / "**")]):
        found = _bounded(discover, inputs)
        assert [s.name for s in found.shards] == want, inputs
        loops = sorted(s.path for s in found.skipped if s.reason.startswith("symbolic link loop"))
        assert loops == [str(corpus / "sub" / "self"), str(corpus / "sub" / "up")], inputs


def test_relative_glob_matches_like_glob(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "r" / "x.jsonl")
    _touch(tmp_path / "top.jsonl")
    os.symlink(tmp_path / "r", tmp_path / "r" / "loop")
    assert [s.path for s in _bounded(list_shards, ["**/*.jsonl"])] == ["r/x.jsonl", "top.jsonl"]
    assert [s.path for s in list_shards(["./*.jsonl"])] == ["./top.jsonl"]
    assert [s.path for s in list_shards(["r/*.jsonl"])] == ["r/x.jsonl"]


@pytest.mark.parametrize("kind", ["self", "dangling"])
def test_broken_file_symlinks_are_input_errors(tmp_path, kind):
    corpus = tmp_path / "corpus"
    _touch(corpus / "a.jsonl")
    link = corpus / "bad.jsonl"
    os.symlink(link if kind == "self" else corpus / "gone.jsonl", link)
    want = "symbolic link loop" if kind == "self" else r"broken symbolic link \(to .*gone.jsonl"
    for inputs in ([str(corpus)], [str(corpus / "*.jsonl")], [str(link)]):
        with pytest.raises(InputError, match=f"bad.jsonl: {want}"):
            discover(inputs)


def test_unsupported_files_are_listed_not_dropped_silently(tmp_path):
    corpus = tmp_path / "corpus"
    _touch(corpus / "a.jsonl")
    _touch(corpus / "notes.csv", b"a,b\n")
    _touch(corpus / "sub" / "x.jsonl.tmp-123")
    _touch(corpus / ".hidden" / "h.csv")  # hidden entries are not inputs: listed, not entered
    _touch(corpus / ".dot.jsonl")
    os.mkfifo(corpus / "pipe.jsonl")
    found = discover([str(corpus)])
    assert [s.name for s in found.shards] == ["a"]
    assert [(os.path.relpath(s.path, corpus), s.reason.split(" (")[0]) for s in found.skipped] == [
        (".dot.jsonl", "hidden"),
        (".hidden", "hidden"),
        ("notes.csv", "unsupported file type"),
        ("pipe.jsonl", "not a regular file"),
        (os.path.join("sub", "x.jsonl.tmp-123"), "unsupported file type"),
    ]
    assert [s.to_json()["path"] for s in discover([str(corpus / "*")]).skipped][0].endswith("notes.csv")
    assert "pass it by name" in found.skipped[0].reason
    assert [s.name for s in list_shards([str(corpus / ".dot.jsonl")])] == [".dot"]
    # files the glob does not name are not listed
    assert [s.path for s in discover([str(corpus / "*.jsonl")]).skipped] == [str(corpus / "pipe.jsonl")]
    assert list_shards([str(corpus)]) == found.shards
    with pytest.raises(
        InputError, match=r"no supported input files under .*sub .*; skipped .*x\.jsonl\.tmp-123"
    ):
        discover([str(corpus / "sub")])


def test_non_utf8_file_name(tmp_path):
    name = os.fsdecode(b"caf\xe9.jsonl")  # Latin-1 bytes: decoded with surrogate escapes
    _touch(tmp_path / "in" / name, b'{"text": "x"}\n{"text": 1}\n')
    (shard,) = list_shards([str(tmp_path / "in")])
    assert shard.name == "caf_"
    record, bad = read_shard(shard, FieldSpec())
    assert isinstance(record, Record) and record.id == "caf_:1"
    assert bad.to_json()["file"].endswith("caf\\xe9.jsonl")
    json.dumps(bad.to_json(), ensure_ascii=False).encode("utf-8")
