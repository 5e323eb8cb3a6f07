"""Edit-engine benchmark (not a test): roofline, scoring vs editing vs a naive baseline, peak memory.

Everything is measured in this one run on this machine: the fp32 GEMM rate gives the model's roofline
tokens/s (exact FLOPs per token for the documents and windows used); then scoring only, a full edit run
(`run_edit`: read JSONL, score, edit, write), and a naive baseline (padded batch, full fp32 logits, a
per-token Python loop over top-k dicts as the official post-processing does). Peak RSS is measured in
child processes for one 100,000-token document and for 10,000 documents.

    python benchmarks/bench_edit.py            # ~12 minutes on 2 cores
    python benchmarks/bench_edit.py --quick    # ~3 minutes, smaller sizes
"""

from __future__ import annotations

import argparse
import json
import os
import pydoc_data.topics
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from toedit import EditConfig, ScoreConfig, load_prior, run_edit, score_texts
from toedit.config import IOConfig, RunConfig
from toedit.scoring import plan_windows, resolve_window, tokenize


def gemm_gflops(n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def flops_per_token(prior, texts: list[str]) -> float:
    """Matmul FLOPs per scored token: 2 x body weights + 2 x LM head + causal attention for these windows."""
    cfg = prior.model.config
    n_params = sum(p.numel() for p in prior.model.base_model.parameters())
    embed = prior.model.get_input_embeddings().weight.numel()
    head = prior.model.get_output_embeddings().weight.numel()
    window, stride = resolve_window(prior, ScoreConfig())
    attended, tokens = 0, 0
    for ids, _ in tokenize(prior, texts):
        for start, lo, hi in plan_windows(len(ids) + 1, window, stride):
            n = hi - start
            attended += n * (n + 1) // 2  # causal: position j attends to j + 1 keys
            tokens += hi - lo
    attn_dim = cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    # QK^T and AV: 2 matmuls x 2 FLOPs per multiply-add, per layer, per attended key (window tokens pay too)
    attention = 4 * cfg.num_hidden_layers * attn_dim * attended / tokens
    return 2 * (n_params - embed) + 2 * head + attention


def corpus(min_tokens: int, prior) -> list[str]:
    texts, total = [], 0
    topics = pydoc_data.topics.topics
    while total < min_tokens:
        for key in sorted(topics):
            texts.append(topics[key])
            total += len(tokenize(prior, [topics[key]])[0][0])
            if total >= min_tokens:
                break
    return texts


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def naive_baseline(prior, texts: list[str], batch: int = 8, k: int = 8, max_len: int = 2048) -> float:
    """What the official post-processing does per token, on top of a padded full-logits forward."""
    rng = np.random.default_rng(0)
    seqs = []
    for ids, _ in tokenize(prior, texts):
        ids = [prior.context_id, *ids.tolist()]
        seqs += [ids[i : i + max_len] for i in range(0, len(ids), max_len)]
    tokens, t0 = 0, time.perf_counter()
    for b in range(0, len(seqs), batch):
        rows = seqs[b : b + batch]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.inference_mode():
            logp = prior.model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        top_v, top_i = logp.topk(k, dim=-1)
        for r, row in enumerate(rows):
            for j in range(1, len(row)):
                cands = dict(zip(top_i[r, j - 1].tolist(), top_v[r, j - 1].tolist(), strict=True))
                actual = row[j]
                cands.setdefault(actual, float(logp[r, j - 1, actual]))
                if np.exp(cands[actual]) > 0.99:
                    w = np.exp(np.array(list(cands.values())) / 1.5)
                    rng.choice(list(cands), p=w / w.sum())
                tokens += 1
        del logp
    return tokens / (time.perf_counter() - t0)


def compare_bf16(tokens: int) -> None:
    """bf16 vs fp32 scoring speed and agreement of the p > 0.99 decisions (bf16 is fast on AMX CPUs)."""
    fp32 = load_prior("default")
    texts = corpus(tokens, fp32)
    out = {}
    for name, prior in (("float32", fp32), ("bfloat16", load_prior("default", dtype="bfloat16"))):
        score_texts(texts[:1], prior)  # warm-up
        t0 = time.perf_counter()
        scores = score_texts(texts, prior)
        lp = np.concatenate([s.logprob for s in scores])
        out[name] = (lp, len(lp) / (time.perf_counter() - t0))
    a, b = out["float32"][0], out["bfloat16"][0]
    print(f"tokens: {len(a)}")
    print(f"fp32_score_tok_s: {out['float32'][1]:.1f}")
    print(f"bf16_score_tok_s: {out['bfloat16'][1]:.1f}")
    print(f"bf16/fp32: {out['bfloat16'][1] / out['float32'][1]:.2f}")
    print(f"mean_abs_logprob_diff: {np.abs(a - b).mean():.4f}")
    print(f"p>0.99_decision_agreement: {((np.exp(a) > 0.99) == (np.exp(b) > 0.99)).mean():.4f}")


def profile(with_compile: bool) -> None:
    """Where one 1 x 2048 window's time goes: transformer body vs LM head (sliced as toedit does, or whole)."""
    from toedit.scoring import _Head

    prior = load_prior("default")
    model = prior.model
    ids = torch.randint(0, prior.vocab_size, (1, 2048), generator=torch.Generator().manual_seed(0))

    def timed(fn, reps: int = 3) -> float:
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps

    with torch.inference_mode():
        body = timed(lambda: model.base_model(input_ids=ids).last_hidden_state)
        hidden = model.base_model(input_ids=ids).last_hidden_state[0]
        targets = ids[0]
        head = _Head(prior)

        def whole() -> None:
            for a in range(0, 2048, 512):
                logits = head.logits(hidden[a : a + 512])
                torch.logsumexp(logits, -1), logits.topk(8, -1)

        sliced = timed(
            lambda: [head.stats(hidden[a : a + 512], targets[a : a + 512], 8) for a in range(0, 2048, 512)]
        )
        print(f"body_s_per_2048: {body:.3f}  ({2048 / body:.0f} tok/s body only)")
        print(f"head_sliced_s_per_2048: {sliced:.3f}")
        print(f"head_whole_vocab_s_per_2048: {timed(whole):.3f}")
        if with_compile:
            t0 = time.perf_counter()
            compiled = torch.compile(model.base_model)
            compiled(input_ids=ids)
            print(f"compile_s: {time.perf_counter() - t0:.1f}")
            fast = timed(lambda: compiled(input_ids=ids).last_hidden_state)
            print(f"compiled_body_s_per_2048: {fast:.3f}  (speed-up {body / fast:.2f}x)")


def child(mode: str, size: int) -> None:
    prior = load_prior("default")
    texts = corpus(size if mode != "many" else 50_000, prior)
    tmp = Path(tempfile.mkdtemp(prefix="toedit-bench-"))
    if mode == "naive":
        print(json.dumps({"tok_s": naive_baseline(prior, texts), "peak_rss_gb": peak_rss_gb()}))
        return
    if mode == "long":
        joined = "\n\n".join(texts)
        docs = [joined]
    else:  # many short documents: the first ~60 characters of each paragraph, cycled
        paras = [p.strip()[:60] for t in texts for p in t.split("\n\n") if p.strip()]
        docs = [paras[i % len(paras)] for i in range(size)]
    path = tmp / "input.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, d in enumerate(docs):
            fh.write(json.dumps({"id": str(i), "text": d}) + "\n")
    t0 = time.perf_counter()
    summary = run_edit(
        [str(path)], str(tmp / "run"), EditConfig(), io=IOConfig(), run=RunConfig(progress=False), prior=prior
    )
    seconds = time.perf_counter() - t0
    out = {
        "docs": summary.stats["n_records"],
        "tokens": summary.stats["n_tokens"],
        "tok_s": summary.stats["n_tokens"] / seconds,
        "peak_rss_gb": peak_rss_gb(),
    }
    print(json.dumps(out))


def run_child(mode: str, size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--size", str(size)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about 3 minutes)")
    ap.add_argument("--tokens", type=int, default=None, help="tokens for the throughput runs")
    ap.add_argument(
        "--bf16", action="store_true", help="only compare bf16 with fp32 scoring (speed, decisions)"
    )
    ap.add_argument("--profile", action="store_true", help="only time body vs LM head on one 2048 window")
    ap.add_argument("--compile", action="store_true", help="with --profile: also time a torch.compile'd body")
    ap.add_argument("--child", choices=["naive", "long", "many"], help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size)
        return
    tokens = args.tokens or (8_000 if args.quick else 30_000)
    if args.bf16:
        compare_bf16(tokens)
        return
    if args.profile:
        profile(args.compile)
        return
    long_tokens, many_docs = (20_000, 2_000) if args.quick else (100_000, 10_000)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu count {os.cpu_count()}")
    gflops = gemm_gflops()
    prior = load_prior("default")
    texts = corpus(tokens, prior)
    fpt = flops_per_token(prior, texts)
    roofline = gflops * 1e9 / fpt
    print(f"gemm_gflops: {gflops:.1f}")
    print(f"model_mflop_per_token: {fpt / 1e6:.1f}")
    print(f"roofline_tok_s: {roofline:.1f}")

    score_texts(texts[:1], prior)  # warm-up
    t0 = time.perf_counter()
    scores = score_texts(texts, prior, ScoreConfig())
    n_tokens = sum(len(s) for s in scores)
    score_tok_s = n_tokens / (time.perf_counter() - t0)

    tmp = Path(tempfile.mkdtemp(prefix="toedit-bench-"))
    with open(tmp / "input.jsonl", "w", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": str(i), "text": t}) + "\n")
    t0 = time.perf_counter()
    summary = run_edit(
        [str(tmp / "input.jsonl")], str(tmp / "run"), EditConfig(), run=RunConfig(progress=False), prior=prior
    )
    edit_tok_s = summary.stats["n_tokens"] / (time.perf_counter() - t0)

    naive = run_child("naive", tokens)
    long_doc = run_child("long", long_tokens)
    many = run_child("many", many_docs)

    print(f"documents: {len(texts)}  tokens: {n_tokens}")
    print(f"score_tok_s: {score_tok_s:.1f}")
    print(f"edit_tok_s: {edit_tok_s:.1f}  (run_edit: read JSONL, score, edit, write)")
    print(f"naive_tok_s: {naive['tok_s']:.1f}  naive_peak_rss_gb: {naive['peak_rss_gb']:.2f}")
    print(
        f"long_doc: {long_doc['tokens']} tokens, {long_doc['tok_s']:.1f} tok/s, peak_rss_gb {long_doc['peak_rss_gb']:.2f}"
    )
    print(
        f"many_docs: {many['docs']} docs, {many['tokens']} tokens, {many['tok_s']:.1f} tok/s, peak_rss_gb {many['peak_rss_gb']:.2f}"
    )
    print(f"edit/roofline: {edit_tok_s / roofline:.3f}")
    print(f"score/roofline: {score_tok_s / roofline:.3f}")
    print(f"edit/score: {edit_tok_s / score_tok_s:.3f}")
    print(f"edit/naive: {edit_tok_s / naive['tok_s']:.3f}")
    print(f"peak_rss_gb: {max(long_doc['peak_rss_gb'], many['peak_rss_gb']):.2f}")


if __name__ == "__main__":
    main()
