"""benchmarks/gpu_check.py in its reduced CPU mode: every step runs (tiny shapes) and reports what it measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cpu_smoke_mode_runs_every_step(gpu_check, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    res = gpu_check.main(
        ["--cpu-smoke", "--assets", str(tiny_model_dir), "--shapes", "1b", "--json", str(out)]
    )
    written = json.loads(out.read_text())
    assert written["smoke"] is True and res["smoke"]
    # every section's time is recorded (and was written as the section finished)
    assert list(written["section_seconds"]) == ["gemm+agreement", "speed 1b", "oom", "tinylm"]
    printed = capsys.readouterr().out
    # the same weights in fp32 on the same device: identical scores; bf16 differs but is compared
    same = res["agreement"]["cpu float32 vs cpu float32"]
    assert same["max_abs_logprob_diff"] == 0.0 and same["top1_match"] == 1.0
    assert res["agreement"]["cpu bfloat16 vs cpu float32"]["max_abs_logprob_diff"] > 0.0
    for shape in ("1b",):
        speed = res["speed"][shape]
        assert speed["tokens"] > 0 and speed["roofline_tok_s"] > 0
        for path in ("toedit score", "toedit edit", "simplest script"):
            assert speed[path]["tok_s"] > 0 and speed[path]["of_roofline"] > 0
        assert f"{shape}: {speed['tokens']} tokens" in printed
    # the back-off ran (through the seam on a CPU) and changed no score beyond batch rounding
    oom = res["oom"]
    assert oom["backoffs"] >= 1 and "retrying in halves" in oom["messages"][0]
    assert oom["agreement"]["max_abs_logprob_diff"] < 1e-4
    assert res["tinylm"]["tokens_per_s"] > 0 and res["tinylm"]["steps"] >= 1
    grid = res["tinylm"]["grid"]
    assert grid["runs"] == 2 and grid["tokens_per_s"] > 0 and grid["vs_sequential"] > 0
    assert "grid trainer (2 runs" in printed


def test_export_writes_the_assets_the_check_loads(gpu_check, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check.bench_edit, "model_dir", lambda: tiny_model_dir)
    monkeypatch.setattr("toedit.prior.load_prior", lambda *a, **k: None)
    gpu_check.export_assets(tmp_path / "assets", wheels=False)
    names = {p.name for p in (tmp_path / "assets").iterdir()}
    assert {"config.json", "tokenizer.json"} <= names and not any(n.endswith(".safetensors") for n in names)
    config, tokenizer = gpu_check.load_assets(tmp_path / "assets")
    assert config.hidden_size == 64 and len(tokenizer) > 0
