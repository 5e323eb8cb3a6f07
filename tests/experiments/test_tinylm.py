from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from toedit.cli import main
from toedit.config import ConfigError
from toedit.experiments.ensemble import Member, resolve_precision, train_ensemble, train_grid
from toedit.experiments.tinylm import (
    TrainConfig,
    as_prior,
    build_tokenizer,
    data_order,
    evaluate,
    pack,
    resolve_device,
    train_rows,
)
from toedit.experiments.train import train_tinylm

from ..conftest import corpus_texts

TOY = TrainConfig(
    tokens=4096, seq_len=32, batch_size=8, hidden=32, layers=1, heads=2, intermediate=64, lr=1e-2
)


TOY_FLAGS = ["--tokens", "1024", "--seq-len", "32", "--hidden", "32", "--layers", "1", "--heads", "2"]
TOY_FLAGS += ["--tokenizer", "bpe:300"]


@pytest.fixture(scope="module")
def toy_tokenizer():
    return build_tokenizer("bpe:300", corpus_texts(30))


def test_loss_falls_and_heldout_ppl(toy_tokenizer):
    res = train_tinylm(
        corpus_texts(30)[:20],
        TOY,
        heldout=[t[:1500] for t in corpus_texts(30)[20:24]],
        tokenizer=toy_tokenizer,
    )
    m = res["metrics"]
    assert m["steps"] == 16 and m["train_tokens"] == 4096
    assert m["final_loss"] < m["first_loss"] - 1.0
    assert m["first_loss"] == pytest.approx(math.log(len(toy_tokenizer)), abs=0.5)  # starts near uniform
    assert 1 < m["heldout"]["ppl"] < len(toy_tokenizer) and 0 <= m["heldout"]["tail_share"] <= 1


def test_deterministic_with_a_seed(toy_tokenizer):
    rows = pack(corpus_texts(10), toy_tokenizer, TOY.seq_len)
    a, sa = train_rows(rows, TOY, len(toy_tokenizer))
    b, sb = train_rows(rows, TOY, len(toy_tokenizer))
    assert sa["losses"] == sb["losses"]
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    c, sc = train_rows(rows, TrainConfig(**{**TOY.__dict__, "seed": 1}), len(toy_tokenizer))
    assert sc["losses"] != sa["losses"]


def test_pack_joins_documents_and_pads(toy_tokenizer):
    texts = ["abc def", "ghi"]
    rows = pack(texts, toy_tokenizer, 4)
    eot = toy_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    flat = rows.flatten().tolist()
    ids = [toy_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    stream = ids[0] + [eot] + ids[1] + [eot]
    assert flat[: len(stream)] == stream and set(flat[len(stream) :]) <= {-1}
    assert rows.shape[1] == 4 and len(flat) - len(stream) < 4


def test_evaluate_matches_the_model_loss(toy_tokenizer):
    model, _ = train_rows(pack(corpus_texts(10), toy_tokenizer, 32), TOY, len(toy_tokenizer))
    text = "The for statement is used to iterate"
    ids = toy_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) < 32  # one window: every token sees all of its prefix
    eot = toy_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    x = torch.tensor([[eot, *ids]])
    with torch.no_grad():
        loss = float(model(input_ids=x, labels=x).loss)
    ev = evaluate(as_prior(model, toy_tokenizer), [text])
    assert ev["tokens"] == len(ids)
    assert ev["ppl"] == pytest.approx(math.exp(loss), rel=1e-4)


def test_config_errors():
    with pytest.raises(ConfigError):
        TrainConfig(hidden=30, heads=4).validate()
    with pytest.raises(ConfigError):
        TrainConfig(tokenizer="nonsense").validate()
    with pytest.raises(ConfigError):
        build_tokenizer("bpe:x", ["a"])


def test_cli_train(tmp_path, human_jsonl, capsys):
    out = tmp_path / "lm"
    args = ["train", str(human_jsonl), "--heldout", str(human_jsonl), "-o", str(out), *TOY_FLAGS]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())
    assert printed["steps"] == saved["steps"] == 2 and "heldout" in printed
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert main(["train", str(human_jsonl), "--hidden", "30"]) == 2


# ------------------------------------------------------------------ the grid trainer (ensemble) and --device

STEPS20 = TrainConfig(**{**TOY.__dict__, "tokens": 20 * 8 * 32, "layers": 2, "precision": "float32"})
LOSS_TOL = 1e-4  # fp32: an ensemble member vs the same run alone (observed ~1.5e-6 over 20 steps)


def _cfg(seed: int, **kw) -> TrainConfig:
    return TrainConfig(**{**STEPS20.__dict__, "seed": seed, **kw})


@pytest.fixture(scope="module")
def toy_rows(toy_tokenizer):
    return pack(corpus_texts(10), toy_tokenizer, 32)


def test_ensemble_members_match_the_runs_alone_fp32(toy_tokenizer, toy_rows):
    vocab = len(toy_tokenizer)
    alone = [train_rows(toy_rows, _cfg(s), vocab) for s in (0, 1, 2)]
    grid = train_ensemble([Member(toy_rows, _cfg(s)) for s in (0, 1, 2)], vocab)
    for (m_a, s_a), (m_g, s_g) in zip(alone, grid, strict=True):
        assert s_g["steps"] == s_a["steps"] == 20 and s_g["members"] == 3 and s_g["precision"] == "float32"
        assert np.abs(np.subtract(s_a["losses"], s_g["losses"])).max() < LOSS_TOL
        for (name, a), b in zip(m_a.state_dict().items(), m_g.state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=1e-4), name
        assert s_g["final_loss"] < s_g["first_loss"] - 0.5  # it trained
    # the trained member is an ordinary Llama: the same loss through HF's forward
    x = toy_rows[:2]
    with torch.no_grad():
        assert float(grid[0][0](input_ids=x, labels=x).loss) == pytest.approx(
            float(alone[0][0](input_ids=x, labels=x).loss), abs=1e-4
        )


def test_members_are_independent(toy_tokenizer, toy_rows):
    """A member's run does not depend on who else is in the grid; seeds give their own init and data order."""
    vocab = len(toy_tokenizer)
    ab = train_ensemble([Member(toy_rows, _cfg(0)), Member(toy_rows, _cfg(1))], vocab)
    ac = train_ensemble([Member(toy_rows, _cfg(0)), Member(toy_rows[:40], _cfg(7, lr=3e-3))], vocab)
    assert np.abs(np.subtract(ab[0][1]["losses"], ac[0][1]["losses"])).max() < 1e-5
    assert ab[0][1]["losses"][0] != ab[1][1]["losses"][0]  # another init and first batch
    # a given row order is used as given: the same as the rows permuted beforehand, read in sequence
    order = data_order(len(toy_rows), 20 * 8, 5)
    given = train_ensemble([Member(toy_rows, _cfg(0), order=order)], vocab)[0][1]["losses"]
    permuted = toy_rows[torch.from_numpy(order)]
    in_sequence = train_ensemble([Member(permuted, _cfg(0), order=np.arange(len(order)))], vocab)
    assert np.abs(np.subtract(given, in_sequence[0][1]["losses"])).max() < 1e-5
    assert np.abs(np.subtract(given, ab[0][1]["losses"])).max() > 1e-3  # seed 0's own order differs
    with pytest.raises(ConfigError, match="row order"):
        train_ensemble([Member(toy_rows, _cfg(0), order=order[:10])], vocab)


def test_grid_groups_shapes_and_keeps_the_order(toy_tokenizer, toy_rows):
    vocab = len(toy_tokenizer)
    members = [Member(toy_rows, _cfg(0)), Member(toy_rows, _cfg(1, hidden=16)), Member(toy_rows, _cfg(2))]
    out = train_grid(members, vocab, max_members=1)
    assert [s["members"] for _, s in out] == [1, 1, 1]
    assert out[1][0].config.hidden_size == 16 and out[0][0].config.hidden_size == 32
    together = train_grid(members, vocab)
    assert [s["members"] for _, s in together] == [2, 1, 2]
    assert np.abs(np.subtract(out[2][1]["losses"], together[2][1]["losses"])).max() < 1e-5
    with pytest.raises(ConfigError, match="one shape"):
        train_ensemble(members, vocab)


def test_bf16_ensemble_trains_close_to_fp32(toy_tokenizer, toy_rows):
    vocab = len(toy_tokenizer)
    fp32 = train_ensemble([Member(toy_rows, _cfg(0))], vocab)[0][1]
    bf16 = train_ensemble([Member(toy_rows, _cfg(0, precision="bfloat16"))], vocab)[0][1]
    assert bf16["precision"] == "bfloat16" and fp32["precision"] == "float32"
    assert bf16["losses"] != fp32["losses"]  # bf16 matmuls really ran
    assert abs(bf16["final_loss"] - fp32["final_loss"]) < 0.1


def test_precision_auto_follows_the_cpu(monkeypatch):
    import toedit.prior as prior_mod

    cpu = torch.device("cpu")
    monkeypatch.setattr(prior_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(prior_mod, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_precision("auto", cpu) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16
    assert resolve_precision("auto", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp8", cpu)


def test_device_selection():
    assert resolve_device("auto", cuda_available=False).type == "cpu"
    assert resolve_device("auto", cuda_available=True).type == "cuda"
    assert resolve_device("cpu", cuda_available=True).type == "cpu"
    assert resolve_device("cuda", cuda_available=True).type == "cuda"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda", cuda_available=False)
    with pytest.raises(ConfigError, match="device must be one of"):
        TrainConfig(device="tpu").validate()
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainConfig(precision="half").validate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(toy_tokenizer, toy_rows, human_jsonl, capsys):
    with pytest.raises(ConfigError, match="--device cuda: CUDA is not available"):
        train_rows(toy_rows, _cfg(0, device="cuda"), len(toy_tokenizer))
    with pytest.raises(ConfigError, match="CUDA is not available"):
        train_ensemble([Member(toy_rows, _cfg(0, device="cuda"))], len(toy_tokenizer))
    assert main(["train", str(human_jsonl), "--device", "cuda", "--tokens", "256"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_cli_device_and_precision_reach_the_trainer(tmp_path, human_jsonl, monkeypatch, capsys):
    import toedit.experiments.ensemble as ens

    seen = []
    real = ens.resolve_device

    def spy(spec, *a, **kw):
        seen.append(spec)
        return real(spec, *a, **kw)

    monkeypatch.setattr(ens, "resolve_device", spy)
    args = ["train", str(human_jsonl), *TOY_FLAGS, "--device", "cpu", "--precision", "bfloat16"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert seen == ["cpu"]
    assert printed["device"] == "cpu" and printed["precision"] == "bfloat16" and printed["members"] == 1


def test_member_matches_benefits_trainer(toy_tokenizer, toy_rows):
    """benefit's pretrain grid: decay on every parameter, its own batch order = `benefit.lm.train_lm` alone."""
    from toedit.experiments.benefit import lm as blm
    from toedit.experiments.benefit.settings import row_batches as _row_batches
    from toedit.experiments.tinylm import make_model

    cfg = _cfg(3, weight_decay=0.1)
    rows = toy_rows[: 20 * 8]
    perm = np.random.default_rng([3, 15485863]).permutation(len(rows))  # `_row_batches`' order
    lm = blm.FullLM(make_model(cfg, len(toy_tokenizer)))
    alone = blm.train_lm(lm, _row_batches(rows, 8, 3, lm.inputs), cfg.lr, weight_decay=0.1, seed=3)
    ((_, grid),) = train_grid([Member(rows, cfg, order=perm)], len(toy_tokenizer), decay_vectors=True)
    assert grid["steps"] == alone["steps"] == 20
    assert grid["first_loss"] == pytest.approx(alone["first_loss"], abs=LOSS_TOL)
    assert grid["final_loss"] == pytest.approx(alone["final_loss"], abs=LOSS_TOL)


def test_grid_compiles_large_shape_groups(toy_tokenizer, toy_rows, monkeypatch):
    """`compile=None`: the step is compiled when a shape group trains >= COMPILE_TOKENS tokens in all."""
    import toedit.experiments.ensemble as ens

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn: compiled.append(fn) or fn)
    members = [Member(toy_rows, _cfg(s, tokens=2 * 8 * 32)) for s in range(3)]
    monkeypatch.setattr(ens, "COMPILE_TOKENS", 3 * 2 * 8 * 32)
    out = train_grid(members, len(toy_tokenizer), max_members=2)
    # both chunks (the group is large) compile their hidden states, loss and update
    assert len(compiled) == 2 * 3 and all(s["compiled"] for _, s in out)
    monkeypatch.setattr(ens, "COMPILE_TOKENS", 3 * 2 * 8 * 32 + 1)
    out = train_grid(members, len(toy_tokenizer), max_members=2)
    assert len(compiled) == 2 * 3 and not any(s["compiled"] for _, s in out)


def test_ce_grad_matches_autograd():
    """The head's loss and its forward-pass gradient = F.cross_entropy's mean over kept targets and autograd."""
    from toedit.experiments.ensemble import ce_grad

    logits = torch.randn(12, 50, dtype=torch.float64, requires_grad=True)
    target = torch.randint(50, (12,))
    target[[2, 7]] = -1
    ref = torch.nn.functional.cross_entropy(logits, target, ignore_index=-1)
    ref.backward()
    loss, grad = ce_grad(logits.detach(), target)
    assert float(loss) == pytest.approx(float(ref.detach()), abs=1e-6)
    assert torch.allclose(grad.double(), logits.grad, atol=1e-6)
