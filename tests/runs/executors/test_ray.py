"""The Ray executor: 2 actors on a local ray.init give the in-process bytes, also when an actor dies."""

from __future__ import annotations

import pytest

from tests.runs.conftest import EDIT, IO, run_stats, run_tree, scale_run
from toedit.runs import run_edit
from toedit.runs.executors import faults

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_actors_reproduce_the_in_process_run_when_an_actor_dies(
    tmp_path, local_ray, scale_corpus, reference_run, tiny_model_dir
):
    flag = tmp_path / "p3-died-once"
    run = tmp_path / "run"
    with faults.injected(f"p3@{flag}"):
        summary = run_edit(
            [str(scale_corpus)],
            str(run),
            EDIT,
            io=IO,
            run=scale_run(tiny_model_dir, executor="ray", workers=2),
        )
    assert flag.exists(), "the fault hook should have killed an actor"
    assert not summary.failed and summary.stats["shards_done"] == 4
    assert run_tree(run) == run_tree(reference_run)
    assert run_stats(run) == run_stats(reference_run)
    assert not list(run.rglob("*.tmp-*"))


@pytest.mark.slow
def test_readme_ray_data_example_runs_and_edits_like_edit_batch(
    local_ray, tiny_model_dir, tiny_prior, tmp_path
):
    import re

    import pyarrow.parquet as pq

    from tests.runs.test_readme_scale import examples, with_tiny_prior
    from toedit import EditConfig, edit_batch

    out = tmp_path / "runs" / "ray-data-edited"
    code = with_tiny_prior(examples()["ray"], tiny_model_dir)
    code = re.sub(r"^ray\.init\(.*$", "", code, flags=re.M)  # the module's 2-CPU Ray is running
    code = code.replace("concurrency=2", "concurrency=1")  # leave a CPU for the write tasks
    # Ray's write tasks resolve a relative path in their own working directory, not the test's
    assert '"runs/ray-data-edited"' in code
    code = code.replace('"runs/ray-data-edited"', repr(str(out)))
    scope: dict = {}
    exec(compile(code, "docs/scale.md (Ray Data example)", "exec"), scope)
    got = pq.read_table(out).to_pylist()
    got.sort(key=lambda r: int(r["id"]))
    items = scope["items"]
    want = edit_batch(
        {"id": [r["id"] for r in items], "text": [r["text"] for r in items]},
        tiny_prior,
        EditConfig(threshold=0.9),
        id_field="id",
    )
    assert [r["text"] for r in got] == want["text"]
    assert [r["toedit_n_above"] for r in got] == want["toedit_n_above"]
