"""The grid trainer: tiny Llamas of one shape trained together as an ensemble.

The runs of a grid (arms x seeds, shares x seeds, chains x seeds) share a shape; their weights are stacked
([members, ...]) and every matrix product is one batched matmul over all members. Each member keeps its own
initialisation (the `make_model` of its seed), data order, AdamW state, gradient clipping and learning-rate
schedule: member e's gradient is exactly the gradient of its own loss (the losses are summed, never mixed), so
in float32 a member follows the run `tinylm.train_rows` makes alone up to summation order. In bfloat16 the
matmuls run in bf16 (autocast) on fp32 master weights. Trained members come back as ordinary Llama models.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError
from .tinylm import PRECISIONS, TrainConfig, data_order, lr_curve, make_model, resolve_device, train_stats

BETAS = (0.9, 0.95)
EPS = 1e-8
COMPILE_TOKENS = 2_000_000
# members per ensemble: on a 2-core Zen 4 (shared), 25 members in chunks of 5 trained 9.7K and 15.2K tokens/s vs
# 8.5K and 9.3K as one ensemble (two alternating repeats, one process): smaller working sets, same GEMM shapes
MAX_MEMBERS = 5


@dataclass
class Member:
    """One run of a grid: packed rows (-1 = padding), its config (seed, lr, budget) and optionally the row
    order (`steps * batch_size` indices; default `data_order(len(rows), ..., config.seed)`) and initial model."""

    rows: torch.Tensor
    config: TrainConfig
    order: np.ndarray | torch.Tensor | None = None
    model: torch.nn.Module | None = None


def shape_key(config: TrainConfig) -> tuple:
    """Runs with equal keys can train in one ensemble."""
    c = config
    return (
        (c.hidden, c.layers, c.heads, c.intermediate, c.seq_len, c.batch_size),
        (c.steps, c.warmup, c.device, c.precision),
    )


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 on CUDA and on CPUs with native bf16 matmuls (AMX / AVX512-BF16), else fp32."""
    from ..prior import auto_dtype

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    name = auto_dtype(device) if precision == "auto" else precision
    return torch.bfloat16 if name == "bfloat16" else torch.float32


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama's RMSNorm (in fp32), per-member weights `w` [E, H] on x [E, N, H]."""
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w[:, None, :] * xf.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sdpa: bool) -> torch.Tensor:
    """Causal attention: torch's fused kernel, or explicit matmuls + softmax (fp32) for short sequences."""
    if sdpa:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[-2]
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    probs = scores.masked_fill(mask, float("-inf")).softmax(-1)
    return torch.matmul(probs.to(v.dtype), v)


def ce_grad(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy (in fp32) of logits [N, V] at target [N] (-1 = ignored) and its gradient with respect
    to the logits, in the logits' dtype."""
    x = logits.float()
    lse = torch.logsumexp(x, -1, keepdim=True)
    keep = target >= 0
    t = target.clamp(min=0)[:, None]
    count = keep.sum().clamp(min=1)
    loss = ((lse - x.gather(1, t))[:, 0] * keep).sum() / count
    prob = (x - lse).exp()
    hot = torch.arange(x.shape[1], device=x.device)[None] == t
    grad = torch.where(hot, prob - 1, prob) * (keep / count)[:, None]
    return loss, grad.to(logits.dtype)


class _HeadLoss(torch.autograd.Function):
    """The tied head and the loss, member by member, with the gradients computed in the forward pass (the
    loss is linear in its output gradient): the [E, N, V] logits are never stored, and the largest temporary
    is one member's logits (large buffers cost page faults on every allocation)."""

    @staticmethod
    def forward(ctx, h, w, target, dtype, ce):
        with torch.autocast(h.device.type, enabled=False):
            hc, wc = h.to(dtype), w.to(dtype)
            dh, dw = torch.empty_like(hc), torch.empty_like(wc)
            losses = []
            for e in range(h.shape[0]):
                loss, grad = ce(torch.mm(hc[e], wc[e].T), target[e])
                torch.mm(grad, wc[e], out=dh[e])
                torch.mm(grad.T, hc[e], out=dw[e])
                losses.append(loss)
        ctx.save_for_backward(dh, dw)
        ctx.dtypes = h.dtype, w.dtype
        return torch.stack(losses)

    @staticmethod
    def backward(ctx, grad):
        dh, dw = ctx.saved_tensors
        g = grad.float().view(-1, 1, 1)
        return (dh.float() * g).to(ctx.dtypes[0]), (dw.float() * g).to(ctx.dtypes[1]), None, None, None


def head_loss(
    h: torch.Tensor, embed: torch.Tensor, ids: torch.Tensor, dtype: torch.dtype, ce
) -> torch.Tensor:
    """Each member's mean next-token loss [E] from its final hidden states h [E, B * T, H] and tied embedding
    [E, V, H] on ids [E, B, T] (-1 = padding); `ce`: `ce_grad` or a compiled copy of it."""
    E, B, T = ids.shape
    target = F.pad(ids[:, :, 1:], (0, 1), value=-1).reshape(E, B * T)
    return _HeadLoss.apply(h, embed, target, dtype, ce)


class Ensemble(torch.nn.Module):
    """Stacked weights of E Llama models of one shape (tied embeddings); `forward` returns each member's mean
    next-token loss [E] on ids [E, B, T] (-1 = padding)."""

    def __init__(self, models: Sequence[torch.nn.Module]):
        super().__init__()
        cfg = models[0].config
        self.heads = cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        self.n_layers = cfg.num_hidden_layers
        if cfg.num_key_value_heads != self.heads or not cfg.tie_word_embeddings:
            raise ConfigError("the ensemble needs tied embeddings and as many key/value heads as heads")

        def stack(fn) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.stack([fn(m).detach().float() for m in models]).contiguous())

        P = torch.nn.Parameter
        self.embed = stack(lambda m: m.model.embed_tokens.weight)
        self.norm = stack(lambda m: m.model.norm.weight)
        self.ln1, self.ln2, self.wqkv, self.wo, self.wgu, self.wd = (
            torch.nn.ParameterList() for _ in range(6)
        )
        for i in range(self.n_layers):

            def lay(m, i=i):
                return m.model.layers[i]

            a = [lay(m).self_attn for m in models]
            mlp = [lay(m).mlp for m in models]
            self.ln1.append(stack(lambda m: lay(m).input_layernorm.weight))
            self.ln2.append(stack(lambda m: lay(m).post_attention_layernorm.weight))
            self.wqkv.append(
                P(torch.stack([torch.cat([x.q_proj.weight, x.k_proj.weight, x.v_proj.weight]).T for x in a]))
            )
            self.wo.append(P(torch.stack([x.o_proj.weight.T for x in a])))
            self.wgu.append(
                P(torch.stack([torch.cat([x.gate_proj.weight, x.up_proj.weight]).T for x in mlp]))
            )
            self.wd.append(P(torch.stack([x.down_proj.weight.T for x in mlp])))
        for p in self.parameters():
            p.data = p.data.detach().float().contiguous()
        T = cfg.max_position_embeddings
        probe = torch.zeros(1, T, cfg.hidden_size)
        cos, sin = models[0].model.rotary_emb(probe, torch.arange(T)[None])
        self.register_buffer("cos", cos[0].float(), persistent=False)
        self.register_buffer("sin", sin[0].float(), persistent=False)
        self.sdpa = False  # explicit attention: compiled, it fuses (measured faster than SDPA at T=128)

    @property
    def members(self) -> int:
        return self.embed.shape[0]

    def matrices(self) -> list[torch.nn.Parameter]:
        """Parameters that are matrices in each member (AdamW's weight-decay group)."""
        return [self.embed, *self.wqkv, *self.wo, *self.wgu, *self.wd]

    def vectors(self) -> list[torch.nn.Parameter]:
        return [self.norm, *self.ln1, *self.ln2]

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """The final normed hidden states [E, B * T, H] of ids [E, B, T] (-1 = padding)."""
        E, B, T = ids.shape
        V, H = self.embed.shape[1:]
        nh, hd = self.heads, H // self.heads
        flat = ids.clamp(min=0) + (torch.arange(E, device=ids.device) * V)[:, None, None]
        x = F.embedding(flat.view(E, B * T), self.embed.view(E * V, H))  # [E, BT, H]
        cos, sin = self.cos[:T], self.sin[:T]
        for i in range(self.n_layers):
            h = _rms(x, self.ln1[i], self.eps)
            qkv = torch.bmm(h, self.wqkv[i])
            qkv = qkv.view(E * B, T, 3, nh, hd).permute(2, 0, 3, 1, 4)  # [3, EB, nh, T, hd]
            q, k, v = qkv[0], qkv[1], qkv[2]
            q = q * cos.to(q.dtype) + _rotate_half(q) * sin.to(q.dtype)
            k = k * cos.to(k.dtype) + _rotate_half(k) * sin.to(k.dtype)
            att = _attention(q, k, v, self.sdpa)
            att = att.transpose(1, 2).reshape(E, B * T, H)
            x = x + torch.bmm(att, self.wo[i])
            h = _rms(x, self.ln2[i], self.eps)
            gate, up = torch.bmm(h, self.wgu[i]).chunk(2, dim=-1)
            x = x + torch.bmm(F.silu(gate) * up, self.wd[i])
        return _rms(x, self.norm, self.eps)

    def forward(self, ids: torch.Tensor, dtype: torch.dtype = torch.float32, ce=None) -> torch.Tensor:
        """Each member's mean next-token loss [E] on ids [E, B, T] (-1 = padding), the tied head's matmuls in
        `dtype`; `ce`: `ce_grad` or a compiled copy of it."""
        return head_loss(self.hidden(ids), self.embed, ids, dtype, ce or ce_grad)

    def unstack(self, models: Sequence[torch.nn.Module]) -> None:
        """Copy member e's weights into `models[e]` (Llama modules of the same shape)."""
        H = self.embed.shape[2]
        with torch.no_grad():
            for e, m in enumerate(models):
                m.model.embed_tokens.weight.copy_(self.embed[e])
                m.model.norm.weight.copy_(self.norm[e])
                for i, layer in enumerate(m.model.layers):
                    a, mlp = layer.self_attn, layer.mlp
                    q, k, v = self.wqkv[i][e].T.split(H)
                    a.q_proj.weight.copy_(q)
                    a.k_proj.weight.copy_(k)
                    a.v_proj.weight.copy_(v)
                    a.o_proj.weight.copy_(self.wo[i][e].T)
                    g, u = self.wgu[i][e].T.chunk(2)
                    mlp.gate_proj.weight.copy_(g)
                    mlp.up_proj.weight.copy_(u)
                    mlp.down_proj.weight.copy_(self.wd[i][e].T)
                    layer.input_layernorm.weight.copy_(self.ln1[i][e])
                    layer.post_attention_layernorm.weight.copy_(self.ln2[i][e])


class StackedAdamW:
    """torch's AdamW (betas 0.9/0.95, eps 1e-8) on stacked parameters, per-member lr [E] and grad clipping;
    `compile`: the whole update (clipping + AdamW) as one compiled, fused graph."""

    def __init__(
        self, groups: Sequence[tuple[Sequence[torch.nn.Parameter], torch.Tensor]], compile: bool = False
    ):
        """`groups`: (parameters, per-member weight decay [E])."""
        self.groups = [(list(ps), wd) for ps, wd in groups]
        self.state = {id(p): (torch.zeros_like(p), torch.zeros_like(p)) for ps, _ in self.groups for p in ps}
        self.decay = [wd for ps, wd in self.groups for _ in ps]
        self.t = 0
        self._update = torch.compile(_clip_adamw) if compile else _clip_adamw

    def params(self) -> list[torch.nn.Parameter]:
        return [p for ps, _ in self.groups for p in ps]

    def step(self, lr: torch.Tensor, max_norm: float = 1.0) -> torch.Tensor:
        """Per-member global gradient-norm clipping (`clip_grad_norm_` of each member alone), then AdamW with
        per-member `lr` [E]; returns the gradient norms."""
        self.t += 1
        b1, b2 = BETAS
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        ps = self.params()
        m, v = zip(*(self.state[id(p)] for p in ps), strict=True)
        return self._update(
            ps, [p.grad for p in ps], m, v, self.decay, lr, lr / bc1, lr.new_tensor(math.sqrt(bc2)), max_norm
        )


@torch.no_grad()
def _clip_adamw(ps, grads, ms, vs, decay, lr, step_size, bc2_sqrt, max_norm: float) -> torch.Tensor:
    """`StackedAdamW.step`'s arithmetic (torch's single-tensor AdamW after `clip_grad_norm_`), per member."""
    b1, b2 = BETAS
    norm = sum(g.pow(2).flatten(1).sum(1) for g in grads).sqrt()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for p, g, m, v, wd in zip(ps, grads, ms, vs, decay, strict=True):
        shape = (-1, *[1] * (p.ndim - 1))
        g = g * coef.view(shape)
        p.mul_((1 - lr * wd).view(shape))
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / bc2_sqrt).add_(EPS)
        p.sub_(step_size.view(shape) * m / denom)
    return norm


def _batches(members: Sequence[Member], steps: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All members' rows concatenated and the global row index of every (member, step, slot)."""
    offsets, orders = 0, []
    for m in members:
        need = steps * batch
        order = m.order if m.order is not None else data_order(len(m.rows), need, m.config.seed)
        order = torch.as_tensor(np.asarray(order), dtype=torch.long)
        if len(order) < need:
            raise ConfigError(f"a member's row order has {len(order)} rows, its {steps} steps need {need}")
        orders.append(order[:need].view(steps, batch) + offsets)
        offsets += len(m.rows)
    return torch.cat([m.rows for m in members]), torch.stack(orders)


def train_ensemble(
    members: Sequence[Member],
    vocab_size: int,
    decay_vectors: bool = False,
    compile: bool | None = None,
) -> list[tuple[torch.nn.Module, dict[str, Any]]]:
    """Train same-shape `members` together on their configs' device and precision; returns (trained Llama
    model, stats like `train_rows`) per member.

    `decay_vectors`: weight decay on the norms too (benefit's trainer decays every parameter). `compile`:
    torch.compile the forward (None: when the ensemble trains at least `COMPILE_TOKENS` tokens in all, where
    the compilation, ~15-130 s on a busy 2-core CPU, pays for itself; `train_grid` decides per shape group).
    """
    if not members:
        return []
    keys = {shape_key(m.config) for m in members}
    if len(keys) > 1:
        raise ConfigError(f"an ensemble needs one shape, got {len(keys)}: {sorted(keys)}")
    c0 = members[0].config
    for m in members:
        m.config.validate()
        if m.rows.shape[1] != c0.seq_len:
            raise ConfigError(f"rows are {m.rows.shape[1]} tokens wide, the model's seq_len is {c0.seq_len}")
    dev = resolve_device(c0.device)
    dtype = resolve_precision(c0.precision, dev)
    models = [m.model if m.model is not None else make_model(m.config, vocab_size) for m in members]
    ens = Ensemble(models).to(dev)
    steps, batch = c0.steps, c0.batch_size
    rows, index = _batches(members, steps, batch)
    rows, index = rows.to(dev), index.to(dev)
    lrs = torch.tensor([lr_curve(m.config) for m in members], dtype=torch.float32, device=dev)  # [E, steps]
    wd = torch.tensor([m.config.weight_decay for m in members], dtype=torch.float32, device=dev)
    groups = [(ens.matrices(), wd), (ens.vectors(), wd if decay_vectors else torch.zeros_like(wd))]
    if compile is None:
        compile = len(members) * steps * batch * c0.seq_len >= COMPILE_TOKENS
    opt = StackedAdamW(groups, compile=compile)
    hidden = torch.compile(ens.hidden) if compile else ens.hidden
    ce = torch.compile(ce_grad) if compile else ce_grad
    autocast = torch.autocast(dev.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    losses = torch.zeros(len(members), steps, dtype=torch.float32)
    t0 = time.perf_counter()
    for step in range(steps):
        ids = rows[index[:, step]]  # [E, B, T]
        with autocast:
            h = hidden(ids)
        member_loss = head_loss(h, ens.embed, ids, dtype, ce)
        for p in opt.params():
            p.grad = None
        member_loss.sum().backward()
        opt.step(lrs[:, step])
        losses[:, step] = member_loss.detach().float().cpu()
        if step == 0:
            first = time.perf_counter() - t0  # includes compilation, if any
    seconds = time.perf_counter() - t0
    ens.cpu()
    ens.unstack(models)
    out = []
    for e, (m, model) in enumerate(zip(members, models, strict=True)):
        model.eval()
        stats = train_stats(losses[e].tolist(), m.config, len(m.rows), model, seconds)
        stats.update(
            {
                "members": len(members),
                "precision": str(dtype).removeprefix("torch."),
                "compiled": bool(compile),
                "device": dev.type,
                "first_step_seconds": round(first, 3),
                "member_seconds": round(seconds / len(members), 3),
                "later_tokens_per_s": round(
                    (steps - 1) * batch * c0.seq_len * len(members) / max(seconds - first, 1e-9), 1
                ),
            }
        )
        stats["tokens_per_s"] = round(stats["tokens_per_s"] * len(members), 1)  # the grid's rate
        out.append((model, stats))
    return out


def train_grid(
    members: Sequence[Member], vocab_size: int, max_members: int = MAX_MEMBERS, **kwargs: Any
) -> list[tuple[torch.nn.Module, dict[str, Any]]]:
    """`train_ensemble` on each group of same-shape members (at most `max_members` per ensemble; 0: all);
    results in the order of `members`."""
    groups: dict[tuple, list[int]] = {}
    for i, m in enumerate(members):
        groups.setdefault(shape_key(m.config), []).append(i)
    out: list[Any] = [None] * len(members)
    for idx in groups.values():
        size = max_members or len(idx)
        c = members[idx[0]].config  # compiled once per shape: the whole group pays for it
        auto = len(idx) * c.steps * c.batch_size * c.seq_len >= COMPILE_TOKENS
        opts = {**kwargs, "compile": auto if kwargs.get("compile") is None else kwargs["compile"]}
        for s in range(0, len(idx), size):
            chunk = idx[s : s + size]
            trained = train_ensemble([members[i] for i in chunk], vocab_size, **opts)
            for i, res in zip(chunk, trained, strict=True):
                out[i] = res
    return out
