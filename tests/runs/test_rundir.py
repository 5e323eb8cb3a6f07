"""RunDir: nothing written outside RUN_DIR or into an input, "done" only while the outputs match their marker,
damaged run directories are exit 4 naming the file, report.md replaced atomically (issue #23)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import corpus_texts
from toedit.cli import EXIT_CONFIG, EXIT_INPUT, EXIT_OK, main
from toedit.config import EditConfig, RunConfig
from toedit.io import Shard
from toedit.runs import RunDir, RunDirError, run_edit, run_report, run_status

QUIET = RunConfig(progress=False)
EDIT = EditConfig(threshold=0.2, record_spans=True)


def write_corpus(path: Path, n: int = 3) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"d{i}", "text": t[:160]} for i, t in enumerate(corpus_texts(n))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path.read_bytes()


def cli(model_dir: Path, *args: str) -> int:
    flags = ["--model", str(model_dir), "--device", "cpu", "--dtype", "float32", "--no-progress"]
    return main([*args, *flags])


# ------------------------------------------------------------------------------------------- confinement


def test_a_data_link_into_the_input_is_refused_and_the_input_kept(tmp_path, tiny_model_dir, capsys):
    """`mkdir in r; cp f.jsonl in/; ln -s ../in r/data; toedit edit in -o r --threshold 0` overwrote in/f.jsonl."""
    before = write_corpus(tmp_path / "in" / "f.jsonl")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "data").symlink_to("../in")
    code = cli(tiny_model_dir, "edit", str(tmp_path / "in"), "-o", str(tmp_path / "r"), "--threshold", "0")
    assert code == EXIT_INPUT
    err = capsys.readouterr().err
    assert "data leads outside the run directory" in err and "Traceback" not in err
    assert (tmp_path / "in" / "f.jsonl").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["f.jsonl"]


@pytest.mark.parametrize("link", ["scores", "done", "errors", "failed", "manifest.json", ".lock"])
def test_no_path_of_the_run_dir_may_lead_outside_it(tmp_path, tiny_prior, link):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "r"
    run.mkdir()
    target = elsewhere / "x" if "." in link else elsewhere
    (run / link).symlink_to(target)
    with pytest.raises(RunDirError, match=f"{link} leads outside the run directory"):
        run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert list(elsewhere.iterdir()) == []


def test_a_link_inside_the_run_dir_to_an_input_is_refused(tmp_path, tiny_prior):
    """Inside RUN_DIR but onto an input: data/ -> RUN_DIR/src holding the input file."""
    run = tmp_path / "r"
    before = write_corpus(run / "src" / "f.jsonl")
    (run / "data").symlink_to("src")
    with pytest.raises(RunDirError, match="leads to the input"):
        run_edit([str(run / "src" / "f.jsonl")], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert (run / "src" / "f.jsonl").read_bytes() == before


def test_links_that_stay_inside_the_run_dir_are_allowed(tmp_path, tiny_prior):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    (run / "elsewhere").mkdir(parents=True)
    (run / "data").symlink_to("elsewhere")
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert (run / "elsewhere" / "f.jsonl").exists()


def test_an_existing_regular_file_as_run_dir_is_a_usage_error(tmp_path, tiny_model_dir, capsys):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    (tmp_path / "file").write_text("keep me")
    for out in ("file", "file/sub"):
        assert cli(tiny_model_dir, "edit", str(src), "-o", str(tmp_path / out)) == EXIT_CONFIG
        err = capsys.readouterr().err
        assert "is an existing file, not a directory" in err and "Traceback" not in err
    assert (tmp_path / "file").read_text() == "keep me"


# -------------------------------------------------------------------------------- done = outputs in place


def test_a_deleted_output_is_never_done_and_is_made_again(tmp_path, tiny_model_dir, capsys, caplog):
    """`toedit edit f.jsonl -o r; rm r/data/f.jsonl; toedit edit f.jsonl -o r` said "1 already done"."""
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    assert cli(tiny_model_dir, "edit", str(src), "-o", str(run)) == EXIT_OK
    first = (run / "data" / "f.jsonl").read_bytes()
    marker = json.loads((run / "done" / "f.json").read_text())
    assert set(marker["outputs"]) == {"data/f.jsonl", "scores/f.parquet", "errors/f.jsonl"}
    assert marker["outputs"]["data/f.jsonl"]["size"] == len(first)
    (run / "data" / "f.jsonl").unlink()
    capsys.readouterr()
    assert main(["status", str(run)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "shards 0/1 done" in shown and "data/f.jsonl is missing" in shown
    assert cli(tiny_model_dir, "edit", str(src), "-o", str(run)) == EXIT_OK
    assert "0 already done" in capsys.readouterr().out
    assert "data/f.jsonl is missing; running it again" in caplog.text
    assert (run / "data" / "f.jsonl").read_bytes() == first
    assert run_status(str(run))["shards_done"] == 1


def test_a_changed_output_of_the_same_size_is_run_again(tmp_path, tiny_prior, caplog):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    data = run / "data" / "f.jsonl"
    good = data.read_bytes()
    data.write_bytes(good.replace(b'"d0"', b'"X0"'))  # same size, other bytes
    again = run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert again.shards_done_before == 0 and again.tokens_this_run > 0
    assert "sha256 differs" in caplog.text
    assert data.read_bytes() == good


def test_a_truncated_scores_file_is_not_done_and_report_and_diff_name_it(tmp_path, tiny_model_dir, capsys):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    assert cli(tiny_model_dir, "edit", str(src), "-o", str(run), "--threshold", "0.2", "--record-spans") == 0
    scores = run / "scores" / "f.parquet"
    scores.write_bytes(scores.read_bytes()[:100])
    capsys.readouterr()
    assert main(["status", str(run)]) == EXIT_OK
    assert "shards 0/1 done" in capsys.readouterr().out
    for verb in ("report", "diff"):
        assert main([verb, str(run)]) == EXIT_INPUT, verb
        err = capsys.readouterr().err
        assert "scores/f.parquet" in err and "Traceback" not in err, (verb, err)


def test_markers_without_recorded_outputs_are_not_trusted(tmp_path, tiny_prior):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    path = run / "done" / "f.json"
    marker = json.loads(path.read_text())
    del marker["outputs"]
    path.write_text(json.dumps(marker))
    assert RunDir(run).done_markers() == {}
    assert run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior).shards_done_before == 0


# ---------------------------------------------------------------------------------- damaged run dirs


@pytest.mark.parametrize(
    "manifest",
    ["[1, 2]", "not json", '{"kind": "edit"}', '{"kind": "edit", "fingerprint": "x", "inputs": 3}'],
)
@pytest.mark.parametrize("verb", ["status", "report", "diff"])
def test_a_damaged_manifest_is_exit_4_naming_it(tmp_path, capsys, manifest, verb):
    run = tmp_path / "r"
    run.mkdir()
    (run / "manifest.json").write_text(manifest)
    (run / "stats.json").write_text("{}")
    assert main([verb, str(run)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "manifest.json" in err and "Traceback" not in err


@pytest.mark.parametrize("stats", ["[1]", '{"n_records": 1}'])
def test_damaged_stats_are_exit_4_naming_the_file(tmp_path, tiny_prior, capsys, stats):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    (run / "stats.json").write_text(stats)
    assert main(["report", str(run)]) == EXIT_INPUT
    assert "stats.json" in capsys.readouterr().err


def test_a_damaged_manifest_is_replaced_with_overwrite(tmp_path, tiny_prior):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run.mkdir()
    (run / "manifest.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="not a JSON object|holds a JSON list"):
        run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    overwrite = RunConfig(progress=False, overwrite=True)
    assert run_edit([str(src)], str(run), EDIT, run=overwrite, prior=tiny_prior).stats["n_records"] == 3


# ------------------------------------------------------------------------------------------- report.md


def test_report_is_replaced_atomically(tmp_path, tiny_prior, monkeypatch):
    """A failure while writing report.md leaves the previous report whole (it was written in place)."""
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    good = run_report(str(run))
    assert (run / "report.md").read_text() == good
    real_replace = os.replace

    def killed(a, b):
        if str(b).endswith("report.md"):
            raise KeyboardInterrupt  # killed between the write and the rename
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run_report(str(run), examples=1)
    assert (run / "report.md").read_text() == good
    assert [p.name for p in run.iterdir() if ".tmp-" in p.name] == []


# ------------------------------------------------------------------------------------ the layout contract


def test_layout_paths_are_the_documented_ones(tmp_path):
    rd = RunDir(tmp_path / "r")
    gz = Shard("in/a.jsonl.gz", "sub__a", "jsonl", "gzip")
    ds = Shard("in/ds", "ds__train", "datasets")
    root = tmp_path / "r"
    assert rd.data_path(gz) == root / "data" / "sub__a.jsonl.gz"
    assert rd.data_path(ds) == root / "data" / "ds__train.parquet"
    assert rd.scores_path("x") == root / "scores" / "x.parquet"
    assert rd.marker_path("x") == root / "done" / "x.json"
    assert rd.shard_errors_path("x") == root / "errors" / "x.jsonl"
    assert rd.failed_path("x") == root / "failed" / "x.json"
    assert (rd.manifest_path, rd.stats_path, rd.errors_path, rd.report_path, rd.stdin_path) == tuple(
        root / n for n in ("manifest.json", "stats.json", "errors.jsonl", "report.md", "stdin.jsonl")
    )
    assert rd.output_names(gz) == (
        "sub__a.jsonl.gz",
        "sub__a.parquet",
        "sub__a.json",
        "sub__a.jsonl",
        "sub__a.json",
    )
    assert rd.shard_outputs(gz, "edit") == [
        rd.data_path(gz),
        rd.scores_path("sub__a"),
        rd.shard_errors_path("sub__a"),
    ]
    assert rd.shard_outputs(gz, "score") == [rd.scores_path("sub__a"), rd.shard_errors_path("sub__a")]
    written = rd.written_paths([gz], rank=3)
    assert root / ".lock-rank-3" in written and all(root in p.parents for p in written)


def test_reset_keeps_locks_and_spooled_stdin_and_temp_files_go_by_owner(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.make_dirs()
    shard, other = Shard("a.jsonl", "a", "jsonl"), Shard("b.jsonl", "b", "jsonl")
    for path in (rd.data_path(shard), rd.report_path, rd.stats_path, rd.stdin_path, rd.root / ".lock"):
        path.write_text("x")
    mine, theirs = (
        rd.data_path(shard).with_name("a.jsonl.tmp-111"),
        rd.data_path(other).with_name("b.jsonl.tmp-222"),
    )
    mine.write_text("t")
    theirs.write_text("t")
    rd.remove_temp_files(shards=[shard])  # another launch's shard b may be in flight: its temp file stays
    assert not mine.exists() and theirs.exists()
    rd.remove_temp_files(pid=222)
    assert not theirs.exists()
    rd.reset()
    assert sorted(p.name for p in rd.root.iterdir()) == [".lock", "stdin.jsonl"]


def test_done_markers_follow_their_outputs(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.make_dirs()
    shard = Shard("a.jsonl", "a", "jsonl")
    outputs = rd.shard_outputs(shard, "edit")
    for i, path in enumerate(outputs):
        path.write_text("y" * (i + 1))
    rd.write_marker(
        "a", {"shard": "a", "fingerprint": "fp", "stats": {}, "outputs": rd.describe_outputs(outputs)}
    )
    assert rd.done_marker("a", "fp", deep=True) is not None and rd.done_marker("a", "other") is None
    outputs[1].write_text("zz")  # same size, other bytes: only the sha256 tells
    assert rd.done_marker("a", "fp") is not None and rd.done_marker("a", "fp", deep=True) is None
    assert "sha256 differs" in rd.outputs_problem(rd.marker("a"), deep=True)
    outputs[0].unlink()
    assert rd.outputs_problem(rd.marker("a")) == "data/a.jsonl is missing"
