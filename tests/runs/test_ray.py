"""The Ray executor: 2 actors on a local ray.init give the in-process bytes, also when an actor dies."""

from __future__ import annotations

import pytest

from tests.runs.conftest import EDIT, IO, run_stats, run_tree, scale_run
from toedit.runs import run_edit
from toedit.runs.executors import FAULT_ENV

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_actors_reproduce_the_in_process_run_when_an_actor_dies(
    tmp_path, monkeypatch, local_ray, scale_corpus, reference_run, tiny_model_dir
):
    flag = tmp_path / "p3-died-once"
    monkeypatch.setenv(FAULT_ENV, f"p3@{flag}")
    run = tmp_path / "run"
    summary = run_edit(
        [str(scale_corpus)], str(run), EDIT, io=IO, run=scale_run(tiny_model_dir, executor="ray", workers=2)
    )
    assert flag.exists(), "the fault hook should have killed an actor"
    assert not summary.failed and summary.stats["shards_done"] == 4
    assert run_tree(run) == run_tree(reference_run)
    assert run_stats(run) == run_stats(reference_run)
    assert not list(run.rglob("*.tmp-*"))
