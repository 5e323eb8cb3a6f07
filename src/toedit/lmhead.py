"""The LM head of scoring: exact log-softmax statistics (target log-prob, top-k, logsumexp) over vocabulary
slices, so no [positions, vocab] block streams through memory; bf16 slices are refined in fp32 where the
probability mass is (`LMHead`). `slice_stats` is the per-slice kernel, compiled where `--compile` asks
(`_fused_slice_stats`)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .prior import Prior


class LMHead:
    """The LM head, with the log-softmax statistics computed over vocabulary slices on CPU: a
    [positions, slice] block stays in cache, where a full [positions, vocab] block would stream through
    memory. logsumexp and top-k merge exactly; they and the threshold test always run in fp32.

    The slices' matmul runs in `dtype` (default `head_dtype(prior)`). In fp32 the log-probs are exact. In bf16
    (CPU bf16 matmuls round their output to bf16) the logits of the target and of the REFINE_K best candidates
    are then recomputed in fp32 and the logsumexp corrected with them (`_refine`): the stored log-probs, the
    top-k and the threshold test use fp32 logits for every token that carries probability mass; only the
    rest of the vocabulary enters the normaliser with bf16 rounding (an error below its probability mass x the
    bf16 error of a logit, about 2^-7 x sum |h w|; tested). `logits()` (entropy, full-vocabulary draws) is
    always fp32."""

    CPU_VOCAB_SLICE = 4096
    REFINE_K = 8

    def __init__(self, prior: Prior, dtype: torch.dtype | None = None, vocab_slice: int | None = None):
        head = prior.model.get_output_embeddings()
        self.dtype = dtype or head_dtype(prior)
        self.exact = head.weight.detach().float()
        self.weight = self.exact if self.dtype == torch.float32 else head.weight.detach().to(self.dtype)
        bias = getattr(head, "bias", None)
        self.bias = None if bias is None else bias.detach().float()
        self.softcap = getattr(prior.model.config, "final_logit_softcapping", None)
        vocab = self.weight.shape[0]
        self.slice = vocab_slice or (vocab if prior.device.type != "cpu" else self.CPU_VOCAB_SLICE)

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.tanh(logits / self.softcap) * self.softcap if self.softcap else logits

    def logits(self, hidden: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """fp32 logits of vocabulary entries lo:hi."""
        bias = None if self.bias is None else self.bias[lo:hi]
        return self._cap(F.linear(hidden.float(), self.exact[lo:hi], bias))

    def _slice_logits(self, hidden: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """The slice's logits in the head's dtype (a bf16 block is converted by the statistics)."""
        if self.dtype == torch.float32:
            return self.logits(hidden, lo, hi)
        bias = None if self.bias is None else self.bias[lo:hi].to(self.dtype)
        out = F.linear(hidden.to(self.dtype), self.weight[lo:hi], bias)
        return self._cap(out.float()) if self.softcap else out

    def stats(self, hidden: torch.Tensor, targets: torch.Tensor, k: int, fused: bool = False):
        """(log-prob of each target, top-k log-probs, top-k ids) for a block of positions. `fused`: the slice
        statistics of tiled slices run compiled (`_fused_slice_stats`; same quantities)."""
        vocab = self.weight.shape[0]
        kk = k if self.dtype == torch.float32 else max(k, self.REFINE_K)
        lse = actual = None
        top_v: list[torch.Tensor] = []
        top_i: list[torch.Tensor] = []
        rows = torch.arange(len(targets), device=targets.device)
        for lo in range(0, vocab, self.slice):
            hi = min(lo + self.slice, vocab)
            logits = self._slice_logits(hidden, lo, hi)
            inside = (targets >= lo) & (targets < hi)
            picked = logits[rows, (targets - lo).clamp(0, hi - lo - 1)].float()
            actual = torch.where(inside, picked, actual if actual is not None else picked)
            kk_slice = min(kk, hi - lo)
            if fused and tiles(hi - lo, kk_slice):
                part, (v, i) = _fused_slice_stats(logits, kk_slice)
            else:
                part, (v, i) = slice_stats(logits, kk_slice)  # overwrites an fp32 `logits`
            lse = part if lse is None else torch.logaddexp(lse, part)
            if kk:
                top_v.append(v)
                top_i.append(i + lo)
        if kk and len(top_v) > 1:
            v, pos = torch.cat(top_v, 1).topk(kk, dim=-1)
            top_v, top_i = [v], [torch.cat(top_i, 1).gather(1, pos)]
        if self.dtype != torch.float32:
            actual, lse, top_v[0], top_i[0] = self._refine(hidden, targets, actual, lse, top_v[0], top_i[0])
        top = (top_v[0][:, :k] - lse[:, None], top_i[0][:, :k]) if k else (None, None)
        return actual - lse, *top

    def _refine(self, hidden, targets, actual, lse, top_v, top_i):
        """fp32 logits of the target and the candidates; the logsumexp corrected by their change (in fp64)."""
        ids = torch.cat([targets[:, None], top_i], 1)
        approx = torch.cat([actual[:, None], top_v], 1)
        exact = torch.einsum("nh,nsh->ns", hidden.float(), self.exact[ids])
        if self.bias is not None:
            exact = exact + self.bias[ids]
        exact = self._cap(exact)
        once = torch.ones_like(ids, dtype=torch.bool)
        once[:, 1:] = top_i != targets[:, None]  # the target among the candidates counts once
        base = lse.double()[:, None]
        rest = 1.0 - (torch.exp(approx.double() - base) * once).sum(1)  # mass of the tokens not refined
        fixed = (torch.exp(exact.double() - base) * once).sum(1)
        lse = (base[:, 0] + torch.log(rest.clamp(min=0.0) + fixed)).float()
        v, pos = exact[:, 1:].sort(dim=-1, descending=True, stable=True)
        return exact[:, 0], lse, v, top_i.gather(1, pos)


TOPK_BLOCK = 32  # block width of `slice_stats`' top-k filter (fastest of 8-64 on an AVX-512 CPU)


def tiles(width: int, k: int) -> bool:
    """Whether `slice_stats` takes its block top-k filter on a slice of `width` columns (else torch.topk)."""
    return bool(k) and width % TOPK_BLOCK == 0 and width // TOPK_BLOCK >= k


def slice_stats(
    logits: torch.Tensor, k: int, inplace: bool = True
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """logsumexp and the top-k (values, ids) of each row of a [positions, slice] block (computed in fp32; a
    bf16 block is converted).

    Two passes over the block instead of torch.logsumexp's and torch.topk's four: the maxima of blocks of
    TOPK_BLOCK columns give the row maximum (the logsumexp's shift) and, since the k largest values of a row
    lie in the k blocks with the largest maxima, top-k runs on those k blocks only. Same values as
    torch.topk (`tests/test_scoring.py`); among exactly tied logits the id chosen may differ. Blocks that do
    not tile the slice fall back to torch.topk. With `inplace` an fp32 block is overwritten (exp of the
    shifted logits: no second block); `inplace=False` is the form `_fused_slice_stats` compiles.
    """
    x = logits.float()
    n, width = x.shape
    b = TOPK_BLOCK
    tiled = tiles(width, k)
    if tiled:
        block_max = x.view(n, width // b, b).amax(-1)
        m = block_max.amax(-1)
    else:
        m = x.amax(-1)
    if not k:
        top = (None, None)
    elif not tiled:
        top = x.topk(k, dim=-1)
    else:
        _, blocks = block_max.topk(k, dim=-1, sorted=False)
        cols = (blocks[:, :, None] * b + torch.arange(b, device=x.device)).view(n, k * b)
        v, pos = x.gather(1, cols).topk(k, dim=-1)
        top = (v, cols.gather(1, pos))
    shift = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    shifted = x.sub_(shift[:, None]).exp_() if inplace else (x - shift[:, None]).exp()
    return shift + torch.log(shifted.sum(-1)), top


_compiled_stats = None


def _fused_slice_stats(logits: torch.Tensor, k: int):
    """`slice_stats` (not in place) compiled on first use, dynamic in the number of positions: inductor fuses
    the bf16 -> fp32 conversion, the block maxima and the exp-sum into passes over the raw slice."""
    global _compiled_stats
    if _compiled_stats is None:
        _compiled_stats = torch.compile(functools.partial(slice_stats, inplace=False), dynamic=True)
    return _compiled_stats(logits, k)


def head_dtype(prior: Prior) -> torch.dtype:
    """The LM head's slice matmul dtype: bf16 for a bf16 body on CPU (the target and candidates then refined in
    fp32, `LMHead`), else fp32. A plain bf16 head (no refinement) had moved the p > 0.99 selection (IoU with
    fp32 0.964 against 0.982 for an fp32 head, `bench_trials.py bf16`, AMX CPU); on CUDA the fp32 head is
    a small share of the time."""
    if prior.dtype == torch.bfloat16 and prior.device.type == "cpu":
        return torch.bfloat16
    return torch.float32
