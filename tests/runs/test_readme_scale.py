"""The Python examples of docs/scale.md (datasets and Ray Data) run as written (with the tiny prior)."""

from __future__ import annotations

import re
from pathlib import Path

SCALE_DOC = Path(__file__).resolve().parents[2] / "docs" / "scale.md"


def examples() -> dict[str, str]:
    """The section's ```python blocks, keyed by the engine they use."""
    text = SCALE_DOC.read_text(encoding="utf-8")
    section = text.split("\n## Python: datasets and Ray Data\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return {("ray" if "import ray" in b else "datasets"): b for b in blocks}


def with_tiny_prior(code: str, model_dir: Path) -> str:
    assert 'MODEL = "default"' in code
    return code.replace('MODEL = "default"', f"MODEL = {str(model_dir)!r}")


def test_datasets_example_runs(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = with_tiny_prior(examples()["datasets"], tiny_model_dir)
    scope: dict = {}
    exec(compile(code, "docs/scale.md (datasets example)", "exec"), scope)
    assert scope["edited"].num_rows == 2 and "toedit_n_changed" in scope["edited"].column_names
    assert "It is a truth" in capsys.readouterr().out


# the Ray Data example runs in test_ray.py, on that module's Ray instance
