"""Core verbs run without the optional extras (scipy, matplotlib, scikit-learn, sentence-transformers, ray,
datasets); a verb that needs one says which extra to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import corpus_texts

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = ("scipy", "matplotlib", "sklearn", "sentence_transformers", "ray", "datasets")


def run_hidden(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        import sys

        for name in {HIDDEN!r}:  # as if not installed: import fails, importlib.util.find_spec gives None
            sys.modules[name] = None
        from toedit.cli import main
        code = main({argv!r})
        leaked = sorted(m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in {HIDDEN!r})
        print("LEAKED", leaked, file=sys.stderr)
        sys.exit(code)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(json.dumps({"id": i, "text": t[:300]}) + "\n" for i, t in enumerate(corpus_texts(12)))
    )
    return path


@pytest.mark.slow
def test_core_verbs_without_optional_packages(tmp_path, corpus, tiny_model_dir):
    model = ["--model", str(tiny_model_dir), "--device", "cpu", "--dtype", "float32", "--no-progress"]
    tiny = ["--tokens", "256", "--seq-len", "16", "--batch-size", "2", "--hidden", "16", "--layers", "1"]
    tiny += ["--heads", "2", "--intermediate", "32", "--tokenizer", "bpe:300"]
    for argv in (
        ["edit", str(corpus), "-o", str(tmp_path / "run"), "--threshold", "0.3", *model],
        ["score", str(corpus), "-o", str(tmp_path / "scored"), *model],
        ["status", str(tmp_path / "run")],
        ["report", str(tmp_path / "run")],
        [
            "sweep",
            str(corpus),
            "--sample-docs",
            "4",
            "--thresholds",
            "0.5",
            "--betas",
            "1",
            "--top-k",
            "8",
            *model,
        ],
        ["train", str(corpus), "--heldout", str(corpus), *tiny],
        ["theory", "--trials", "20", "--generations", "3"],
    ):
        proc = run_hidden(argv, tmp_path)
        assert proc.returncode == 0, (argv[0], proc.stderr[-2000:])
        assert "LEAKED []" in proc.stderr, (argv[0], proc.stderr[-300:])


def test_a_verb_that_needs_an_extra_names_it(tmp_path, corpus):
    proc = run_hidden(
        ["select", "--target", str(corpus), "--raw", str(corpus), "-n", "2", "-o", "x.jsonl"], tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "pip install 'toedit[analysis]'" in proc.stderr and "Traceback" not in proc.stderr
