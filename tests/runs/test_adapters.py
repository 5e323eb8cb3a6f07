"""ToEditMapper: the same edits as edit_batch for every batch type and batch size, and a cheap pickle."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.conftest import corpus_texts
from toedit import EditConfig, edit_batch
from toedit.runs.adapters import STAT_COLUMNS, ToEditMapper

CONFIG = EditConfig(threshold=0.2)


@pytest.fixture(scope="module")
def rows():
    return {
        "id": [f"d{i}" for i in range(7)],
        "text": [t[:200] for t in corpus_texts(7)],
        "n": list(range(7)),
    }


@pytest.fixture(scope="module")
def expected(rows, tiny_prior):
    return edit_batch(dict(rows), tiny_prior, CONFIG)


def test_every_batch_type_gives_edit_batch_results(rows, expected, tiny_prior):
    mapper = ToEditMapper(config=CONFIG, prior=tiny_prior)
    assert sum(expected["toedit_n_changed"]) > 0
    as_lists = mapper(dict(rows))
    assert as_lists == expected
    as_numpy = mapper({k: np.asarray(v) for k, v in rows.items()})
    assert as_numpy["text"].dtype == object and list(as_numpy["text"]) == expected["text"]
    assert as_numpy["toedit_n_changed"].tolist() == expected["toedit_n_changed"]
    assert as_numpy["n"].tolist() == rows["n"]
    frame = mapper(pd.DataFrame(rows))
    assert frame.to_dict("list") == expected
    table = mapper(pa.table(rows))
    assert table.to_pydict() == expected and table.schema.field("toedit_n_tokens").type == pa.int64()


def test_results_do_not_depend_on_batching(rows, expected, tiny_prior):
    mapper = ToEditMapper(config=CONFIG, prior=tiny_prior)
    halves = [mapper({k: v[a:b] for k, v in rows.items()}) for a, b in ((0, 3), (3, 7))]
    assert {k: halves[0][k] + halves[1][k] for k in expected} == expected
    keyed = ToEditMapper(config=CONFIG, id_field="id", prior=tiny_prior)(dict(rows))
    assert keyed == edit_batch(dict(rows), tiny_prior, CONFIG, id_field="id")


def test_pickles_without_the_model_and_reloads_it(rows, expected, tiny_model_dir):
    mapper = ToEditMapper(str(tiny_model_dir), CONFIG, device="cpu", dtype="float32")  # as tiny_prior
    blob = pickle.dumps(mapper)
    assert len(blob) < 10_000  # the prior stays behind
    clone = pickle.loads(blob)
    assert clone._prior is None
    assert clone(dict(rows)) == expected


def test_a_clone_reloads_the_precision_of_the_given_prior(tiny_prior):
    clone = pickle.loads(pickle.dumps(ToEditMapper(config=CONFIG, prior=tiny_prior)))
    assert clone.dtype == tiny_prior.dtype_name == "float32"


def test_datasets_map(rows, expected, tiny_prior):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(rows)
    out = ds.map(ToEditMapper(config=CONFIG, prior=tiny_prior), batched=True, batch_size=3)
    assert out.to_dict() == expected
    assert set(STAT_COLUMNS) <= set(out.column_names)


def test_non_string_text_is_refused(tiny_prior):
    with pytest.raises(TypeError, match="row 1 of this batch holds NoneType"):
        ToEditMapper(config=CONFIG, prior=tiny_prior)({"text": ["ok", None]})
