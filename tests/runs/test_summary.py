"""The printed run summary: what a newcomer needs to act on is on the screen."""

from __future__ import annotations

from toedit.runs import stats as run_stats
from toedit.runs.summary import RunSummary


def _summary(run_dir: str | None, n_errors: int) -> RunSummary:
    stats = run_stats.new_stats() | {"n_records": 3, "n_errors": n_errors}
    return RunSummary(
        run_dir=run_dir, shards=1, shards_done_before=0, stats=stats, seconds=1.0, tokens_this_run=0
    )


def test_bad_records_point_at_errors_jsonl(tmp_path):
    """Bad records (e.g. every record lacks --text-field) are skipped and the run exits 0: the summary says
    where their file, line and reason are, so the user is not left with a bare count."""
    text = _summary(str(tmp_path / "run"), 2).format()
    assert (
        f"bad records    2 not edited: file, line and reason of each in {tmp_path / 'run' / 'errors.jsonl'}"
        in text
    )
    assert "errors.jsonl" not in _summary(str(tmp_path / "run"), 0).format()
    assert "errors.jsonl" not in _summary(None, 2).format()  # stdout runs print each bad record to stderr


def test_a_score_run_prints_no_rule_lines(tiny_prior, tmp_path):
    """`toedit score` applies no rule: its summary has no selected / changed / dropped lines (an edit run's
    has), and the run layer passes the kind through."""
    from toedit.runs.run import run_edit, run_score

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "one short document"}\n', encoding="utf-8")
    score = run_score([str(src)], str(tmp_path / "s"), prior=tiny_prior)
    edit = run_edit([str(src)], str(tmp_path / "e"), prior=tiny_prior)
    assert score.kind == "score" and edit.kind == "edit"
    for rule_line in ("above thr.", "changed ", "dropped ", "skipped unsafe"):
        assert rule_line not in score.format() and rule_line in edit.format()
    assert "tokens " in score.format() and "speed " in score.format()


def test_a_new_run_dir_named_like_a_file_is_warned_about(tmp_path, caplog):
    from toedit.runs.run import run_edit

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "one short document"}\n', encoding="utf-8")
    with caplog.at_level("WARNING", logger="toedit.runs.run"):
        run_edit([str(src)], str(tmp_path / "edited.jsonl"), dry_run=True)
    assert "RUN_DIR is a directory; toedit edit creates it" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="toedit.runs.run"):
        run_edit([str(src)], str(tmp_path / "edited"), dry_run=True)
    assert "RUN_DIR is a directory" not in caplog.text
