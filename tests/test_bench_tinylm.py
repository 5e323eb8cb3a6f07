"""benchmarks/bench_tinylm.py runs end to end on a tiny budget (its numbers mean nothing here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_tinylm.py"


def test_the_bench_runs_and_reports_the_ratio(capsys):
    spec = importlib.util.spec_from_file_location("bench_tinylm", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.main(
        ["--tokens", "2048", "--members", "3", "--max-members", "2", "--no-compile", "--threads", "0"]
    )
    assert res["sequential"] > 0 and res["grid"] > 0 and res["members"] == 2
    assert res["ratio"] == res["grid"] / res["sequential"]
    assert "ensemble (3 members, 2 per ensemble" in capsys.readouterr().out
