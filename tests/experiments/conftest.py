"""A small human corpus (Python reference topics) as JSONL, for the experiment runners."""

from __future__ import annotations

import json

import pytest

from ..conftest import corpus_texts


@pytest.fixture(scope="session")
def human_jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("human") / "human.jsonl"
    with open(path, "w") as fh:
        for i, text in enumerate(corpus_texts(30)):
            fh.write(json.dumps({"id": f"doc{i:02d}", "text": text}) + "\n")
    return path
