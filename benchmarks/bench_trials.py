"""Trials (not a test, not part of the main benchmark): variants of the bf16 scoring path and of the body's
precision, each timed (best of --repeats, interleaved) with its agreement with fp32 on the bench's corpus.

    python benchmarks/bench_trials.py bf16 --tokens 4000 --repeats 2 --threads 1   # head, budgets, attention
    python benchmarks/bench_trials.py bf16 --compile                               # + a torch.compile'd body
    python benchmarks/bench_trials.py body --tokens 6000                           # which rounding moves p > 0.99
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_edit import corpus, fmt_agreement, make_prior  # noqa: E402  (the bench's corpus and priors)

from toedit import ScoreConfig, lmhead, score_texts  # noqa: E402
from toedit.agreement import compare_scorings  # noqa: E402
from toedit.scoring import tokenize  # noqa: E402


class _SplitLinear(torch.nn.Module):
    """Trial body linear: W = W_hi + W_lo in bf16 (and x = x_hi + x_lo with `split_x`), products summed in
    fp32: near-fp32 inputs, but each bf16 GEMM still rounds its output to bf16 on CPU."""

    def __init__(self, lin: torch.nn.Linear, split_x: bool):
        super().__init__()
        w = lin.weight.detach().float()
        self.hi = w.bfloat16()
        self.lo = (w - self.hi.float()).bfloat16()
        self.bias, self.split_x = lin.bias, split_x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xh = x.to(torch.bfloat16)
        y = torch.nn.functional.linear(xh, self.hi).float() + torch.nn.functional.linear(xh, self.lo).float()
        if self.split_x:
            y = y + torch.nn.functional.linear((x - xh.float()).to(torch.bfloat16), self.hi).float()
        return y if self.bias is None else y + self.bias


class _Bf16Linear(torch.nn.Module):
    """Trial body linear: bf16 weights and matmul inside an otherwise fp32 model."""

    def __init__(self, lin: torch.nn.Linear):
        super().__init__()
        self.weight = lin.weight.detach().bfloat16()
        self.bias = lin.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.linear(x.to(torch.bfloat16), self.weight).to(x.dtype)
        return y if self.bias is None else y + self.bias


def _swap_linears(prior, make):
    for mod in list(prior.model.base_model.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(mod, name, make(child))
    return prior


def body_variants(args) -> None:
    """Trials of the body's precision (fp32 head throughout): which rounding moves the p > 0.99 selection."""
    ref = make_prior("float32")
    texts = corpus(args.tokens, ref)
    paths = {
        "fp32": ref,
        "bf16 (whole body)": make_prior("bfloat16"),
        "bf16 linears, rest fp32": _swap_linears(make_prior("float32"), _Bf16Linear),
        "bf16 hi+lo weights": _swap_linears(make_prior("float32"), lambda lin: _SplitLinear(lin, False)),
        "bf16x3 (hi+lo weights, x)": _swap_linears(
            make_prior("float32"), lambda lin: _SplitLinear(lin, True)
        ),
    }
    out = {k: score_texts(texts, p) for k, p in paths.items()}
    best: dict[str, float] = defaultdict(lambda: float("inf"))
    for _ in range(args.repeats):
        for k, p in paths.items():
            t0 = time.perf_counter()
            score_texts(texts, p)
            best[k] = min(best[k], time.perf_counter() - t0)
    n = sum(len(s) for s in out["fp32"])
    print(f"body precision trials, {n} tokens, best of {args.repeats}:")
    for k in paths:
        print(f"  {k:28s} {n / best[k]:6.0f} tok/s  x{best['fp32'] / best[k]:.2f} vs fp32  ", end="")
        print(fmt_agreement(compare_scorings(out["fp32"], out[k])))


def bf16_variants(args) -> None:
    """Step-5 trials: bf16 path variants, each timed (best of --repeats, interleaved) with its agreement."""
    ref = make_prior("float32")
    bf16 = make_prior("bfloat16")
    texts = corpus(args.tokens, ref)
    n_tokens = sum(len(t[0]) for t in tokenize(ref, texts))
    ref_scores = score_texts(texts, ref)
    body = bf16.model.model

    def setup(dtype=torch.float32, vocab_slice=None, attn="sdpa", compiled=None):
        def apply() -> None:
            bf16.head = lmhead.LMHead(bf16, dtype, vocab_slice)
            bf16.model.set_attn_implementation(attn)
            bf16.model.model = compiled if compiled is not None else body

        return apply

    trials = {
        "head fp32, vocab slices 4096 (before)": (setup(), ScoreConfig()),
        "head fp32, whole vocab": (setup(vocab_slice=1 << 30), ScoreConfig()),
        "head bf16, vocab slices 4096": (setup(torch.bfloat16), ScoreConfig()),
        "head bf16, vocab slices 16384": (setup(torch.bfloat16, 16384), ScoreConfig()),
        "head bf16, whole vocab": (setup(torch.bfloat16, 1 << 30), ScoreConfig()),
        "head fp32, budget 4096": (setup(), ScoreConfig(token_budget=4096)),
        "head fp32, budget 1024": (setup(), ScoreConfig(token_budget=1024)),
        "head fp32, head_chunk 2048": (setup(), ScoreConfig(head_chunk=2048)),
        "head fp32, head_chunk 128": (setup(), ScoreConfig(head_chunk=128)),
        "head fp32, eager attention": (setup(attn="eager"), ScoreConfig()),
    }
    if args.compile:
        t0 = time.perf_counter()
        compiled = torch.compile(body, dynamic=True)
        bf16.model.model = compiled
        score_texts(texts, bf16)  # compiles (every new shape class may recompile later: timed runs show it)
        print(f"torch.compile: first scoring pass incl. compilation {time.perf_counter() - t0:.1f} s")
        trials["head fp32, torch.compile(body)"] = (setup(compiled=compiled), ScoreConfig())
    best: dict[str, float] = defaultdict(lambda: float("inf"))
    agreements = {}
    for name, (apply, cfg) in trials.items():
        apply()
        agreements[name] = compare_scorings(ref_scores, score_texts(texts, bf16, cfg))
    for _ in range(args.repeats):
        for name, (apply, cfg) in trials.items():
            apply()
            t0 = time.perf_counter()
            score_texts(texts, bf16, cfg)
            best[name] = min(best[name], time.perf_counter() - t0)
    base = best["head fp32, vocab slices 4096 (before)"]
    print(f"bf16 scoring variants, {n_tokens} tokens, best of {args.repeats}:")
    for name in trials:
        print(
            f"  {name:40s} {n_tokens / best[name]:6.0f} tok/s  x{base / best[name]:.2f}  "
            f"{fmt_agreement(agreements[name])}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trial", choices=("bf16", "body"), help="bf16: bf16 path variants; body: body precision")
    ap.add_argument("--tokens", type=int, default=16_000, help="corpus size (tokens)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (variants interleaved; best kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    ap.add_argument("--compile", action="store_true", help="bf16: also a torch.compile'd body")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    (bf16_variants if args.trial == "bf16" else body_variants)(args)


if __name__ == "__main__":
    main()
