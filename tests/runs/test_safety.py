"""Nothing lost, nothing stale, nothing injected: the run layer's answers to an adversarial sweep (issue #11).

One RUN_DIR has one writer (a lock held by a real second process is refused, exit 4); standard input is read
once (spooled), so retries and reruns see the same bytes and a different stdin never resumes stale work;
nothing is printed twice to stdout; RUN_DIR never reads itself as input; a full disk fails cleanly (exit 6, no
temp files, no traceback); corpus strings cannot inject Markdown into report.md; SIGTERM cleans up like Ctrl-C.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import corpus_texts
from toedit.cli import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_SHARDS_FAILED, main
from toedit.runs import RunDir, RunLocked, run_report
from toedit.runs.executors import base as executor_base

ROOT = Path(__file__).resolve().parents[2]


def base_flags(model_dir) -> list[str]:
    return ["--model", str(model_dir), "--device", "cpu", "--no-progress", "--threshold", "0.2"]


def write_corpus(path: Path, n: int = 5, offset: int = 0) -> list[dict]:
    rows = [
        {"id": f"d{offset + i}", "text": t[:160]} for i, t in enumerate(corpus_texts(n + offset)[offset:])
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def set_stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# ------------------------------------------------------------------------------------------------- locks


def hold_lock(run_dir: Path, rank: int | None = None):
    """A second, real process holding RUN_DIR's lock until it is killed."""
    ready = run_dir.parent / f"ready-{rank}"
    code = textwrap.dedent(
        f"""
        import sys, time, pathlib
        from toedit.runs import RunDir
        with RunDir({str(run_dir)!r}).lock({rank!r}):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(120)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    for _ in range(300):
        if ready.exists():
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the lock holder did not start")


def test_a_locked_run_dir_is_refused_naming_its_holder(tmp_path, tiny_model_dir, capsys):
    corpus = tmp_path / "in.jsonl"
    write_corpus(corpus)
    run = tmp_path / "run"
    holder = hold_lock(run)
    try:
        for extra in ([], ["--overwrite"]):
            code = main(["edit", str(corpus), "-o", str(run), *base_flags(tiny_model_dir), *extra])
            assert code == EXIT_INPUT
            err = capsys.readouterr().err
            assert f"pid {holder.pid}" in err and "in use" in err
        assert not (run / "data").exists()  # nothing was touched
    finally:
        holder.kill()
        holder.wait()
    # a dead holder's lock is free: the same command now runs
    assert main(["edit", str(corpus), "-o", str(run), *base_flags(tiny_model_dir)]) == EXIT_OK


def test_rank_launches_lock_per_rank(tmp_path):
    run = tmp_path / "run"
    holder = hold_lock(run, rank=0)
    try:
        with RunDir(run).lock(1):  # another rank runs beside it
            pass
        with pytest.raises(RunLocked, match="rank 0"), RunDir(run).lock(0):
            pass
        with pytest.raises(RunLocked), RunDir(run).lock(None):  # a whole-run launch waits for the ranks
            pass
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------------- stdin


def test_stdin_is_spooled_and_a_new_stdin_never_resumes_stale_work(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    run = tmp_path / "run"
    first = write_corpus(tmp_path / "a.jsonl", 4)
    second = write_corpus(tmp_path / "b.jsonl", 4, offset=4)
    argv = ["edit", "-", "-o", str(run), *base_flags(tiny_model_dir)]
    set_stdin(monkeypatch, (tmp_path / "a.jsonl").read_bytes())
    assert main(argv) == EXIT_OK
    out = [json.loads(x) for x in (run / "data" / "stdin.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in first]
    # the same bytes again: a resume, nothing redone
    set_stdin(monkeypatch, (tmp_path / "a.jsonl").read_bytes())
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    assert "(1 already done)" in capsys.readouterr().out
    # other bytes: refused, never "already done"
    set_stdin(monkeypatch, (tmp_path / "b.jsonl").read_bytes())
    assert main(argv) == EXIT_INPUT
    assert "standard input is not the one" in capsys.readouterr().err
    # unless asked to start again
    set_stdin(monkeypatch, (tmp_path / "b.jsonl").read_bytes())
    assert main([*argv, "--overwrite"]) == EXIT_OK
    out = [json.loads(x) for x in (run / "data" / "stdin.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in second]


def fail_after_first_batch(monkeypatch, attempts: int | None = 1) -> list[str]:
    """The first `attempts` attempts at every shard (None: all) raise after their first batch was written."""
    real = executor_base.process_shard
    calls: list[str] = []

    def flaky(shard, ctx):
        calls.append(shard.name)
        if attempts is None or calls.count(shard.name) <= attempts:
            report = ctx.on_progress

            def boom(records, tokens):
                report(records, tokens)
                raise RuntimeError("transient failure after the first batch")

            ctx.on_progress = boom
        return real(shard, ctx)

    monkeypatch.setattr(executor_base, "process_shard", flaky)
    return calls


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_retries_never_print_a_record_twice_or_lose_one(
    tmp_path, tiny_model_dir, monkeypatch, capsys, source
):
    rows = write_corpus(tmp_path / "in.jsonl", 5)
    calls = fail_after_first_batch(monkeypatch)
    if source == "stdin":
        set_stdin(monkeypatch, (tmp_path / "in.jsonl").read_bytes())
    src = "-" if source == "stdin" else str(tmp_path / "in.jsonl")
    argv = ["edit", src, "-o", "-", "--docs-per-batch", "2", *base_flags(tiny_model_dir)]
    assert main(argv) == EXIT_OK
    assert len(calls) == 2  # one failed attempt, one retry
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in rows]


def test_stdout_run_whose_shard_fails_exits_non_zero(tmp_path, tiny_model_dir, monkeypatch, capsys):
    write_corpus(tmp_path / "in.jsonl", 3)

    def broken(shard, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(executor_base, "process_shard", broken)
    argv = ["edit", str(tmp_path / "in.jsonl"), "-o", "-", "--max-retries", "1", *base_flags(tiny_model_dir)]
    assert main(argv) == EXIT_SHARDS_FAILED
    assert "NOT in the output" in capsys.readouterr().err


def test_stdout_run_says_which_records_of_a_failed_shard_were_printed(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    """Every attempt fails after its first batch of 2 records: those 2 are on stdout, the other 3 are not
    (the summary said "their records are NOT in the output")."""
    rows = write_corpus(tmp_path / "in.jsonl", 5)
    fail_after_first_batch(monkeypatch, attempts=None)
    argv = ["edit", str(tmp_path / "in.jsonl"), "-o", "-", "--docs-per-batch", "2", "--max-retries", "1"]
    assert main([*argv, *base_flags(tiny_model_dir)]) == EXIT_SHARDS_FAILED
    out, err = capsys.readouterr()
    printed = [json.loads(line)["id"] for line in out.splitlines()]
    assert printed == [r["id"] for r in rows[:2]]
    assert "in: its first 2 records are in the output, the rest are NOT" in err
    assert "its records are NOT in the output" not in err


# --------------------------------------------------------------------------------------------- run dirs


def test_a_run_dir_inside_an_input_dir_is_never_read_as_input(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "corpus"
    data.mkdir()
    write_corpus(data / "a.jsonl", 4)
    run = data / "run"
    argv = ["edit", str(data), "-o", str(run), *base_flags(tiny_model_dir), "--json"]
    assert main(argv) == EXIT_OK
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == EXIT_OK
    again = json.loads(capsys.readouterr().out)
    assert again["shards"] == first["shards"] == 1 and again["shards_done_before"] == 1
    assert again["stats"]["n_errors"] == 0 and again["stats"]["n_records"] == 4


def test_run_dir_equal_to_or_inside_an_input_file_is_exit_4(tmp_path, tiny_model_dir, capsys):
    corpus = tmp_path / "in.jsonl"
    write_corpus(corpus)
    for out in (corpus, corpus / "sub"):
        assert main(["edit", str(corpus), "-o", str(out), *base_flags(tiny_model_dir)]) == EXIT_INPUT
        assert "is the input file" in capsys.readouterr().err
    assert corpus.is_file()


def test_out_of_space_fails_cleanly_even_when_failed_cannot_be_written(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    from toedit.io import ShardWriter
    from toedit.runs import shard as shard_module

    corpus = tmp_path / "in.jsonl"
    write_corpus(corpus)
    run = tmp_path / "run"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    class FullDisk(ShardWriter):  # the edited data cannot be written
        write = full

    monkeypatch.setattr(shard_module, "ShardWriter", FullDisk)
    monkeypatch.setattr(RunDir, "record_failure", full)  # and neither can failed/
    code = main(["edit", str(corpus), "-o", str(run), "--max-retries", "1", *base_flags(tiny_model_dir)])
    captured = capsys.readouterr()
    assert code == EXIT_SHARDS_FAILED
    assert "No space left on device" in captured.out + captured.err
    assert "Traceback" not in captured.err
    assert not list(run.rglob("*.tmp-*")) and not list((run / "done").iterdir())
    monkeypatch.undo()
    assert main(["edit", str(corpus), "-o", str(run), *base_flags(tiny_model_dir)]) == EXIT_OK


def test_out_of_space_before_any_shard_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    from toedit.io import writers

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    corpus = tmp_path / "in.jsonl"
    write_corpus(corpus)
    monkeypatch.setattr(writers.ShardWriter, "write", full)  # even the manifest cannot be written
    assert (
        main(["edit", str(corpus), "-o", str(tmp_path / "run"), "--threshold", "0.2", "--no-progress"])
        == EXIT_INPUT
    )
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err


def test_report_escapes_corpus_strings(tmp_path, tiny_model_dir):
    evil = "x|y](javascript:alert(1))\n# Injected heading\n<script>alert(2)</script>"
    rows = [{"id": evil + str(i), "text": t[:200]} for i, t in enumerate(corpus_texts(4))]
    corpus = tmp_path / "in.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = tmp_path / "run"
    assert (
        main(["edit", str(corpus), "-o", str(run), "--record-spans", *base_flags(tiny_model_dir)]) == EXIT_OK
    )
    text = run_report(str(run))
    assert "sample of edits" in text  # the ids do appear, escaped
    assert "](javascript:" not in text and "<script>" not in text
    assert not any(line.startswith("# Injected") for line in text.splitlines())
    rows_in_table = [line for line in text.splitlines() if line.startswith("| ") and "alert" in line]
    assert rows_in_table and all(line.count(" | ") == 3 for line in rows_in_table)  # no extra cells


@pytest.mark.slow
def test_sigterm_cleans_up_like_ctrl_c(tmp_path, tiny_model_dir):
    corpus = tmp_path / "in.jsonl"
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(corpus_texts(60) * 8)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "toedit.cli", "edit", str(corpus), "-o", str(run), "--docs-per-batch", "4"]
    proc = subprocess.Popen([*argv, *base_flags(tiny_model_dir)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # until the shard's temp output exists: the run is mid-shard
            if list((run / "data").glob("*.tmp-*")) if (run / "data").exists() else False:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "interrupted" in err and not list(run.rglob("*.tmp-*"))
    assert not list((run / "done").iterdir())
