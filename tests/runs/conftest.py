"""Scale-out fixtures: a small sharded corpus (with one bad record) and its in-process reference run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import corpus_texts
from toedit.config import EditConfig, IOConfig, RunConfig
from toedit.runs import run_edit

SHARDS = ("p0", "p1", "p2", "p3")
EDIT = EditConfig(threshold=0.2)
IO = IOConfig(docs_per_batch=3)  # several batches per shard: a kill lands mid-shard


def scale_run(model_dir: Path, **kw) -> RunConfig:
    """fp32, the exact reference: in bf16 a document's batch neighbours move its log-probs (~1e-3), so a
    line-split run would not reproduce the unsplit one."""
    return RunConfig(model=str(model_dir), device="cpu", progress=False, dtype="float32", **kw)


def run_tree(run_dir: Path) -> dict[str, bytes]:
    """Every output a run leaves (data/, scores/, errors/, errors.jsonl) by relative path, as bytes."""
    out = {}
    for sub in ("data", "scores", "errors"):
        for path in sorted((run_dir / sub).iterdir()):
            out[f"{sub}/{path.name}"] = path.read_bytes()
    out["errors.jsonl"] = (run_dir / "errors.jsonl").read_bytes()
    return out


def run_stats(run_dir: Path) -> dict:
    return json.loads((run_dir / "stats.json").read_text())


@pytest.fixture(scope="session")
def scale_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale-corpus")
    texts = [t[:220] for t in corpus_texts(32)]
    for s, name in enumerate(SHARDS):
        lines = [json.dumps({"id": f"{name}-{i}", "text": texts[8 * s + i]}) for i in range(8)]
        if name == "p2":
            lines.insert(4, '{"id": "broken", "text": ')  # a bad record: errors must merge the same way
        (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, scale_corpus, tiny_model_dir) -> Path:
    """The corpus edited in this process, one shard after another: what every executor must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run_edit([str(scale_corpus)], str(out), EDIT, io=IO, run=scale_run(tiny_model_dir))
    return out
