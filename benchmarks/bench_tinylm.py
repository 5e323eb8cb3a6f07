"""Tiny-LM training speed: today's sequential trainer vs the grid trainer (ensemble), against the roofline.

One run measures, on the quick pre-training shape of `experiment benefit` (its preset: model shape, batch,
sequence length, vocabulary), the tokens/s of
- the sequential trainer (`tinylm.train_rows`: one HF Llama at a time, fp32, AdamW), timed before and after
  the ensemble (the mean of both: the CPU may be shared);
- the grid trainer (`ensemble.train_grid`) on a grid of `--members` runs of that shape (bf16 where the CPU
  has native bf16 matmuls, compiled; the compilation is reported apart and excluded from its rate);
and each one's ratio to its training roofline: FLOPs per token from the model shape (6 x matmul parameters
incl. the tied head, + causal attention) over the GEMM rate of the dtype it uses, measured here in the same run.
Usage:
    python benchmarks/bench_tinylm.py [--tokens 32768] [--members 25] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from toedit.experiments.benefit import BENEFIT_QUICK, BenefitConfig, pretrain_config
from toedit.experiments.ensemble import MAX_MEMBERS, Member, resolve_precision, train_grid
from toedit.experiments.tinylm import TrainConfig, train_rows


def train_flops_per_token(c: TrainConfig, vocab: int) -> float:
    """Training FLOPs per token: 6 x matmul parameters (decoder + tied head) + causal attention (6 L T H)."""
    matmul = c.layers * (4 * c.hidden**2 + 3 * c.hidden * c.intermediate) + vocab * c.hidden
    return 6.0 * matmul + 6.0 * c.layers * c.seq_len * c.hidden


def gemm_rate(dtype: torch.dtype, n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matrix product in `dtype` (the best of `repeats`)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def sequential(configs: list[TrainConfig], rows: torch.Tensor, vocab: int) -> float:
    """tokens/s of `train_rows` over `configs`, one after another."""
    tokens, seconds = 0, 0.0
    for c in configs:
        _, stats = train_rows(rows, c, vocab)
        tokens += stats["train_tokens"]
        seconds += stats["seconds"]
    return tokens / seconds


def grid_tokens_per_s(res: list, config: TrainConfig) -> tuple[float, float]:
    """(tokens/s after each ensemble's first step, seconds of all first steps) of a `train_grid` result."""
    chunks = [res[i][1] for i in range(0, len(res), res[0][1]["members"])]  # one stats per ensemble trained
    later = [(st["steps"] - 1) * config.batch_size * config.seq_len * st["members"] for st in chunks]
    tps = sum(later) / sum(n / st["later_tokens_per_s"] for n, st in zip(later, chunks, strict=True))
    return tps, sum(st["first_step_seconds"] for st in chunks)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
    except OSError:
        import platform

        return platform.processor() or "?"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--tokens", type=int, default=65_536, help="training tokens per run (quick preset: 262,144)"
    )
    ap.add_argument(
        "--members", type=int, default=25, help="runs in the grid (quick pretrain: 5 arms x 5 seeds)"
    )
    ap.add_argument("--sequential-runs", type=int, default=1, help="runs timed before and after the ensemble")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: leave as is)")
    ap.add_argument("--precision", default="auto", help="grid trainer precision: auto | float32 | bfloat16")
    ap.add_argument("--max-members", type=int, default=MAX_MEMBERS, help="members per ensemble (0: all)")
    ap.add_argument("--no-compile", action="store_true", help="the grid trainer without torch.compile")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = BenefitConfig(**BENEFIT_QUICK)
    vocab = quick.pt_vocab
    base = pretrain_config(quick, 0)
    base.tokens, base.precision, base.device = args.tokens, args.precision, "cpu"
    configs = [TrainConfig(**{**base.__dict__, "seed": s}) for s in range(args.members)]
    rows = torch.randint(vocab, (512, base.seq_len), generator=torch.Generator().manual_seed(0))
    flops = train_flops_per_token(base, vocab)
    dtype = resolve_precision(args.precision, torch.device("cpu"))
    cpu = cpu_name()
    print(f"CPU: {cpu}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(
        f"shape (benefit --quick pretrain): hidden {base.hidden}, layers {base.layers}, heads {base.heads}, "
        f"MLP {base.intermediate}, vocab {vocab}, batch {base.batch_size} x {base.seq_len}; "
        f"{base.steps} steps ({base.steps * base.batch_size * base.seq_len:,} tokens) per run; "
        f"{flops / 1e6:.2f} MFLOP per training token"
    )
    rates = {torch.float32: [gemm_rate(torch.float32)], dtype: [gemm_rate(dtype)]}
    seq = [sequential(configs[: args.sequential_runs], rows, vocab)]
    t0 = time.perf_counter()
    members = [Member(rows, c) for c in configs]
    res = train_grid(members, vocab, max_members=args.max_members, compile=not args.no_compile)
    wall = time.perf_counter() - t0
    stats = res[0][1]
    seq.append(sequential(configs[-args.sequential_runs :], rows, vocab))
    for d in rates:
        rates[d].append(gemm_rate(d))
    fp32_rate, grid_rate = max(rates[torch.float32]), max(rates[dtype])
    seq_tps = statistics.mean(seq)
    ens_tps, first_s = grid_tokens_per_s(res, base)
    seq_roof = fp32_rate / flops
    ens_roof = grid_rate / flops
    name = stats["precision"]
    print(f"GEMM 1024^3: float32 {fp32_rate / 1e9:.0f} GFLOP/s, {name} {grid_rate / 1e9:.0f} GFLOP/s")
    print(
        f"sequential trainer (fp32, HF Llama, one run at a time): {seq_tps:8.0f} tokens/s "
        f"(before {seq[0]:.0f}, after {seq[1]:.0f}) = {seq_tps / seq_roof:.2f} of the fp32 roofline "
        f"({seq_roof:.0f} tokens/s)"
    )
    print(
        f"grid trainer first steps (compilation {'on' if stats['compiled'] else 'off'}): "
        f"{first_s:.1f} s in all; whole grid {wall:.0f} s wall "
        f"({args.members * stats['train_tokens'] / wall:.0f} tokens/s with the first step)"
    )
    print(
        f"ensemble ({args.members} members, {stats['members']} per ensemble, {name}): {ens_tps:8.0f} tokens/s = {ens_tps / ens_roof:.2f} of the "
        f"{name} roofline ({ens_roof:.0f} tokens/s), {ens_tps / seq_tps:.1f}x the sequential trainer"
    )
    return {"sequential": seq_tps, "grid": ens_tps, "ratio": ens_tps / seq_tps, "members": stats["members"]}


if __name__ == "__main__":
    main()
