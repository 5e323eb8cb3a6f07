"""The three settings of `experiment benefit` behind one protocol (`Setting`): what trains, on what, and how
it is evaluated. `run.run_setting` drives each the same way: load its data, score once, build the arms per
seed, `evaluation` (items, tokenizer and, for cpt/sft, the untrained prior's numbers), `prepare` (train what
can be trained together), then `train` per (seed, arm) and evaluate.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..common import unigram_ppl_ids
from . import items as bitems
from . import lm as blm
from .config import BenefitConfig
from .data import SettingData


@dataclass
class Trained:
    """One trained model of a (seed, arm): the model wrapper, its training stats and what it saw."""

    lm: Any
    stats: dict[str, float]
    tokens: int  # trained tokens (sft: reply tokens)
    seen: list[str]  # document ids in training order


@dataclass
class Context:
    """Everything a setting shares across its arms and seeds."""

    config: BenefitConfig
    prior: Any
    data: SettingData
    device: torch.device
    tok: Any = None
    eos: int = 0
    items: list = field(default_factory=list)
    seqs: list = field(default_factory=list)
    seq_len: int = 0
    ppl_on: str = "sequence"
    before: dict[str, float] | None = None
    unigram: float | None = None


def doc_order(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 104729]).permutation(n)


def n_rows(tokens: int, seq_len: int, batch: int) -> int:
    return max(batch, math.ceil(tokens / seq_len / batch) * batch)


def row_batches(rows: torch.Tensor, batch: int, seed: int, to_inputs) -> list:
    """(inputs, labels) batches of `rows` in the seed's order; `to_inputs` runs once over all rows."""
    perm = torch.from_numpy(np.random.default_rng([seed, 15485863]).permutation(len(rows)))
    rows = rows[perm]
    inputs = to_inputs(rows)
    return [(inputs[i : i + batch], rows[i : i + batch]) for i in range(0, len(rows), batch)]


def trainable_copy(prior, device: torch.device | None = None) -> torch.nn.Module:
    """A float32 copy of the prior's weights (on `device`): training never touches the scorer."""
    model = copy.deepcopy(prior.model).float()
    return model.to(device) if device is not None else model


def sft_example(context: str, reply: str, tokenizer, eos: int, max_len: int) -> tuple[list[int], list[int]]:
    """(ids, labels): context tokens masked (IGNORE), reply tokens + eos as labels; context cut from the left."""
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    rep = tokenizer(" " + reply, add_special_tokens=False)["input_ids"][: max_len - 2] + [eos]
    keep = max(0, max_len - 1 - len(rep))
    ctx = ctx[-keep:] if keep else []
    ids = [eos, *ctx, *rep]
    labels = [blm.IGNORE] * (1 + len(ctx)) + rep
    return ids, labels


def sft_batches(examples: Sequence[tuple[list[int], list[int]]], batch: int, lm, max_len: int) -> list:
    """(inputs, labels) batches in the given order, right-padded to the batch's longest example (causal
    attention never sees the padding); `lm.encode` runs once over all examples (at most `max_len` ids)."""
    feats = lm.encode([x for x, _ in examples], max_len)
    out = []
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        width = max(len(x) for x, _ in chunk)
        labels = torch.full((len(chunk), width), blm.IGNORE, dtype=torch.long)
        for r, (_, y) in enumerate(chunk):
            labels[r, : len(y)] = torch.tensor(y)
        out.append((blm.pad_stack(feats[i : i + len(chunk)], width), labels))
    return out


def pretrain_config(config: BenefitConfig, seed: int):
    """The tiny Llama of the pretrain setting as a `TrainConfig` (shape, budget, lr, device)."""
    from ..tinylm import TrainConfig, mlp_width

    return TrainConfig(
        tokens=config.pt_tokens,
        seq_len=config.pt_seq_len,
        batch_size=config.pt_batch,
        lr=config.pt_lr,
        hidden=config.pt_hidden,
        layers=config.pt_layers,
        heads=max(1, config.pt_hidden // 64),
        intermediate=mlp_width(config.pt_hidden),
        seed=seed,
        device=config.device,
    )


class Setting:
    """The protocol: `evaluation` fills the context, `prepare` may train every model at once, `train` returns
    the (seed, arm) model. `trains_prior`: the prior itself is trained (cpt, sft), so the "moved" rule applies."""

    name = ""
    title = ""
    trains_prior = False

    def evaluation(self, ctx: Context) -> None:
        raise NotImplementedError

    def prepare(self, ctx: Context, arms_of: dict[int, dict]) -> None:
        """Train ahead what can be trained together (default: nothing)."""

    def train(self, ctx: Context, seed: int, name: str, texts: list[str], order: np.ndarray) -> Trained:
        raise NotImplementedError


class Pretrain(Setting):
    """A tiny Llama from scratch; every (seed, arm) model trains in one grid (`ensemble.train_grid`)."""

    name, title = "pretrain", "Pre-training from scratch"

    def evaluation(self, ctx: Context) -> None:
        from ..tinylm import EOT, build_tokenizer

        c = ctx.config
        ctx.tok = build_tokenizer(f"bpe:{c.pt_vocab}", ctx.data.texts)  # human training texts, every arm
        ctx.eos = ctx.tok.convert_tokens_to_ids(EOT)
        ctx.items = bitems.lambada_items(ctx.data.held, c.items, 0, c.item_words)
        ctx.seq_len, ctx.ppl_on = c.pt_seq_len, "sequence"

    def prepare(self, ctx: Context, arms_of: dict[int, dict]) -> None:
        """Every (seed, arm) model: its arm's texts in the seed's document order, packed, its rows in the seed's
        batch order (`row_batches`), the seed's initialisation; AdamW decays every parameter."""
        from ..ensemble import Member, train_grid

        c = ctx.config
        rows_n = n_rows(c.pt_tokens, c.pt_seq_len, c.pt_batch)
        keys, members = [], []
        for seed, arms in arms_of.items():
            perm = np.random.default_rng([seed, 15485863]).permutation(rows_n)  # `row_batches`' order
            for name, (texts, _) in arms.items():
                order = doc_order(len(texts), seed)
                rows = blm.pack_stream([texts[i] for i in order], ctx.tok, ctx.eos, c.pt_seq_len, rows_n)
                keys.append((seed, name))
                members.append(Member(rows, pretrain_config(c, seed), order=perm))
        trained = train_grid(members, len(ctx.tok), decay_vectors=True)
        self._trained = {k: (m.rows, *res) for k, m, res in zip(keys, members, trained, strict=True)}

    def train(self, ctx: Context, seed: int, name: str, texts: list[str], order: np.ndarray) -> Trained:
        rows, model, stats = self._trained.pop((seed, name))
        if name == "H" and ctx.unigram is None:  # the level of word frequencies alone
            true = [s.ids[1:] for s in ctx.seqs if s.choice == ctx.items[s.item].answer]
            ctx.unigram = unigram_ppl_ids(rows, true, len(ctx.tok))
        return Trained(blm.FullLM(model), stats, int(rows.numel()), [ctx.data.ids[i] for i in order])


class _Prior(Setting):
    """The prior's top `ft_layers` decoder layers train (the rest frozen, in the prior's own dtype)."""

    trains_prior = True

    def _top(self, ctx: Context) -> None:
        tok = ctx.prior.tokenizer
        ctx.tok, ctx.eos = tok, tok.eos_token_id if tok.eos_token_id is not None else ctx.prior.context_id
        self.top = blm.TopLM(
            trainable_copy(ctx.prior, ctx.device), ctx.config.ft_layers, frozen=ctx.prior.model
        )
        self.state = self.top.state()
        from ..ensemble import resolve_precision

        self.top.bf16 = resolve_precision(ctx.config.ft_precision, ctx.device) == torch.bfloat16
        # every model (and the untrained prior) is evaluated through the prior's LM head as scoring runs it
        from ...lmhead import LMHead

        self.top.scorer = LMHead(ctx.prior)
        # the frozen stack's output per distinct sequence, kept for every model of the setting: the evaluation
        # sequences (and sft's examples, most of them unedited in every arm) run through it once
        self.top.memo = {}

    def before(self, ctx: Context) -> None:
        """The untrained prior on the evaluation set: how far did training move it?"""
        ctx.seqs = bitems.item_sequences(ctx.items, ctx.tok, ctx.eos, ctx.seq_len)
        c0, p0, _ = blm.evaluate_items(self.top, ctx.items, ctx.seqs, ctx.ppl_on)
        ctx.before = {"ppl": p0, "acc": float(c0.mean()), "correct": c0.tolist()}


class Cpt(_Prior):
    """Continual pre-training of the prior on a domain corpus (packed rows)."""

    name, title = "cpt", "Continual pre-training"

    def evaluation(self, ctx: Context) -> None:
        c = ctx.config
        self._top(ctx)
        ctx.items = bitems.lambada_items(ctx.data.held, c.ft_items, 0, c.item_words)
        ctx.seq_len, ctx.ppl_on = c.cpt_seq_len, "sequence"
        self.before(ctx)

    def train(self, ctx: Context, seed: int, name: str, texts: list[str], order: np.ndarray) -> Trained:
        c = ctx.config
        rows = blm.pack_stream(
            [texts[i] for i in order],
            ctx.tok,
            ctx.eos,
            c.cpt_seq_len,
            n_rows(c.cpt_tokens, c.cpt_seq_len, c.ft_batch),
        )
        self.top.reset(self.state)
        stats = blm.train_lm(
            self.top, row_batches(rows, c.ft_batch, seed, self.top.inputs), c.ft_lr, seed=seed
        )
        return Trained(self.top, stats, int(rows.numel()), [ctx.data.ids[i] for i in order])


class Sft(_Prior):
    """Fine-tuning of the prior on (context, reply) pairs; loss and edits on the replies only."""

    name, title = "sft", "SFT"

    def evaluation(self, ctx: Context) -> None:
        c = ctx.config
        self._top(ctx)
        ctx.items = bitems.reply_items(ctx.data.held, c.ft_items, 0)
        ctx.seq_len, ctx.ppl_on = c.sft_max_len, "choice"
        self.before(ctx)

    def train(self, ctx: Context, seed: int, name: str, texts: list[str], order: np.ndarray) -> Trained:
        c = ctx.config
        ctxs = ctx.data.contexts
        examples = [sft_example(ctxs[i], texts[i], ctx.tok, ctx.eos, c.sft_max_len) for i in order]
        self.top.reset(self.state)
        batches = sft_batches(examples, c.ft_batch, self.top, c.sft_max_len)
        stats = blm.train_lm(self.top, batches, c.ft_lr, seed=seed)
        tokens = sum(sum(x != blm.IGNORE for x in lab) for _, lab in examples)
        return Trained(self.top, stats, int(tokens), [ctx.data.ids[i] for i in order])


SETTING_TYPES: dict[str, type[Setting]] = {"pretrain": Pretrain, "cpt": Cpt, "sft": Sft}
