"""Runs: outputs, bad records, resume (also after a kill), config guards, fields modes, formats."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import TRICKY_TEXTS, corpus_texts
from toedit.config import EditConfig, IOConfig, RunConfig, ScoreConfig
from toedit.editing import STAT_KEYS
from toedit.runs import RunDirError, TooManyErrors, run_edit, run_report, run_score, run_status

QUIET = RunConfig(progress=False)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def docs(n: int = 12, prefix: str = "d") -> list[dict]:
    texts = [t[:250] for t in corpus_texts(n)]
    return [{"id": f"{prefix}{i}", "text": t, "meta": {"n": i}} for i, t in enumerate(texts)]


def test_edit_run_writes_outputs_scores_markers_and_stats(tmp_path, tiny_prior):
    src = write_jsonl(tmp_path / "in" / "a.jsonl", docs())
    summary = run_edit(
        [str(src)], str(tmp_path / "run"), EditConfig(threshold=0.2), run=QUIET, prior=tiny_prior
    )
    run = tmp_path / "run"
    out = read_jsonl(run / "data" / "a.jsonl")
    assert [r["id"] for r in out] == [d["id"] for d in docs()]
    assert [r["meta"] for r in out] == [d["meta"] for d in docs()]
    assert all(
        set(r["toedit"]) == set(STAT_KEYS)  # every counter, the change kinds included
        for r in out
    )
    assert sum(r["toedit"]["n_changed"] for r in out) == summary.stats["n_changed"] > 0
    assert (run / "done" / "a.json").exists() and (run / "manifest.json").exists()
    scores = pq.read_table(run / "scores" / "a.parquet")
    assert scores.column("id").to_pylist() == [d["id"] for d in docs()]
    assert sum(len(x) for x in scores.column("logprob").to_pylist()) == summary.stats["n_tokens"]
    stats = json.loads((run / "stats.json").read_text())
    assert stats["n_records"] == 12 and sum(stats["prob_hist"]) == stats["n_scored"]
    status = run_status(str(run))
    assert status["shards_done"] == 1 and not status["pending"]
    assert "Token probabilities" in run_report(str(run))


def test_bad_records_are_reported_and_valid_ones_kept(tmp_path, tiny_prior):
    src = tmp_path / "bad.jsonl"
    good = docs(4)
    lines = [
        json.dumps(good[0]).encode(),
        b'{"id": "x", "text": ',  # invalid JSON
        b"\xff\xfe not utf-8",
        json.dumps({"id": "y"}).encode(),  # missing field
        json.dumps({"id": "z", "text": 5}).encode(),  # wrong type
        json.dumps({"id": "empty", "text": ""}).encode(),  # valid, empty
        json.dumps(good[1]).encode(),
        b"[1, 2]",
        json.dumps(good[2]).encode(),
    ]
    src.write_bytes(b"\n".join(lines) + b"\n")
    summary = run_edit(
        [str(src)], str(tmp_path / "run"), EditConfig(threshold=0.2), run=QUIET, prior=tiny_prior
    )
    errors = read_jsonl(tmp_path / "run" / "errors.jsonl")
    assert [e["line"] for e in errors] == [2, 3, 4, 5, 8]
    assert all(e["file"] == str(src) and e["reason"] for e in errors)
    out = read_jsonl(tmp_path / "run" / "data" / "bad.jsonl")
    assert [r["id"] for r in out] == [good[0]["id"], "empty", good[1]["id"], good[2]["id"]]
    assert out[1]["text"] == "" and out[1]["toedit"]["n_tokens"] == 0
    assert summary.stats["n_errors"] == 5 and summary.stats["n_empty"] == 1
    with pytest.raises(TooManyErrors, match="max-errors"):
        run_edit([str(src)], str(tmp_path / "run2"), io=IOConfig(max_errors=2), run=QUIET, prior=tiny_prior)


def test_rerun_resumes_and_a_different_config_is_refused(tmp_path, tiny_prior):
    for i in range(3):
        write_jsonl(tmp_path / "in" / f"part{i}.jsonl", docs(4, prefix=f"p{i}-"))
    run = str(tmp_path / "run")
    first = run_edit([str(tmp_path / "in")], run, EditConfig(threshold=0.2), run=QUIET, prior=tiny_prior)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run" / "data").iterdir()}
    again = run_edit([str(tmp_path / "in")], run, EditConfig(threshold=0.2), run=QUIET, prior=tiny_prior)
    assert again.shards_done_before == 3 and again.tokens_this_run == 0
    assert again.stats == first.stats
    with pytest.raises(RunDirError, match="different configuration"):
        run_edit([str(tmp_path / "in")], run, EditConfig(threshold=0.3), run=QUIET, prior=tiny_prior)
    run_edit(
        [str(tmp_path / "in")],
        run,
        EditConfig(threshold=0.3),
        run=RunConfig(progress=False, overwrite=True),
        prior=tiny_prior,
    )
    run_edit(
        [str(tmp_path / "in")],
        run,
        EditConfig(threshold=0.2),
        run=RunConfig(progress=False, overwrite=True),
        prior=tiny_prior,
    )
    assert {p.name: p.read_bytes() for p in (tmp_path / "run" / "data").iterdir()} == before


def test_outputs_identical_across_batch_and_window_sizes(tmp_path, tiny_prior):
    rows = docs(10) + [{"id": f"t{i}", "text": t} for i, t in enumerate(TRICKY_TEXTS)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    outputs = []
    settings = [
        (ScoreConfig(), IOConfig()),
        (ScoreConfig(token_budget=64, head_chunk=5), IOConfig(docs_per_batch=1)),
        (ScoreConfig(token_budget=10_000), IOConfig(docs_per_batch=7)),
    ]
    for i, (score, io) in enumerate(settings):
        run_edit(
            [str(src)], str(tmp_path / f"r{i}"), EditConfig(threshold=0.2), score, io, QUIET, prior=tiny_prior
        )
        outputs.append((tmp_path / f"r{i}" / "data" / "in.jsonl").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_threshold_one_keeps_every_format_byte_identical(tmp_path, tiny_prior):
    texts = TRICKY_TEXTS + [t[:300] for t in corpus_texts(3)]
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": t} for t in texts])
    pq.write_table(pa.table({"text": texts, "k": list(range(len(texts)))}), tmp_path / "in" / "b.parquet")
    (tmp_path / "in" / "c.txt").write_bytes("line one\r\n  café 😀 東京\ttab  \r\n".encode())
    run_edit(
        [str(tmp_path / "in")], str(tmp_path / "run"), EditConfig(threshold=1.0), run=QUIET, prior=tiny_prior
    )
    data = tmp_path / "run" / "data"
    assert [r["text"] for r in read_jsonl(data / "a.jsonl")] == texts
    table = pq.read_table(data / "b.parquet")
    assert table.column("text").to_pylist() == texts and table.column("k").to_pylist() == list(
        range(len(texts))
    )
    assert (data / "c.txt").read_bytes() == (tmp_path / "in" / "c.txt").read_bytes()


def test_long_document_comes_back_whole(tmp_path, tiny_prior):
    text = "\n".join(corpus_texts(30))
    src = write_jsonl(tmp_path / "long.jsonl", [{"text": text}])
    summary = run_edit(
        [str(src)],
        str(tmp_path / "run"),
        EditConfig(threshold=1.0),
        ScoreConfig(window=32, stride=24),
        run=QUIET,
        prior=tiny_prior,
    )
    assert summary.stats["n_tokens"] > 10 * 32 and summary.stats["n_scored"] == summary.stats["n_tokens"]
    assert read_jsonl(tmp_path / "run" / "data" / "long.jsonl")[0]["text"] == text


def test_messages_mode_edits_only_chosen_roles(tmp_path, tiny_prior):
    texts = corpus_texts(9)
    rows = [
        {
            "messages": [
                {"role": "system", "content": texts[3 * i][:200]},
                {"role": "user", "content": texts[3 * i + 1][:200]},
                {"role": "assistant", "content": texts[3 * i + 2][:200], "extra": True},
            ],
            "source": "chat",
        }
        for i in range(3)
    ]
    src = write_jsonl(tmp_path / "chat.jsonl", rows)
    io = IOConfig(messages_field="messages", roles="assistant")
    run_edit(
        [str(src)],
        str(tmp_path / "run"),
        EditConfig(threshold=0.0, exclude_original=True),
        io=io,
        run=QUIET,
        prior=tiny_prior,
    )
    out = read_jsonl(tmp_path / "run" / "data" / "chat.jsonl")
    for before, after in zip(rows, out, strict=True):
        assert after["source"] == "chat"
        assert after["messages"][:2] == before["messages"][:2]
        assert after["messages"][2]["content"] != before["messages"][2]["content"]
        assert after["messages"][2]["extra"] is True


def test_response_field_mode_edits_only_the_response(tmp_path, tiny_prior):
    texts = corpus_texts(4)
    rows = [{"instruction": texts[i][:150], "output": texts[i + 1][:200]} for i in range(3)]
    src = write_jsonl(tmp_path / "sft.jsonl", rows)
    io = IOConfig(response_field="output")
    run_edit(
        [str(src)],
        str(tmp_path / "run"),
        EditConfig(threshold=0.0, exclude_original=True),
        io=io,
        run=QUIET,
        prior=tiny_prior,
    )
    out = read_jsonl(tmp_path / "run" / "data" / "sft.jsonl")
    assert [r["instruction"] for r in out] == [r["instruction"] for r in rows]
    assert all(a["output"] != b["output"] for a, b in zip(out, rows, strict=True))


def test_score_run_and_dry_run(tmp_path, tiny_prior):
    src = write_jsonl(tmp_path / "a.jsonl", docs(3))
    plan = run_score([str(src)], str(tmp_path / "dry"), dry_run=True, prior=tiny_prior)
    assert plan.plan[0]["name"] == "a" and not (tmp_path / "dry").exists()
    summary = run_score(
        [str(src)], str(tmp_path / "run"), io=IOConfig(save_topk=True), run=QUIET, prior=tiny_prior
    )
    table = pq.read_table(tmp_path / "run" / "scores" / "a.parquet")
    assert len(table.column("topk_ids")[0].as_py()[0]) == 8
    assert summary.stats["n_changed"] == 0 and summary.stats["n_tokens"] > 0
    assert not list((tmp_path / "run" / "data").glob("*"))


@pytest.mark.slow
def test_kill_then_rerun_gives_identical_output(tmp_path, tiny_model_dir):
    for i in range(8):
        write_jsonl(tmp_path / "in" / f"part{i}.jsonl", docs(12, prefix=f"p{i}-"))
    args = [sys.executable, "-m", "toedit.cli", "edit", str(tmp_path / "in"), "--model", str(tiny_model_dir)]
    args += ["--threshold", "0.2", "--no-progress", "--docs-per-batch", "1", "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    subprocess.run([*args, "-o", str(tmp_path / "clean")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(
        [*args, "-o", str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = tmp_path / "killed" / "done"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if done.exists() and len(list(done.glob("*.json"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the kill should land mid-run"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list(done.glob("*.json"))) < 8
    subprocess.run([*args, "-o", str(tmp_path / "killed")], check=True, env=env, capture_output=True)
    clean = sorted((tmp_path / "clean" / "data").iterdir())
    again = sorted((tmp_path / "killed" / "data").iterdir())
    assert [p.name for p in clean] == [p.name for p in again]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(clean, again, strict=True))
    assert not list((tmp_path / "killed").rglob("*.tmp-*"))


def test_rounds_keep_per_round_statistics(tmp_path, tiny_prior):
    """--rounds N: stats.json, status and report.md show each round's scored/above/changed and histogram,
    and the rounds add up to the run's totals (the paper's Table 15 needs the share above p per round)."""
    src = write_jsonl(tmp_path / "a.jsonl", docs(8))
    run = tmp_path / "run"
    run_edit([str(src)], str(run), EditConfig(threshold=0.3, rounds=3), run=QUIET, prior=tiny_prior)
    stats = json.loads((run / "stats.json").read_text())
    rounds = stats["rounds"]
    assert len(rounds) == 3
    for key in ("n_scored", "n_above", "n_changed"):
        assert sum(r[key] for r in rounds) == stats[key]
    assert all(sum(r["prob_hist"]) == r["n_scored"] for r in rounds)
    assert rounds[0]["prob_hist"] == stats["prob_hist"]  # round 1 scores the input, as scores/ do
    assert rounds[1]["prob_hist"] != rounds[0]["prob_hist"]  # later rounds score the edited text
    status = run_status(str(run))
    assert [r["n_above"] for r in status["rounds"]] == [r["n_above"] for r in rounds]
    report = run_report(str(run))
    assert "## Per round" in report and "| 3 |" in report
    single = tmp_path / "single"
    run_edit([str(src)], str(single), EditConfig(threshold=0.3), run=QUIET, prior=tiny_prior)
    assert "rounds" not in json.loads((single / "stats.json").read_text())
