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
