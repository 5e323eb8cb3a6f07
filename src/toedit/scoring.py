"""Teacher-forced scoring: exact full-vocabulary log-probs for every token of any length of document.

One forward pass per window; windows overlap so every token is scored exactly once with at least
`window - stride` tokens of left context. The LM head and the softmax run in chunks of positions, so no
`[batch, seq, vocab]` logits tensor ever exists. Segments are length-sorted into token-budget batches and the
results come back in input order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import compiling
from .config import ScoreConfig
from .lmhead import LMHead
from .prior import Prior, context_token_id
from .rule import above

log = logging.getLogger(__name__)


@dataclass
class TokenScores:
    """Per-document token scores (numpy). `logprob` is NaN where a position has no score."""

    token_ids: np.ndarray  # int32 [n]
    offsets: np.ndarray  # int32 [n, 2] character spans in the text
    logprob: np.ndarray  # float32 [n]
    topk_ids: np.ndarray  # int32 [n, k]
    topk_logprobs: np.ndarray  # float32 [n, k]
    entropy: np.ndarray | None = None  # float32 [n]
    sampled: np.ndarray | None = None  # int32 [n]: full-vocabulary draws (-1 where none)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def n_scored(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.logprob)))


@dataclass
class FullVocabDraw:
    """Ask the scorer to resample selected positions from the full distribution (top_k = 0)."""

    threshold: float
    beta: float
    exclude_original: bool
    uniforms: Callable[[int, int], np.ndarray]  # (text index, n tokens) -> one uniform per token


@dataclass
class _Segment:
    doc: int
    start: int  # window start in the context-prefixed sequence
    lo: int  # first target index (context-prefixed sequence)
    hi: int  # one past the last target index


def plan_windows(length: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows (start, lo, hi) over a sequence of `length` ids whose targets are indices 1..length-1."""
    if length < 2:
        return []
    out, lo, start = [], 1, 0
    while lo < length:
        hi = min(start + window, length)
        out.append((start, lo, hi))
        lo, start = hi, start + stride
    return out


def resolve_window(prior: Prior, config: ScoreConfig) -> tuple[int, int]:
    window = config.window or min(prior.max_positions, 2048)
    window = min(window, prior.max_positions)
    stride = config.stride or max(1, window - window // 8)
    if stride >= window:
        raise ValueError(f"stride ({stride}) must be smaller than window ({window})")
    return window, stride


def context_id(prior: Prior, config: ScoreConfig) -> int | None:
    """The token prepended as left context: the prior's own choice ("auto"), none ("none": the official
    code's conditioning, the first token unscored and kept), or the token or id `config.context_token`."""
    choice = config.context_token
    if choice == "auto":
        return prior.context_id
    if choice == "none":
        return None
    key = ("context", choice)
    if key not in prior.cache:
        prior.cache[key] = context_token_id(prior.tokenizer, choice)
    return prior.cache[key]


def tokenize(prior: Prior, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Token ids and character offsets of each text (no special tokens added)."""
    if not texts:
        return []
    enc = prior.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for text, ids, offs in zip(texts, enc["input_ids"], enc["offset_mapping"], strict=True):
        ids_np = np.asarray(ids, dtype=np.int32)
        offs_np = np.asarray(offs, dtype=np.int32).reshape(-1, 2)
        _restore_trimmed_offsets(text, ids_np, offs_np, prior.piece)
        out.append((ids_np, offs_np))
    return out


def _restore_trimmed_offsets(text: str, ids: np.ndarray, offs: np.ndarray, piece) -> None:
    """Tokenizers with `trim_offsets` leave out a token's leading whitespace; give it back when the token's
    decoded text is exactly the extended span (so edits replace the whole token, space included)."""
    if len(ids) < 2:
        return
    for i in np.nonzero(offs[1:, 0] > offs[:-1, 1])[0] + 1:
        start = offs[i - 1, 1]
        if piece(int(ids[i])) == text[start : offs[i, 1]]:
            offs[i, 0] = start


PAD_SHARE = 1 / 16  # a row joins a batch only if padding it to the batch's width adds at most this share


def _batches(segments: list[_Segment], budget: int) -> list[list[_Segment]]:
    """Length-sorted (longest first) batches whose padded size rows * max_len stays within the budget and
    whose rows are at least (1 - PAD_SHARE) of the batch's width: pad positions cost a full forward each
    (a 921- and a 471-token row padded to 2 x 921 did 25 % more work than the two alone; fp32 scoring on
    mixed-length documents ran 0.88x the unpadded speed, `benchmarks/bench_edit.py`)."""
    order = sorted(segments, key=lambda s: (-(s.hi - s.start), s.doc, s.start))
    batches: list[list[_Segment]] = []
    cur: list[_Segment] = []
    cur_len = 0
    for seg in order:
        n = seg.hi - seg.start
        if cur and (max(cur_len, n) * (len(cur) + 1) > budget or n < cur_len * (1 - PAD_SHARE)):
            batches.append(cur)
            cur, cur_len = [], 0
        cur.append(seg)
        cur_len = max(cur_len, n)
    if cur:
        batches.append(cur)
    return batches


def score_texts(
    texts: Sequence[str],
    prior: Prior,
    config: ScoreConfig | None = None,
    k: int | None = None,
    draw: FullVocabDraw | None = None,
) -> list[TokenScores]:
    """Score every token of every text; `k` top candidates per position (default config.store_k)."""
    config = config or ScoreConfig()
    k = config.store_k if k is None else k
    window, stride = resolve_window(prior, config)
    toks = tokenize(prior, texts)
    ctx = context_id(prior, config)
    off = 1 if ctx is not None else 0
    seqs: list[np.ndarray] = []
    results: list[TokenScores] = []
    segments: list[_Segment] = []
    for d, (ids, offsets) in enumerate(toks):
        n = len(ids)
        seq = np.concatenate([[ctx], ids]).astype(np.int64) if off else ids.astype(np.int64)
        seqs.append(seq)
        results.append(
            TokenScores(
                token_ids=ids,
                offsets=offsets,
                logprob=np.full(n, np.nan, dtype=np.float32),
                topk_ids=np.full((n, k), -1, dtype=np.int32),
                topk_logprobs=np.full((n, k), -np.inf, dtype=np.float32),
                entropy=np.full(n, np.nan, dtype=np.float32) if config.entropy else None,
                sampled=np.full(n, -1, dtype=np.int32) if draw is not None else None,
            )
        )
        segments.extend(_Segment(d, *w) for w in plan_windows(len(seq), window, stride))
    uniforms = [draw.uniforms(d, len(ids)) for d, (ids, _) in enumerate(toks)] if draw else None
    if not segments:
        return results
    if prior.head is None:  # the fp32 head copy (bf16 models) is made once per prior
        prior.head = LMHead(prior)
    job = _Job(seqs, results, prior, prior.head, config, k, draw, uniforms, off)
    budget = config.token_budget
    if prior.device.type == "cuda" and budget == _DEFAULT_BUDGET:
        key = ("gpu_budget", window, config.head_chunk)
        budget = prior.cache.get(key) or prior.cache.setdefault(key, gpu_token_budget(prior, config))
    with torch.inference_mode():
        pending = _batches(segments, budget)
        while pending:
            batch = pending.pop()
            if len(batch) > 1 and _padded(batch) > budget:  # sized before an out-of-memory error
                pending.extend(_halves(batch))
                continue
            try:
                _score_batch_compiled(batch, job)
            except torch.cuda.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                torch.cuda.empty_cache()
                budget = max(1, _padded(batch) // 2)  # and keep it for the batches still to come
                log.warning(
                    "CUDA out of memory on %d rows; retrying in halves (budget %d)", len(batch), budget
                )
                pending.extend(_halves(batch))
    return results


_DEFAULT_BUDGET = ScoreConfig.__dataclass_fields__["token_budget"].default
GPU_BUDGET_RANGE = (2048, 65536)


def _padded(batch: list[_Segment]) -> int:
    return len(batch) * max(s.hi - s.start for s in batch)


def _halves(batch: list[_Segment]) -> list[list[_Segment]]:
    half = len(batch) // 2
    return [batch[:half], batch[half:]]


def token_budget_for_memory(
    memory_bytes: int, hidden: int, intermediate: int, heads: int, window: int, vocab: int, head_chunk: int
) -> int:
    """Padded tokens per batch whose activations fit in half of `memory_bytes` (bf16 activations of one
    layer, attention scores as if materialised, the fp32 LM-head chunk), clamped to GPU_BUDGET_RANGE; a
    guess that the out-of-memory back-off corrects."""
    per_token = 2 * (4 * hidden + 3 * intermediate + heads * window)
    head_bytes = 3 * 4 * head_chunk * vocab
    budget = (memory_bytes // 2 - head_bytes) // per_token
    lo, hi = GPU_BUDGET_RANGE
    return int(min(hi, max(lo, budget // 256 * 256)))


def gpu_token_budget(prior: Prior, config: ScoreConfig | None = None) -> int:
    """The default token budget on CUDA, sized from the GPU's memory less the weights and the fp32 head.

    Total rather than free memory: the same GPU model then gives the same batches, so GPU workers and reruns
    batch alike (batch composition moves log-probs in their last bits). An explicit budget is used as given.
    """
    config = config or ScoreConfig()
    _, total = torch.cuda.mem_get_info(prior.device)
    cfg = prior.model.config
    hidden = int(getattr(cfg, "hidden_size", 4096))
    weights = sum(p.numel() * p.element_size() for p in prior.model.parameters())
    room = max(0, total - weights - 4 * prior.vocab_size * hidden)
    return token_budget_for_memory(
        room,
        hidden,
        int(getattr(cfg, "intermediate_size", 4 * hidden) or 4 * hidden),
        int(getattr(cfg, "num_attention_heads", 32)),
        resolve_window(prior, config)[0],
        prior.vocab_size,
        config.head_chunk,
    )


@dataclass(frozen=True)
class _Job:
    """What every batch of one `score_texts` call shares."""

    seqs: list[np.ndarray]  # each document's ids, context-prefixed when `off` is 1
    results: list[TokenScores]  # filled in place, one per document
    prior: Prior
    head: LMHead
    config: ScoreConfig
    k: int  # top candidates kept per position
    draw: FullVocabDraw | None
    uniforms: list[np.ndarray] | None  # the draw's uniforms per document
    off: int  # 1 when a context token is prepended, else 0


def _score_batch_compiled(batch: list[_Segment], job: _Job) -> None:
    """`_score_batch` with compiled decoder layers and head statistics where `config.compile` asks for them;
    a compilation error switches this prior to eager scoring and the batch is scored again."""
    if compiling.use_compile(job.config.compile, job.prior):
        try:
            with compiling.compiled_layers(job.prior):
                return _score_batch(batch, job, True)
        except compiling.CompileError as error:
            compiling.give_up(job.prior, error)
    _score_batch(batch, job, False)


def _score_batch(batch: list[_Segment], job: _Job, fused: bool = False) -> None:
    """Score one batch of segments into `job.results`."""
    prior, head, config, k, seqs, off = job.prior, job.head, job.config, job.k, job.seqs, job.off
    results, draw, uniforms = job.results, job.draw, job.uniforms
    dev = prior.device
    width = max(s.hi - s.start for s in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, docs, tok_idx = [], [], [], []
    for r, seg in enumerate(batch):
        n = seg.hi - seg.start
        ids[r, :n] = torch.from_numpy(seqs[seg.doc][seg.start : seg.hi])
        # hidden state at position j predicts the id at j + 1
        pos = np.arange(seg.lo - 1 - seg.start, seg.hi - 1 - seg.start)
        rows.append(np.full(len(pos), r))
        cols.append(pos)
        docs.append(np.full(len(pos), seg.doc))
        tok_idx.append(np.arange(seg.lo, seg.hi) - off)
    rows_t = torch.from_numpy(np.concatenate(rows)).to(dev)
    cols_t = torch.from_numpy(np.concatenate(cols)).to(dev)
    docs_np = np.concatenate(docs)
    tok_np = np.concatenate(tok_idx)
    ids = ids.to(dev)
    # Rows are right-padded and the model is causal: no real position attends to a pad, so no attention mask
    # is needed, and without one SDPA takes its fused causal kernel instead of materialising a masked
    # [rows, heads, width, width] score tensor. Pad positions' outputs are never read.
    # use_cache=False: a KV cache would copy every layer's keys and values for nothing
    with compiling.body_math(prior):  # bf32: bf16 matmul math in the body only (the head stays exact)
        hidden = prior.model.base_model(input_ids=ids, use_cache=False).last_hidden_state
    hidden = hidden[rows_t, cols_t]  # [N, H]: only the positions that are scored here
    targets = ids[rows_t, cols_t + 1]
    del ids
    for a in range(0, hidden.shape[0], config.head_chunk):
        b = min(a + config.head_chunk, hidden.shape[0])
        lp_t, top_v, top_i = head.stats(hidden[a:b], targets[a:b], k, fused)
        lp = lp_t.cpu().numpy()
        if k:
            top_v, top_i = top_v.cpu().numpy(), top_i.cpu().numpy()
        ent = None
        if config.entropy:
            logits = head.logits(hidden[a:b])
            ent = (torch.logsumexp(logits, -1) - (torch.softmax(logits, -1) * logits).sum(-1)).cpu().numpy()
            del logits
        sampled = None
        if draw is not None:
            u = np.array([uniforms[d][t] for d, t in zip(docs_np[a:b], tok_np[a:b], strict=True)])
            sampled = _draw_full(head, hidden[a:b], lp, targets[a:b], u, draw)
        for j in range(b - a):
            res = results[docs_np[a + j]]
            t = tok_np[a + j]
            res.logprob[t] = lp[j]
            if k:
                res.topk_ids[t] = top_i[j]
                res.topk_logprobs[t] = top_v[j]
            if ent is not None:
                res.entropy[t] = ent[j]
            if sampled is not None:
                res.sampled[t] = sampled[j]


def _draw_full(head: LMHead, hidden, lp, targets, u: np.ndarray, draw: FullVocabDraw) -> np.ndarray:
    """Full-vocabulary resampling of the selected rows of one chunk; -1 elsewhere."""
    out = np.full(len(lp), -1, dtype=np.int32)
    sel = np.nonzero(above(lp, draw.threshold))[0]
    if len(sel) == 0:
        return out
    sel_t = torch.from_numpy(sel).to(hidden.device)
    scaled = head.logits(hidden[sel_t]).double() / draw.beta
    if draw.exclude_original:
        scaled.scatter_(1, targets[sel_t][:, None], float("-inf"))
    cum = torch.softmax(scaled, dim=-1).cumsum(-1)
    u_sel = torch.from_numpy(u[sel]).to(device=hidden.device, dtype=torch.float64)
    # numpy's `choice` convention: first index whose cumulative weight exceeds u * total
    picked = torch.searchsorted(cum, (u_sel * cum[:, -1])[:, None], right=True)[:, 0]
    out[sel] = picked.clamp_(max=cum.shape[1] - 1).cpu().numpy()
    return out
