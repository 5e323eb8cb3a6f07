"""A tiny Llama trained from scratch on CPU at a fixed token budget; the metric is held-out human perplexity.

Tokenizer: the prior's (SmolLM2, 49,152 entries) makes the tied embedding + LM head ~90 % of a small model's
compute, so the default is a byte-level BPE of 4,096 entries trained on the human training texts
(`tokenizer="bpe:4096"`); `tokenizer="prior"` uses the embedded prior's. Training is deterministic for a seed:
weights from `torch.manual_seed`, data order from a seeded permutation, AdamW with linear warm-up + cosine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, ScoreConfig
from ..prior import Prior, prior_from_model
from ..probs import doc_ppl
from ..scoring import score_texts

EOT = "<|endoftext|>"
TAIL_P = 0.01  # "tail" tokens: probability below this under the model
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_device(spec: str, cuda_available: bool | None = None) -> torch.device:
    """`auto`: cuda when available, else cpu; `cuda` without CUDA is an error (never a silent CPU run)."""
    if spec not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {spec!r}")
    has_cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if spec == "cuda" and not has_cuda:
        raise ConfigError(
            f"--device cuda: CUDA is not available to this torch ({torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto"
        )
    return torch.device("cuda" if spec == "cuda" or (spec == "auto" and has_cuda) else "cpu")


@dataclass
class TrainConfig:
    """Model size, token budget and optimiser of a tiny LM."""

    tokens: int = field(
        default=200_000, metadata={"help": "training tokens seen (steps = tokens / (batch_size * seq_len))"}
    )
    seq_len: int = field(default=128, metadata={"help": "training sequence length (= the model's context)"})
    batch_size: int = field(default=16, metadata={"help": "sequences per step"})
    lr: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    warmup: float = field(default=0.05, metadata={"help": "share of steps with linear warm-up"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decays to lr * min_lr_ratio"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (matrices only)"})
    hidden: int = field(default=192, metadata={"help": "hidden size"})
    layers: int = field(default=4, metadata={"help": "decoder layers"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    intermediate: int = field(default=512, metadata={"help": "MLP width"})
    tokenizer: str = field(
        default="bpe:4096",
        metadata={"help": "bpe:N (trained on the training texts) | prior | an HF tokenizer directory"},
    )
    seed: int = field(default=0, metadata={"help": "initialisation and data order"})
    device: str = field(
        default="auto",
        metadata={
            "help": "cpu | cuda | auto (cuda when available); on cuda the matmuls run in bf16 (autocast)",
            "choices": DEVICES,
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "matmul precision of the grid trainer: float32 | bfloat16 (fp32 master weights) | auto "
            "(bf16 on CUDA and on CPUs with AMX / AVX512-BF16, else fp32)",
            "choices": PRECISIONS,
        },
    )

    def validate(self) -> None:
        for name in ("tokens", "seq_len", "batch_size", "hidden", "layers", "heads", "intermediate"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.hidden % self.heads:
            raise ConfigError("hidden must be a multiple of heads")
        if self.lr <= 0 or not 0 <= self.warmup < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("lr must be > 0, warmup in [0, 1), min_lr_ratio in [0, 1]")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not (
            self.tokenizer.startswith("bpe:") or self.tokenizer == "prior" or Path(self.tokenizer).exists()
        ):
            raise ConfigError(
                f"tokenizer must be bpe:N, prior or a tokenizer directory, got {self.tokenizer!r}"
            )

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.tokens / (self.batch_size * self.seq_len)))


def build_tokenizer(spec: str, texts: Sequence[str] = ()):
    """A fast tokenizer with `<|endoftext|>`: a BPE trained on `texts` (bpe:N), the prior's, or from a dir."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if spec == "prior":
        from ..prior import load_prior

        return load_prior("default", device="cpu").tokenizer
    if not spec.startswith("bpe:"):
        return AutoTokenizer.from_pretrained(spec)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    try:
        size = int(spec[4:])
    except ValueError as exc:
        raise ConfigError(f"bpe:N needs an integer vocabulary size, got {spec!r}") from exc
    if not texts:
        raise ConfigError("a bpe tokenizer needs training texts")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT)


def pack(texts: Sequence[str], tokenizer, seq_len: int) -> torch.Tensor:
    """Documents joined by the end-of-text token, cut into rows of `seq_len` (the last row padded with -1)."""
    eot = tokenizer.convert_tokens_to_ids(EOT)
    if eot is None or eot == tokenizer.unk_token_id:
        eot = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eot)
    n_rows = max(1, math.ceil(len(stream) / seq_len))
    rows = torch.full((n_rows * seq_len,), -1, dtype=torch.long)
    rows[: len(stream)] = torch.tensor(stream, dtype=torch.long)
    return rows.view(n_rows, seq_len)


def mlp_width(hidden: int) -> int:
    """The MLP width of a tiny Llama of width `hidden`: Llama's ~8/3 ratio, a multiple of 32."""
    return hidden * 8 // 3 // 32 * 32 or 32


def make_model(config: TrainConfig, vocab_size: int) -> torch.nn.Module:
    """A Llama decoder with tied embeddings, initialised from `config.seed`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden,
        intermediate_size=config.intermediate,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.seq_len,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(llama)


def data_order(n_rows: int, n_needed: int, seed: int) -> np.ndarray:
    """Row indices for `n_needed` rows: seeded permutations of all rows, concatenated (epochs)."""
    rng = np.random.default_rng(seed)
    epochs = math.ceil(n_needed / n_rows)
    return np.concatenate([rng.permutation(n_rows) for _ in range(epochs)])[:n_needed]


def lr_curve(config: TrainConfig) -> list[float]:
    """The learning rate of every step: linear warm-up, then cosine down to `lr * min_lr_ratio` (HF's)."""
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    steps = config.steps
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    sched = get_cosine_with_min_lr_schedule_with_warmup(
        opt, int(config.warmup * steps), steps, min_lr_rate=config.min_lr_ratio
    )
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: a no-op that keeps the scheduler's call order
        sched.step()
    return out


def train_stats(
    losses: list[float], config: TrainConfig, n_rows: int, model: torch.nn.Module, seconds: float
) -> dict[str, Any]:
    """The metrics of one training run (`train_rows` and the grid trainer report the same keys)."""
    steps = config.steps
    tail = losses[-max(1, steps // 10) :]
    return {
        "steps": steps,
        "train_tokens": steps * config.batch_size * config.seq_len,
        "data_rows": n_rows,
        "epochs": round(steps * config.batch_size / n_rows, 3),
        "first_loss": losses[0],
        "final_loss": float(np.mean(tail)),
        "losses": losses,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(seconds, 3),
        "tokens_per_s": round(steps * config.batch_size * config.seq_len / max(seconds, 1e-9), 1),
    }


def train_rows(
    rows: torch.Tensor, config: TrainConfig, vocab_size: int, model: torch.nn.Module | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train on packed `rows` (int64 [n, seq_len], -1 = padding) for `config.tokens` tokens, one model alone
    (the reference the grid trainer, `ensemble.train_grid`, is tested against). On CUDA: bf16 autocast."""
    from contextlib import nullcontext

    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    config.validate()
    if rows.shape[1] != config.seq_len:
        raise ConfigError(f"rows are {rows.shape[1]} tokens wide, the model's seq_len is {config.seq_len}")
    device = resolve_device(config.device)
    model = (model or make_model(config, vocab_size)).to(device)
    steps = config.steps
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    sched = get_cosine_with_min_lr_schedule_with_warmup(
        opt, int(config.warmup * steps), steps, min_lr_rate=config.min_lr_ratio
    )
    order = torch.from_numpy(data_order(len(rows), steps * config.batch_size, config.seed))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    torch.manual_seed(config.seed)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        batch = rows[order[step * config.batch_size : (step + 1) * config.batch_size]].to(device)
        labels = batch.masked_fill(batch < 0, -100)
        with autocast:
            loss = model(input_ids=batch.clamp(min=0), labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - t0
    model.cpu().eval()
    return model, train_stats(losses, config, len(rows), model, seconds)


def as_prior(model: torch.nn.Module, tokenizer, name: str = "tinylm") -> Prior:
    """The trained model as a toedit prior (scoring, editing and generation use it like any other)."""
    return prior_from_model(model, tokenizer, name=name, context_token=EOT)


def evaluate(prior: Prior, texts: Sequence[str]) -> dict[str, float]:
    """Token-weighted perplexity of `texts` (windows of the model's context) and the share of tail tokens."""
    scores = score_texts(list(texts), prior, ScoreConfig(store_k=0))
    lp = np.concatenate([s.logprob for s in scores]) if scores else np.zeros(0)
    lp = lp[~np.isnan(lp)].astype(np.float64)
    return {
        "ppl": doc_ppl(lp),
        "tokens": int(len(lp)),
        "tail_share": float(np.mean(lp < math.log(TAIL_P))) if len(lp) else math.nan,
    }
