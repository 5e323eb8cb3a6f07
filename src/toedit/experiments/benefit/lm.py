"""Models and evaluation of `experiment benefit` (training and scoring, no statistics; the items: `items`).

Two ways to train a causal LM here:
- `FullLM`: every weight trains (the tiny Llama from scratch, pre-training setting);
- `TopLM`: the prior with its lower layers, embeddings and head frozen and its top `n` decoder layers (+ the
  final norm) trained. The frozen stack's output is computed once per run over its rows (`TopLM.lower`), so CPU
  fine-tuning of a 135M model costs the top layers and the LM head only; with `TopLM.memo` (cpt and sft set
  it) once per distinct sequence across runs (`TopLM.encode`): the evaluation set for every model, and sft's
  examples (an unedited reply is shared by every arm and seed).
Both expose `inputs`/`encode` (what the model reads), `hidden(inputs)` (final normed hidden states), `head` and
`logprobs` (the log-probs of targets), so one training and one evaluation routine serve both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch

from .items import EvalSeq, Item

IGNORE = -100
LOWER_ROWS = 64  # sequences per block of the frozen stack (`TopLM.lower`, `TopLM.encode`)
HEAD_ROWS = 256  # positions per LM-head call in `head_logprobs`


def bf16_on(device: torch.device, bf16: bool | None = None) -> bool:
    """Whether `autocast` runs matmuls in bf16: `bf16`, or on CUDA only when it is None."""
    return device.type == "cuda" if bf16 is None else bf16


def autocast(device: torch.device, bf16: bool | None = None):
    """bf16 autocast (matmuls in bf16, fp32 weights) when `bf16_on`; else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16_on(device, bf16) else nullcontext()


def in_chunks(fn, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`fn(rows, targets)` over chunks of HEAD_ROWS positions, concatenated: never a [positions, vocab]
    block of the whole input."""
    return torch.cat(
        [
            fn(rows[a : a + HEAD_ROWS], targets[a : a + HEAD_ROWS])
            for a in range(0, max(len(targets), 1), HEAD_ROWS)
        ]
    )


class FullLM:
    """A causal LM trained end to end; inputs are token ids."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.head = model.get_output_embeddings()
        self.device = self.head.weight.device
        self.bf16: bool | None = None  # autocast: None = on CUDA only

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.to(self.device)

    def encode(self, seqs: Sequence[Sequence[int]], width: int) -> list[torch.Tensor]:
        """Per sequence what `hidden` reads of it: its token ids."""
        return [torch.tensor(list(s), dtype=torch.long) for s in seqs]

    def hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.model(input_ids=inputs).last_hidden_state

    def logprobs(self, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probs of `targets` after final hidden states `rows` (fp32, exact)."""
        return head_logprobs(self.head, rows, targets)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)


class _Stack(torch.nn.Module):
    """Decoder layers of a Llama-style model run on hidden states (optionally from ids, optionally normed)."""

    def __init__(self, base: torch.nn.Module, layers: Sequence[torch.nn.Module], embed: bool, norm):
        super().__init__()
        self.config = base.config
        self.embed = base.embed_tokens if embed else None
        self.rotary = base.rotary_emb
        self.layers = torch.nn.ModuleList(layers)
        self.norm = norm if norm is not None else torch.nn.Identity()

    def forward(self, ids: torch.Tensor | None = None, hidden: torch.Tensor | None = None) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        h = self.embed(ids) if ids is not None else hidden
        pos = torch.arange(h.shape[1], device=h.device).unsqueeze(0)
        pe = self.rotary(h, position_ids=pos)
        mask = create_causal_mask(
            config=self.config, inputs_embeds=h, attention_mask=None, cache=None, position_ids=pos
        )
        for layer in self.layers:
            h = layer(h, attention_mask=mask, position_embeddings=pe, position_ids=pos)
        return self.norm(h)


class TopLM:
    """A pre-trained causal LM whose top `n_train` decoder layers (+ final norm) train; the rest is frozen."""

    def __init__(self, model: torch.nn.Module, n_train: int, frozen: torch.nn.Module | None = None):
        """`frozen`: the same model (e.g. the prior in its own bfloat16) whose lower layers compute `lower`
        instead of `model`'s (bfloat16 matmuls are ~4x faster on CPUs with AMX/AVX512-BF16)."""
        layers = list(model.model.layers)
        if not 1 <= n_train <= len(layers):
            raise ValueError(f"n_train must be in [1, {len(layers)}], got {n_train}")
        for p in model.parameters():
            p.requires_grad_(False)
        self.split = len(layers) - n_train
        low = frozen if frozen is not None else model
        self.low = _Stack(low.model, list(low.model.layers)[: self.split], embed=True, norm=None)
        self.top = _Stack(model.model, layers[self.split :], embed=False, norm=model.model.norm)
        for p in self.parameters():
            p.requires_grad_(True)
        self.head = model.get_output_embeddings()
        self.device = self.head.weight.device
        self.bf16: bool | None = None  # autocast: None = on CUDA only
        self.memo: dict[tuple[int, ...], torch.Tensor] | None = None  # `encode`: per distinct sequence
        self.scorer = None  # an `lmhead.LMHead` of the prior for `logprobs` (None: the fp32 head)

    @torch.no_grad()
    def _blocks(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """The frozen stack on `ids` [B, T] in blocks of exactly LOWER_ROWS rows (the last filled with zero
        rows): every block has one shape, so a row's output does not depend on the rows beside it."""
        out = []
        for a in range(0, len(ids), LOWER_ROWS):
            block = torch.zeros((LOWER_ROWS, ids.shape[1]), dtype=torch.long)
            part = ids[a : a + LOWER_ROWS]
            block[: len(part)] = part
            with autocast(self.device, self.bf16):
                out.append(self.low(ids=block.to(self.device))[: len(part)])
        return out

    def lower(self, ids: torch.Tensor) -> torch.Tensor:
        """Output of the frozen layers (the top layers' input), float32 [B, T, H]."""
        return torch.cat(self._blocks(ids)).float()

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lower(ids)

    def encode(self, seqs: Sequence[Sequence[int]], width: int) -> list[torch.Tensor]:
        """Per sequence (at most `width` ids) the frozen stack's output [len, H] in its own dtype, computed in
        blocks of [LOWER_ROWS, width] (right padding: causal attention never sees it). With `memo` (a dict)
        each distinct sequence is computed once and kept there for later calls."""
        keys = [tuple(int(t) for t in s) for s in seqs]
        if any(len(k) > width for k in keys):
            raise ValueError(f"a sequence is longer than width={width}")
        got = self.memo if self.memo is not None else {}
        todo = [k for k in dict.fromkeys(keys) if k not in got]
        ids = torch.zeros((len(todo), width), dtype=torch.long)
        for r, k in enumerate(todo):
            ids[r, : len(k)] = torch.tensor(k, dtype=torch.long)
        at = 0
        for block in self._blocks(ids):
            for r in range(len(block)):
                k = todo[at + r]
                got[k] = block[r, : len(k)].clone()
            at += len(block)
        return [got[k] for k in keys]

    def logprobs(self, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probs of `targets` after final hidden states `rows`: through `scorer` (the prior's LM head as
        scoring runs it: exact in fp32, bf16 slices refined in fp32 for a bf16 prior) when set, else fp32."""
        if self.scorer is None:
            return head_logprobs(self.head, rows, targets)
        return in_chunks(lambda r, t: self.scorer.stats(r, t, k=0)[0], rows, targets)

    def hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.top(hidden=inputs)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.top.layers.parameters()) + list(self.top.norm.parameters())

    def train(self, mode: bool = True) -> None:
        self.top.train(mode)

    def state(self) -> dict[str, torch.Tensor]:
        """The trainable weights (a copy)."""
        named = {
            **{f"layers.{k}": v for k, v in self.top.layers.state_dict().items()},
            **{f"norm.{k}": v for k, v in self.top.norm.state_dict().items()},
        }
        return {k: v.detach().clone() for k, v in named.items()}

    def reset(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the trainable weights (every arm and seed starts from the same prior)."""
        self.top.layers.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("layers.")})
        self.top.norm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("norm.")})


def head_logprobs(head: torch.nn.Module, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """fp32 log-probs of `targets` after hidden states `rows` (`in_chunks` of positions)."""
    return in_chunks(
        lambda r, t: torch.log_softmax(head(r.float()).float(), dim=-1).gather(1, t[:, None])[:, 0],
        rows,
        targets,
    )


def pad_stack(parts: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """`parts` ([len_i, ...] each) right-padded with zeros to `width` and stacked; hidden states as float32."""
    first = parts[0]
    dtype = first.dtype if not first.is_floating_point() else torch.float32
    out = torch.zeros((len(parts), width, *first.shape[1:]), dtype=dtype, device=first.device)
    for r, p in enumerate(parts):
        out[r, : len(p)] = p
    return out


def masked_loss(lm, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not IGNORE (the head runs only there)."""
    h = lm.hidden(inputs)[:, :-1]
    target = labels[:, 1:]
    keep = target != IGNORE
    logits = lm.head(h[keep]).float()
    return torch.nn.functional.cross_entropy(logits, target[keep])


def train_lm(
    lm,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    warmup: float = 0.05,
    min_lr_ratio: float = 0.1,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> dict[str, float]:
    """One pass over `batches` (inputs, labels) in the given order: AdamW, warm-up + cosine, clip 1.0."""
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    steps = len(batches)
    sched = get_cosine_with_min_lr_schedule_with_warmup(
        opt, int(warmup * steps), steps, min_lr_rate=min_lr_ratio
    )
    torch.manual_seed(seed)
    lm.train(True)
    losses = []
    for inputs, labels in batches:
        with autocast(lm.device, lm.bf16):
            loss = masked_loss(lm, inputs, labels.to(lm.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    lm.train(False)
    tail = losses[-max(1, steps // 10) :]
    precision = "bfloat16" if bf16_on(lm.device, lm.bf16) else "float32"
    return {
        "steps": steps,
        "first_loss": losses[0],
        "final_loss": float(np.mean(tail)),
        "precision": precision,
    }


# ---------------------------------------------------------------------------------------------- packing


def pack_stream(texts: Sequence[str], tokenizer, eos: int, seq_len: int, n_rows: int) -> torch.Tensor:
    """The documents in the given order, joined by `eos` and cycled, cut into exactly `n_rows` rows."""
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        stream.append(eos)
    if not stream:
        raise ValueError("no tokens to pack")
    need = n_rows * seq_len
    reps = math.ceil(need / len(stream))
    full = (stream * reps)[:need]
    return torch.tensor(full, dtype=torch.long).view(n_rows, seq_len)


def corpus_tokens(texts: Sequence[str], tokenizer) -> int:
    return sum(len(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"])


# ------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def sequence_logprobs(
    lm, seqs: Sequence[EvalSeq], batch: int = LOWER_ROWS, full: set[int] | None = None
) -> list:
    """Per sequence: the log-probs (float64 numpy) of its tokens 1.. (the first is the bos context); for a
    sequence not in `full` only the tokens from its `start` on (NaN before: the LM head runs only there).

    What the model reads comes from `lm.encode` per batch of `batch` sequences of similar length: with a
    `TopLM.memo` the frozen stack runs once per distinct sequence, so every model scores the same evaluation
    set without recomputing the shared lower layers.
    """
    out: list = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].ids))
    for b in range(0, len(order), batch):
        idx = order[b : b + batch]
        width = max(len(seqs[i].ids) for i in idx)
        inputs = pad_stack(lm.encode([seqs[i].ids for i in idx], width), width).to(lm.device)
        with autocast(lm.device, lm.bf16):
            h = lm.hidden(inputs)
        firsts = [1 if full is None or i in full else seqs[i].start for i in idx]
        # one head call per batch: a per-row call re-reads the (vocab x hidden) head matrix for every row
        rows = torch.cat(
            [h[r, f - 1 : len(seqs[i].ids) - 1] for r, (i, f) in enumerate(zip(idx, firsts, strict=True))]
        )
        tgt = torch.tensor(
            [t for i, f in zip(idx, firsts, strict=True) for t in seqs[i].ids[f:]], device=h.device
        )
        lp = lm.logprobs(rows, tgt).double().cpu().numpy()
        at = 0
        for i, f in zip(idx, firsts, strict=True):
            n = len(seqs[i].ids)
            vals = np.full(n - 1, np.nan)
            vals[f - 1 :] = lp[at : at + n - f]
            at += n - f
            out[i] = vals
    return out


def evaluate_items(lm, items: Sequence[Item], seqs: Sequence[EvalSeq], ppl_on: str):
    """(0/1 correctness per item, PPL, PPL tokens) from ONE forward pass over the choice sequences.

    Choices score by the sum (or mean, `Item.normalise`) of their tokens' log-probs; the PPL is over the true
    choices' sequences: every token (`ppl_on="sequence"`: held-out passages) or the true choice only
    (`"choice"`: held-out replies given their context).
    """
    full = (
        {j for j, s in enumerate(seqs) if s.choice == items[s.item].answer} if ppl_on == "sequence" else set()
    )
    lps = sequence_logprobs(lm, seqs, full=full)
    scores = np.full((len(items), 4), -np.inf)
    tok = []
    for s, lp in zip(seqs, lps, strict=True):
        part = lp[s.start - 1 :]
        scores[s.item, s.choice] = part.mean() if items[s.item].normalise else part.sum()
        if s.choice == items[s.item].answer:
            tok.append(lp if ppl_on == "sequence" else part)
    correct = (scores.argmax(axis=1) == np.array([it.answer for it in items])).astype(np.int8)
    t = np.concatenate(tok) if tok else np.zeros(0)
    ppl = float(np.exp(-t.mean())) if len(t) else math.nan
    return correct, ppl, int(len(t))
