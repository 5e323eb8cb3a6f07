"""`--device cpu|cuda|auto` of generate, mix, collapse and benefit reaches the code that loads the prior and
the tiny LMs' training config (CPU-only checks: cuda without CUDA is a clear error)."""

from __future__ import annotations

import pytest
import torch

import toedit.prior
from toedit.cli import parse
from toedit.config import ConfigError
from toedit.experiments.collapse import CollapseConfig
from toedit.experiments.common import lm_config
from toedit.experiments.generate import GenerateConfig, run_generate
from toedit.experiments.mix import MixConfig, build_pools


def _stop(seen):
    def fake(spec, device=None, **kw):
        seen.append(device)
        raise RuntimeError("stop")

    return fake


@pytest.mark.parametrize("verb", ["generate", "experiment mix", "experiment collapse", "experiment benefit"])
def test_device_flag_parses_for_every_verb(verb, tmp_path):
    args = [*verb.split(), "--device", "cpu"]
    if verb == "generate":
        args += ["x.jsonl", "-o", str(tmp_path / "o.jsonl")]
    _, options = parse(args)
    assert options.config.device == "cpu"


def test_generate_and_mix_load_the_prior_on_the_device(monkeypatch, tmp_path):
    seen: list = []
    monkeypatch.setattr(toedit.prior, "load_prior", _stop(seen))
    src = tmp_path / "h.jsonl"
    src.write_text('{"id": "a", "text": "hello there"}\n')
    with pytest.raises(RuntimeError, match="stop"):
        run_generate([str(src)], tmp_path / "o.jsonl", GenerateConfig(device="cpu"))
    monkeypatch.setattr("toedit.experiments.mix.load_human", lambda h: [("a", "x y z")] * 20)
    with pytest.raises(RuntimeError, match="stop"):
        build_pools(["h"], MixConfig(device="cpu"), tmp_path, progress=False)
    assert seen == ["cpu", "cpu"]
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            run_generate([str(src)], tmp_path / "o.jsonl", GenerateConfig(device="cuda"))


def test_mix_and_collapse_train_on_the_device():
    assert lm_config(MixConfig(device="cpu"), 0, 1024).device == "cpu"
    assert lm_config(CollapseConfig(device="cuda"), 0, 1024).device == "cuda"
