"""content_hash: the bytes' sha256, re-hashed only when a file changes; the cache survives concurrent writers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from toedit.io import hashing
from toedit.io.hashing import cache_file, content_hash, content_hashes

OLD_NS = 1_600_000_000 * 10**9  # an mtime far from now: outside the racy window


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TOEDIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def calls(monkeypatch):
    """The files actually read and hashed."""
    seen: list[str] = []
    real = hashing._sha256_file

    def counting(path):
        seen.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(hashing, "_sha256_file", counting)
    return seen


def _file(path, data: bytes, mtime_ns: int = OLD_NS):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_digest_is_sha256_of_the_bytes_streamed(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(hashing, "CHUNK", 7)  # many chunks
    data = os.urandom(1000)
    assert content_hash(_file(tmp_path / "f.bin", data)) == hashlib.sha256(data).hexdigest()
    assert content_hash(_file(tmp_path / "empty", b"")) == hashlib.sha256(b"").hexdigest()
    assert cache_file() == cache / "hashes.json"


def test_rehash_only_when_the_file_changes(tmp_path, cache, calls):
    f = _file(tmp_path / "a.jsonl", b'{"text": "one"}\n')
    first = content_hash(f)
    assert content_hash(f) == first and content_hash(str(f)) == first
    assert calls == ["a.jsonl"]  # the second and third calls read the cache
    hashing.flush()
    assert str(f.resolve()) in json.loads((cache / "hashes.json").read_text())["files"]

    _file(f, b'{"text": "two"}\n')  # same size, same mtime: ctime and the digest differ
    second = content_hash(f)
    assert second != first and second == hashlib.sha256(b'{"text": "two"}\n').hexdigest()
    _file(f, b'{"text": "three"}\n')  # another size
    assert content_hash(f) == hashlib.sha256(b'{"text": "three"}\n').hexdigest()
    os.utime(f, ns=(OLD_NS + 5, OLD_NS + 5))  # only the mtime: re-read, same digest
    assert content_hash(f) == hashlib.sha256(b'{"text": "three"}\n').hexdigest()
    assert calls == ["a.jsonl"] * 4


def test_recently_modified_files_are_not_cached(tmp_path, cache, calls):
    f = _file(tmp_path / "fresh.txt", b"x", mtime_ns=time.time_ns())
    content_hash(f)
    content_hash(f)
    assert calls == ["fresh.txt", "fresh.txt"]  # a write within the same timestamp tick could be missed


def test_directory_digest_follows_contents_names_and_presence(tmp_path, cache, calls):
    a = tmp_path / "a"
    _file(a / "config.json", b"{}")
    _file(a / "sub" / "w.bin", b"\0" * 64)
    digest = content_hash(a)
    shutil.copytree(a, tmp_path / "b")
    for p in (tmp_path / "b").rglob("*"):
        os.utime(p, ns=(OLD_NS, OLD_NS))
    assert content_hash(tmp_path / "b") == digest  # a copy elsewhere: same contents, same digest
    _file(tmp_path / "b" / "sub" / "w.bin", b"\1" + b"\0" * 63)
    changed = content_hash(tmp_path / "b")
    (tmp_path / "b" / "sub" / "w.bin").rename(tmp_path / "b" / "sub" / "v.bin")
    renamed = content_hash(tmp_path / "b")
    _file(tmp_path / "b" / "extra", b"")
    assert len({digest, changed, renamed, content_hash(tmp_path / "b")}) == 4
    os.symlink(a, a / "sub" / "loop")  # a cycle is entered once: no new files, no hang
    assert content_hash(a) == digest
    both = content_hashes([a / "config.json", a])
    assert both[str(a / "config.json")] == hashlib.sha256(b"{}").hexdigest()


def test_unusable_cache_still_hashes(tmp_path, monkeypatch, calls):
    blocker = _file(tmp_path / "not-a-dir", b"")
    monkeypatch.setenv("TOEDIT_CACHE", str(blocker))  # the cache dir cannot be created
    f = _file(tmp_path / "f", b"data")
    assert content_hash(f) == content_hash(f) == hashlib.sha256(b"data").hexdigest()
    monkeypatch.setenv("TOEDIT_CACHE", str(tmp_path / "c2"))
    (tmp_path / "c2").mkdir()
    (tmp_path / "c2" / "hashes.json").write_text("{not json")  # a corrupt cache is rebuilt
    assert content_hash(f) == hashlib.sha256(b"data").hexdigest()
    hashing.flush()
    assert json.loads((tmp_path / "c2" / "hashes.json").read_text())["version"] == 1


def test_single_calls_write_the_cache_in_batches(tmp_path, cache, monkeypatch):
    """Hashing N files one call at a time does not rewrite the cache file N times (quadratic in N)."""
    stores = []
    real = hashing._store
    monkeypatch.setattr(hashing, "_store", lambda path, new: stores.append(len(new)) or real(path, new))
    monkeypatch.setattr(hashing, "FLUSH_EVERY_S", 1e9)
    monkeypatch.setattr(hashing._MEM, "flushed_at", float("-inf"))
    files = [_file(tmp_path / "in" / f"f{i:03d}", str(i).encode()) for i in range(200)]
    for f in files:
        content_hash(f)
    assert stores == [1]  # the first entry at once, the rest held
    hashing.flush()
    assert stores == [1, 199]
    on_disk = hashing._load(cache_file())
    assert {str(f.resolve()) for f in files} <= set(on_disk)
    # another process's write is seen: the file changed, so the in-memory copy is re-read
    real(cache_file(), {"/elsewhere": {"id": [0], "sha256": "x", "stored": 0}})
    assert "/elsewhere" in hashing._entries(cache_file())


_WORKER = """
import os, sys
from toedit.io import hashing
from toedit.io.hashing import content_hash
hashing.FLUSH_EVERY_S = 0  # write after every file: as many chances to collide as possible
for path in sys.argv[1:]:
    os.utime(path, ns=(1_600_000_000 * 10**9,) * 2)
    content_hash(path)
"""


@pytest.mark.slow
def test_concurrent_processes_keep_every_entry(tmp_path, cache):
    """Two processes store 40 entries each at once: under the lock no update is lost, the file stays valid."""
    files = [str(_file(tmp_path / "in" / f"f{i:03d}", str(i).encode())) for i in range(80)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    code = _WORKER
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *files[k::2]], env=env, stderr=subprocess.PIPE)
        for k in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    stored = json.loads((cache / "hashes.json").read_text())["files"]
    assert {os.path.realpath(f) for f in files} <= set(stored)
    assert all(
        stored[os.path.realpath(f)]["sha256"] == hashlib.sha256(str(i).encode()).hexdigest()
        for i, f in enumerate(files)
    )
    assert not [p for p in os.listdir(cache) if ".tmp-" in p]
