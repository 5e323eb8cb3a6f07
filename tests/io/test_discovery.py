"""Input discovery: never a RUN_DIR, no symlink cycle followed, broken links named, skipped files listed."""

from __future__ import annotations

import json
import os
import threading

import pytest

from toedit.io import FieldSpec, InputError, Record, list_shards, read_shard
from toedit.io.discovery import RUN_DIR_REASON, discover, is_run_dir

MANIFEST = {"kind": "edit", "fingerprint": "abc", "inputs": []}


def _touch(path, data: bytes = b'{"text": "x"}\n'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _fake_run(run):
    """A RUN_DIR as `toedit edit` leaves it: its outputs are JSONL/parquet files a walk would read."""
    _touch(run / "manifest.json", json.dumps(MANIFEST).encode())
    _touch(run / "data" / "a.jsonl", b'{"text": "edited"}\n')
    _touch(run / "errors.jsonl", b'{"file": "f", "line": 1, "reason": "r"}\n')
    _touch(run / "stats.json", b"{}")
    return run


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


def test_is_run_dir(tmp_path):
    assert is_run_dir(_fake_run(tmp_path / "run"))
    for i, body in enumerate([b'{"kind": "edit"}', b"[1]", b"{not json", b'{"fingerprint": 1}']):
        assert not is_run_dir(_touch(tmp_path / f"other{i}" / "manifest.json", body).parent)
    assert not is_run_dir(tmp_path / "missing")
    assert not is_run_dir(_touch(tmp_path / "file.jsonl"))


def test_walks_and_globs_never_read_a_run_dir(tmp_path):
    corpus = tmp_path / "corpus"
    _touch(corpus / "a.jsonl")
    run = _fake_run(corpus / "run")
    _fake_run(corpus / "deep" / "older-run")
    for inputs in (
        [str(corpus)],
        [str(corpus / "**" / "*.jsonl")],
        [str(corpus / "*")],
        [str(corpus / "**")],
    ):
        found = _bounded(discover, inputs)
        assert [s.path for s in found.shards] == [str(corpus / "a.jsonl")], inputs
        runs = [s for s in found.skipped if s.reason == RUN_DIR_REASON]
        assert [s.path for s in runs] == [str(corpus / "deep" / "older-run"), str(run)], inputs
    # named explicitly, a run's outputs can be read (a second round of editing); the run dir itself cannot
    assert [s.path for s in list_shards([str(run / "data")])] == [str(run / "data" / "a.jsonl")]
    assert [s.path for s in list_shards([str(run / "data" / "*.jsonl")])] == [str(run / "data" / "a.jsonl")]
    with pytest.raises(InputError, match="is a toedit run directory; to read its edited documents, pass"):
        list_shards([str(run)])


def test_excluded_directory_is_not_read(tmp_path):
    corpus = tmp_path / "corpus"
    _touch(corpus / "a.jsonl")
    _touch(corpus / "out" / "data" / "a.jsonl")  # a RUN_DIR before its manifest is written
    found = discover([str(corpus)], exclude=[str(corpus / "out")])
    assert [s.name for s in found.shards] == ["a"]
    assert [(s.path, s.reason) for s in found.skipped] == [
        (str(corpus / "out"), "the run's own output directory")
    ]


def test_rerun_with_run_dir_inside_the_input_dir_reads_only_the_inputs(tmp_path, tiny_prior):
    from toedit.config import EditConfig, RunConfig
    from toedit.runs import run_edit

    corpus = tmp_path / "corpus"
    _touch(corpus / "docs.jsonl", b"".join(b'{"text": "document %d"}\n' % i for i in range(3)))
    out = str(corpus / "run")
    summaries = [
        run_edit([str(corpus)], out, EditConfig(), run=RunConfig(progress=False), prior=tiny_prior)
        for _ in range(2)
    ]
    assert [s.stats["n_records"] for s in summaries] == [3, 3]
    assert sorted(os.listdir(corpus / "run" / "data")) == ["docs.jsonl"]
    assert not (corpus / "run" / "errors.jsonl").exists() or not (corpus / "run" / "errors.jsonl").read_text()


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
