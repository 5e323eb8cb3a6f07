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


def test_ray_data_map_batches_with_the_mapper(local_ray, tiny_model_dir, tiny_prior):
    from tests.conftest import corpus_texts
    from toedit import edit_batch
    from toedit.runs.adapters import ToEditMapper

    rows = [{"id": f"d{i}", "text": t[:200]} for i, t in enumerate(corpus_texts(6))]
    ds = ray.data.from_items(rows).map_batches(
        ToEditMapper,
        fn_constructor_kwargs={"model": str(tiny_model_dir), "config": EDIT, "device": "cpu"},
        batch_size=4,
        concurrency=1,
    )
    got = sorted(ds.take_all(), key=lambda r: r["id"])
    want = edit_batch({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]}, tiny_prior, EDIT)
    assert [r["text"] for r in got] == want["text"]
    assert [r["toedit_n_changed"] for r in got] == want["toedit_n_changed"]
