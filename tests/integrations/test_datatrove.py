"""ToEditStep in datatrove pipelines: equal to `toedit edit` on the same documents and seed, task-split safe."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.data import Document  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from tests.conftest import corpus_texts  # noqa: E402
from toedit.config import ConfigError, EditConfig, IOConfig, RunConfig, ScoreConfig  # noqa: E402
from toedit.editing import STAT_KEYS  # noqa: E402
from toedit.integrations import datatrove as dt_module  # noqa: E402
from toedit.integrations.datatrove import COUNTERS, FORK_THREADS_WARNING, INSTALL_HINT, ToEditStep  # noqa: E402
from toedit.pipeline import content_id, edit_texts  # noqa: E402
from toedit.runs import run_edit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EDIT = EditConfig(threshold=0.2, seed=7)  # low: the tiny prior really edits
# one explicit compile mode on both sides: with `auto`, `toedit edit` scores a small input eagerly while the step
# (which cannot know its input's size) compiles a bf16 CPU body, and compiled and eager bf16 round differently
SCORE = ScoreConfig(compile="off")
BATCH = 3  # divides each file's 6 documents: datatrove and toedit edit then score the same batches
FILES = ("a", "b", "c")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dt-corpus")
    texts = [t[:200] for t in corpus_texts(6 * len(FILES))]
    for f, name in enumerate(FILES):
        lines = [json.dumps({"id": f"{name}-{i}", "text": texts[6 * f + i]}) for i in range(6)]
        (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def run_datatrove(
    corpus: Path,
    out: Path,
    model_dir: Path,
    tasks: int = 1,
    workers: int = 1,
    start_method: str = "forkserver",
    edit: EditConfig = EDIT,
) -> Path:
    step = ToEditStep(str(model_dir), edit, SCORE, device="cpu", docs_per_batch=BATCH)
    LocalPipelineExecutor(
        pipeline=[JsonlReader(str(corpus)), step, JsonlWriter(str(out / "data"), compression=None)],
        tasks=tasks,
        workers=workers,
        logging_dir=str(out / "logs"),
        start_method=start_method,
    ).run()
    return out


def documents(folder: Path) -> dict[str, dict]:
    """Every output record by id (ids are unique in the corpus)."""
    docs = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            assert rec["id"] not in docs
            docs[rec["id"]] = rec
    return docs


def edits(folder: Path) -> dict[str, tuple[str, dict]]:
    return {k: (r["text"], r["metadata"]["toedit"]) for k, r in documents(folder).items()}


def step_totals(run: Path) -> dict[str, int]:
    """The step's counters in datatrove's merged stats.json (totals over tasks)."""
    merged = json.loads((run / "logs" / "stats.json").read_text())
    (ours,) = [s for s in merged if s["name"] == f"{ToEditStep.type}: {ToEditStep.name}"]
    return {label: (v["total"] if isinstance(v, dict) else v) for label, v in ours["stats"].items()}


def task_logs(run: Path) -> str:
    return "".join(p.read_text() for p in sorted((run / "logs" / "logs").glob("task_*.log")))


@pytest.fixture(scope="module")
def toedit_run(tmp_path_factory, corpus, tiny_model_dir) -> Path:
    out = tmp_path_factory.mktemp("toedit") / "run"
    run = RunConfig(model=str(tiny_model_dir), device="cpu", progress=False)
    run_edit([str(corpus)], str(out), EDIT, SCORE, io=IOConfig(docs_per_batch=BATCH), run=run)
    return out


@pytest.fixture(scope="module")
def one_task(tmp_path_factory, corpus, tiny_model_dir) -> Path:
    return run_datatrove(corpus, tmp_path_factory.mktemp("dt-one"), tiny_model_dir)


def test_text_and_stats_equal_toedit_edit(toedit_run, one_task):
    ours, ref = documents(one_task / "data"), documents(toedit_run / "data")
    assert sorted(ours) == sorted(ref) and len(ref) == 6 * len(FILES)
    for doc_id, rec in ref.items():
        assert ours[doc_id]["text"].encode() == rec["text"].encode(), doc_id
        assert ours[doc_id]["metadata"]["toedit"] == rec["toedit"], doc_id
    assert sum(r["toedit"]["n_changed"] > 0 for r in ref.values()) >= 3  # edits really happened

    totals = step_totals(one_task)
    expected = json.loads((toedit_run / "stats.json").read_text())
    assert totals["documents"] == expected["n_records"]
    for key, label in COUNTERS.items():
        assert totals.get(label, 0) == expected[key], label  # datatrove writes a zero total as 0
    assert totals["changed"] > 0


def test_a_different_seed_changes_the_text(tmp_path, corpus, tiny_model_dir, one_task):
    """The seed reaches the random streams: the equality above is not one of unedited texts."""
    other = run_datatrove(corpus, tmp_path, tiny_model_dir, edit=EditConfig(threshold=0.2, seed=8))
    assert edits(other / "data") != edits(one_task / "data")


def test_two_tasks_two_workers_give_the_union_of_one_task(tmp_path, corpus, tiny_model_dir, one_task):
    # the default start method (forkserver): each worker unpickles the step and loads its own prior
    run = run_datatrove(corpus, tmp_path, tiny_model_dir, tasks=2, workers=2)
    parts = sorted((run / "data").glob("*.jsonl"))
    assert [p.name for p in parts] == ["00000.jsonl", "00001.jsonl"]
    assert all(p.stat().st_size > 0 for p in parts)  # both tasks edited documents
    assert sorted(p.name for p in (run / "logs" / "completions").iterdir()) == ["00000", "00001"]
    assert edits(run / "data") == edits(one_task / "data")
    assert step_totals(run) == step_totals(one_task)
    assert FORK_THREADS_WARNING not in task_logs(run)


FORK_SCRIPT = """
import sys
from pathlib import Path

import torch

from tests.integrations.test_datatrove import run_datatrove

torch.randn(256, 256) @ torch.randn(256, 256)  # OpenMP's thread pool is up before the fork
corpus, out, model_dir = map(Path, sys.argv[1:4])
run_datatrove(corpus, out, model_dir, tasks=3, workers=2, start_method="fork")
"""


def test_forked_workers_after_torch_ran_in_the_parent(tmp_path, corpus, tiny_model_dir, one_task):
    """Without the 1-thread rule a forked task hangs here; a subprocess, so a hang times out."""
    out = tmp_path / "run"
    args = [sys.executable, "-c", FORK_SCRIPT, str(corpus), str(out), str(tiny_model_dir)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((out / "logs" / "completions").iterdir())) == 3
    assert edits(out / "data") == edits(one_task / "data")
    assert FORK_THREADS_WARNING in task_logs(out)


def docs_example() -> str:
    text = (ROOT / "docs" / "scale.md").read_text(encoding="utf-8")
    section = re.split(r"\n##+ ", text.split("\n## datatrove\n", 1)[1], maxsplit=1)[0]
    (code,) = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    return code


def test_scale_doc_example_runs_as_written(tmp_path, corpus, tiny_model_dir, monkeypatch):
    code = docs_example()
    assert 'MODEL = "default"' in code and "threshold=0.99" in code
    # the tiny prior, and a threshold it passes: the example's own 0.99 would leave its text unedited
    code = code.replace('MODEL = "default"', f"MODEL = {str(tiny_model_dir)!r}").replace("0.99", "0.2")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(corpus, tmp_path / "data")
    exec(compile(code, "docs/scale.md (datatrove example)", "exec"), {"__name__": "__main__"})
    out = documents(tmp_path / "runs" / "dt-edited")
    assert len(out) == 6 * len(FILES) and any(r["metadata"]["toedit"]["n_changed"] for r in out.values())
    assert len(list((tmp_path / "runs" / "dt-logs" / "completions").iterdir())) == 4


# ---- the step in this process: parameters reach the code they control


def docs(n: int) -> list[Document]:
    return [Document(text=t[:120], id=f"d{i}") for i, t in enumerate(corpus_texts(n))]


def test_parameters_reach_the_prior_and_the_batches(monkeypatch, tiny_prior):
    loads, calls, threads = [], [], []
    monkeypatch.setattr(dt_module, "load_prior", lambda *a: loads.append(a) or tiny_prior)

    def recording(texts, prior, config, ids, score_config):
        calls.append((len(texts), ids, config, score_config))
        return edit_texts(texts, prior, config, ids=ids, score_config=score_config)

    monkeypatch.setattr(dt_module, "edit_texts", recording)
    monkeypatch.setattr("torch.set_num_threads", threads.append)
    score = ScoreConfig(token_budget=333)
    step = ToEditStep("some/model", EDIT, score, device="cpu", dtype="float32", docs_per_batch=4, threads=3)
    assert loads == []  # nothing loads when the step is built
    out = list(step.run(iter(docs(10))))
    assert loads == [("some/model", "cpu", "float32", False)]  # once for all batches
    assert threads == [3]
    assert [c[0] for c in calls] == [4, 4, 2]
    assert calls[0][1] == ["d0", "d1", "d2", "d3"] and all(c[2] is EDIT and c[3] is score for c in calls)
    assert [d.id for d in out] == [f"d{i}" for i in range(10)]
    assert step.stats["documents"].total == 10
    assert step.stats["tokens"].total == sum(d.metadata["toedit"]["n_tokens"] for d in out) > 0


def test_metadata_and_spans_match_edit_texts(tiny_prior, monkeypatch):
    monkeypatch.setattr(dt_module, "load_prior", lambda *a: tiny_prior)
    config = EditConfig(threshold=0.2, record_spans=True)
    inputs = docs(5)
    ref = edit_texts([d.text for d in inputs], tiny_prior, config, ids=[d.id for d in inputs])
    out = list(ToEditStep("tiny", config, docs_per_batch=2).run(iter(inputs)))
    for doc, r in zip(out, ref, strict=True):
        assert doc.text == r.text
        assert doc.metadata["toedit"] == r.stats.to_dict() | {"spans": r.spans or []}
    assert any(d.metadata["toedit"]["spans"] for d in out)


def test_the_step_pickles_without_its_prior(tiny_prior, monkeypatch):
    monkeypatch.setattr(dt_module, "load_prior", lambda *a: tiny_prior)
    step = ToEditStep("tiny", EDIT)
    list(step.run(iter(docs(2))))
    assert step._prior is tiny_prior
    clone = pickle.loads(pickle.dumps(step))
    assert clone._prior is None and clone.config == EDIT


def test_counters_cover_every_stat():
    assert set(COUNTERS) == set(STAT_KEYS)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="calibrate_threshold"):
        ToEditStep(config=EditConfig(target_change_rate=0.1))
    with pytest.raises(ConfigError, match="docs_per_batch"):
        ToEditStep(docs_per_batch=0)
    with pytest.raises(ConfigError, match="threshold"):
        ToEditStep(config=EditConfig(threshold=2.0))


def test_bad_documents_are_counted_and_left_out_the_rest_of_the_batch_is_kept(tiny_prior, monkeypatch):
    """As `toedit edit` treats bad records: a lone surrogate or a text that is not a str is logged with its id,
    counted (`bad_documents`) and left out; the good documents of the same batch are edited."""
    monkeypatch.setattr(dt_module, "load_prior", lambda *a: tiny_prior)
    warnings: list[str] = []
    monkeypatch.setattr(dt_module.logger, "warning", warnings.append)
    inputs = [
        Document(text="ok", id="a"),
        Document(text="x\ud800", id="b"),
        Document(text=None, id="c"),
        Document(text="fine too", id="d"),
    ]
    step = ToEditStep("tiny", EditConfig(threshold=1.0), docs_per_batch=2)
    out = list(step.run(iter(inputs)))
    assert [d.id for d in out] == ["a", "d"] and [d.text for d in out] == ["ok", "fine too"]
    assert step.stats["bad_documents"].total == 2 and step.stats["documents"].total == 2
    assert "'b'" in warnings[0] and "lone surrogate U+D800" in warnings[0]
    assert "'c'" in warnings[1] and "text is null, expected str" in warnings[1]
    assert list(ToEditStep("tiny").run(iter([Document(text=None, id="x")]))) == []


def test_documents_without_an_id_get_their_own_streams(tiny_prior, monkeypatch):
    """The stream of a document without an id is keyed by its content hash (as edit_batch keys rows), not by
    one shared empty id; an own `toedit` metadata entry is kept (the stats go to `toedit_1`)."""
    monkeypatch.setattr(dt_module, "load_prior", lambda *a: tiny_prior)
    seen: list[list[str]] = []

    def recording(texts, prior, config, ids, score_config):
        seen.append(list(ids))
        return edit_texts(texts, prior, config, ids=ids, score_config=score_config)

    monkeypatch.setattr(dt_module, "edit_texts", recording)
    texts = [t[:120] for t in corpus_texts(3)]
    inputs = [Document(text=texts[0], id=""), Document(text=texts[1], id=""), Document(text=texts[2], id="k")]
    inputs[0].metadata["toedit"] = "earlier"
    out = list(ToEditStep("tiny", EDIT).run(iter(inputs)))
    (ids,) = seen
    assert ids[2] == "k" and len(set(ids)) == 3 and ids[0] == content_id(texts[0])
    ref = edit_texts(texts[:1], tiny_prior, EDIT, ids=[content_id(texts[0])])
    assert out[0].text == ref[0].text
    assert out[0].metadata["toedit"] == "earlier" and out[0].metadata["toedit_1"] == ref[0].stats.to_dict()


def test_missing_datatrove_names_the_extra():
    code = (
        "import sys; sys.modules['datatrove'] = None\n"  # makes `import datatrove...` fail
        "from toedit.integrations.datatrove import ToEditStep\n"
        "try:\n    ToEditStep()\nexcept ImportError as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert INSTALL_HINT in proc.stdout and "pip install 'toedit[datatrove]'" in INSTALL_HINT
