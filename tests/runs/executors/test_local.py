"""Executors: local workers, manual rank/world-size launches, retries, failures; identical bytes everywhere."""

from __future__ import annotations

import json

import pytest

from tests.runs.conftest import EDIT, IO, run_stats, run_tree, scale_run
from toedit.cli import EXIT_SHARDS_FAILED, main
from toedit.config import ConfigError, RunConfig
from toedit.runs import run_edit, run_status
from toedit.runs.executors import (
    InProcessExecutor,
    LocalExecutor,
    RayExecutor,
    default_threads,
    faults,
    make_executor,
    parse_devices,
)
from toedit.runs.run import resolve_rank


def output_ids(run_dir) -> list[str]:
    ids = []
    for path in sorted((run_dir / "data").iterdir()):
        ids += [json.loads(line)["id"] for line in path.read_text().splitlines()]
    return ids


@pytest.mark.slow
def test_two_workers_with_killed_workers_reproduce_the_in_process_run(
    tmp_path, scale_corpus, reference_run, tiny_model_dir
):
    run = tmp_path / "run"
    flag = tmp_path / "p1-died-once"
    # p1's first attempt dies after its first batch (then succeeds); p2 dies on every attempt
    with faults.injected(f"p1@{flag},p2"):
        summary = run_edit(
            [str(scale_corpus)],
            str(run),
            EDIT,
            io=IO,
            run=scale_run(tiny_model_dir, workers=2, max_retries=1),
        )
    assert flag.exists(), "the fault hook should have killed a worker"
    assert [f["shard"] for f in summary.failed] == ["p2"] and summary.failed[0]["attempts"] == 2
    assert sorted(p.name for p in (run / "done").iterdir()) == ["p0.json", "p1.json", "p3.json"]
    assert not (run / "data" / "p2.jsonl").exists() and not list(run.rglob("*.tmp-*"))
    status = run_status(str(run))
    assert status["pending"] == ["p2"] and [f["shard"] for f in status["failed"]] == ["p2"]

    again = run_edit([str(scale_corpus)], str(run), EDIT, io=IO, run=scale_run(tiny_model_dir))
    assert again.shards_done_before == 3 and not again.failed
    assert run_tree(run) == run_tree(reference_run)
    assert run_stats(run) == run_stats(reference_run)
    assert not list((run / "failed").iterdir()) and not run_status(str(run))["failed"]
    ids = output_ids(run)
    assert len(ids) == len(set(ids)) == 32  # nothing lost, nothing duplicated


def test_manual_rank_launches_then_merge(tmp_path, monkeypatch, scale_corpus, reference_run, tiny_model_dir):
    run = tmp_path / "run"
    first = run_edit(
        [str(scale_corpus)], str(run), EDIT, io=IO, run=scale_run(tiny_model_dir, rank=0, world_size=2)
    )
    assert first.stats["shards_done"] == 2 and run_status(str(run))["pending"] == ["p1", "p3"]
    # the second launch takes its rank from a Slurm array numbered from 1
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    second = run_edit([str(scale_corpus)], str(run), EDIT, io=IO, run=scale_run(tiny_model_dir, world_size=2))
    assert second.shards_done_before == 0 and second.stats["shards_done"] == 4
    assert run_stats(run) == run_stats(reference_run)
    merged = run_edit([str(scale_corpus)], str(run), EDIT, io=IO, run=scale_run(tiny_model_dir))
    assert merged.shards_done_before == 4 and merged.tokens_this_run == 0
    assert run_tree(run) == run_tree(reference_run)
    assert run_stats(run) == run_stats(reference_run)


def test_a_launch_removes_only_its_own_stale_temp_files(tmp_path, scale_corpus, tiny_model_dir):
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    mine, theirs = run / "data" / "p0.jsonl.tmp-999999", run / "data" / "p1.jsonl.tmp-999999"
    mine.write_text("partial")
    theirs.write_text("in flight")
    cfg = scale_run(tiny_model_dir, rank=0, world_size=2)
    run_edit([str(scale_corpus)], str(run), EDIT, io=IO, run=cfg)
    assert not mine.exists() and theirs.exists()


def test_in_process_retries_transient_failures_and_reports_persistent_ones(
    tmp_path, monkeypatch, scale_corpus, tiny_model_dir, capsys
):
    from toedit.runs.executors import base

    real = base.process_shard
    calls: list[str] = []

    def flaky(shard, ctx):
        calls.append(shard.name)
        if shard.name == "p2" or (shard.name == "p1" and calls.count("p1") == 1):
            raise RuntimeError(f"simulated failure in {shard.name}")
        return real(shard, ctx)

    monkeypatch.setattr(base, "process_shard", flaky)
    args = ["edit", str(scale_corpus), "-o", str(tmp_path / "run"), "--model", str(tiny_model_dir)]
    args += ["--threshold", "0.2", "--device", "cpu", "--no-progress", "--max-retries", "2"]
    assert main(args) == EXIT_SHARDS_FAILED
    assert calls.count("p1") == 2 and calls.count("p2") == 3 and calls.count("p0") == 1
    assert "FAILED shards  1 after every retry: p2" in capsys.readouterr().out
    failure = json.loads((tmp_path / "run" / "failed" / "p2.json").read_text())
    assert failure["attempts"] == 3 and "simulated failure in p2" in failure["error"]
    assert "Traceback" in failure["traceback"]


def test_config_guards(tmp_path, scale_corpus, tiny_model_dir):
    for bad in (
        dict(rank=1),
        dict(rank=2, world_size=2),
        dict(workers=0),
        dict(devices="0,x"),
        dict(executor="spark"),
        dict(shard_lines=0),
    ):
        with pytest.raises(ConfigError):
            RunConfig(**bad).validate()
    with pytest.raises(ConfigError, match="wipe each other"):
        run_edit(
            [str(scale_corpus)],
            str(tmp_path / "r"),
            EDIT,
            run=scale_run(tiny_model_dir, rank=0, world_size=2, overwrite=True),
        )
    with pytest.raises(ConfigError, match="streams from this one process"):
        run_edit([str(scale_corpus)], "-", EDIT, run=scale_run(tiny_model_dir, workers=2))
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_ID"):
        resolve_rank(RunConfig(world_size=4))
    assert resolve_rank(RunConfig(rank=1, world_size=3)) == (1, 3) and resolve_rank(RunConfig()) is None


def test_devices_map_one_worker_per_gpu_and_executor_choice(tiny_prior):
    assert parse_devices("0, 2,3") == ["cuda:0", "cuda:2", "cuda:3"]
    assert parse_devices(None) == [] and parse_devices([1]) == ["cuda:1"]
    for bad in ("0,0", "cuda:1", "a"):
        with pytest.raises(ValueError):
            parse_devices(bad)
    from_file = RunConfig(devices=[0, 1])  # as a YAML list
    from_file.validate()
    assert from_file.devices == "0,1" and make_executor(from_file).devices == ["cuda:0", "cuda:1"]
    gpus = make_executor(RunConfig(devices="1,0"))
    assert isinstance(gpus, LocalExecutor) and gpus.devices == ["cuda:1", "cuda:0"] and gpus.size == 2
    assert isinstance(make_executor(RunConfig(workers=3)), LocalExecutor)
    ray = make_executor(RunConfig(executor="ray", devices="0,1,2"))
    assert isinstance(ray, RayExecutor) and ray.size == 3 and ray.gpus == 1
    ray_cpu = make_executor(RunConfig(executor="ray", workers=4, ray_address="auto"))
    assert ray_cpu.size == 4 and ray_cpu.gpus == 0 and ray_cpu.address == "auto"
    assert isinstance(make_executor(RunConfig(), ctx=object()), InProcessExecutor)
    assert default_threads(1) >= default_threads(64) == 1
