"""Per-step costs of `experiment benefit --quick`, and the quick run's time estimated from them.

One run measures on this machine, with the quick preset's shapes: the prior's scoring rate (tokens/s), the
cpt and sft optimizer steps of the prior's top layer(s) in float32 and under bf16 autocast (their ratio is the
speed claim), and the frozen stack's forward rate (`TopLM.lower`, blocks of `LOWER_ROWS` rows). It then prints
the estimate per setting: scoring tokens / rate + runs x (steps x seconds per step + the run's frozen forward;
for sft an upper bound, since the memo computes each distinct example once) + evaluations not counted. The
load average is printed beside it: on a shared machine every number scales with it. Pretrain:
benchmarks/bench_tinylm.py.
Usage:
    python benchmarks/bench_benefit_steps.py [--steps 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from toedit.config import ScoreConfig
from toedit.experiments import benefit as bf
from toedit.experiments.benefit import lm as blm
from toedit.experiments.benefit.settings import row_batches, sft_batches, sft_example, trainable_copy
from toedit.prior import load_prior
from toedit.scoring import score_texts


def step_seconds(top, batches, bf16: bool) -> float:
    top.bf16 = bf16
    blm.train_lm(top, batches[:1], 1e-4)  # warm-up
    t0 = time.perf_counter()
    blm.train_lm(top, batches[1:], 1e-4)
    return (time.perf_counter() - t0) / (len(batches) - 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    q = bf.BenefitConfig(**bf.BENEFIT_QUICK)
    prior = load_prior("default", device="cpu")
    tok = prior.tokenizer
    cpt = bf.load_setting_data("cpt", q.for_setting("cpt"))
    sft = bf.load_setting_data("sft", q.for_setting("sft"))
    sample = cpt.texts[:2]
    score_texts(sample[:1], prior, ScoreConfig(store_k=8), k=8)  # warm-up: first call, compilation
    t0 = time.perf_counter()
    n = sum(s.n_scored for s in score_texts(sample, prior, ScoreConfig(store_k=8), k=8))
    rate = n / (time.perf_counter() - t0)
    top = blm.TopLM(trainable_copy(prior), q.ft_layers, frozen=prior.model)
    rows = blm.pack_stream(cpt.texts, tok, tok.eos_token_id, q.cpt_seq_len, q.ft_batch * (args.steps + 1))
    cpt_b = row_batches(rows, q.ft_batch, 0, top.inputs)
    block = blm.pack_stream(cpt.texts, tok, tok.eos_token_id, q.cpt_seq_len, 2 * blm.LOWER_ROWS)
    top.lower(block[: blm.LOWER_ROWS])  # warm-up
    t0 = time.perf_counter()
    top.lower(block[blm.LOWER_ROWS :])
    lower_rate = blm.LOWER_ROWS * q.cpt_seq_len / (time.perf_counter() - t0)
    ex = [
        sft_example(c, r, tok, tok.eos_token_id, q.sft_max_len)
        for c, r in zip(sft.contexts, sft.texts, strict=True)
    ]
    sft_b = sft_batches(ex[: q.ft_batch * (args.steps + 1)], q.ft_batch, top, q.sft_max_len)
    res = {
        k: (step_seconds(top, b, False), step_seconds(top, b, True))
        for k, b in (("cpt", cpt_b), ("sft", sft_b))
    }
    for k, (f32, b16) in res.items():
        print(f"{k}: {f32:.3f} s/step fp32, {b16:.3f} s/step bf16 autocast (bf16 {f32 / b16:.2f}x faster)")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"scoring: {rate:.0f} tokens/s; frozen stack: {lower_rate:.0f} tokens/s; load average {load}")
    tokens = {"cpt": sum(len(x) for x in tok(cpt.texts, add_special_tokens=False)["input_ids"])}
    tokens["sft"] = sum(len(x) for x in tok(sft.texts, add_special_tokens=False)["input_ids"])
    total = 0.0
    for k in ("cpt", "sft"):
        c = q.for_setting(k)
        runs = len(c.arm_names()) * len(c.seed_list(k))
        steps = c.cpt_tokens // c.cpt_seq_len // c.ft_batch if k == "cpt" else c.sft_pairs // c.ft_batch
        frozen = (c.cpt_tokens if k == "cpt" else c.sft_pairs * c.sft_max_len) / lower_rate
        minutes = (tokens[k] / rate + runs * (steps * res[k][1] + frozen)) / 60
        total += minutes
        print(
            f"{k}: {tokens[k]:,} tokens scored + {runs} runs x ({steps} steps + {frozen:.0f} s frozen forward"
            f"{', upper bound' if k == 'sft' else ''}): {minutes:.1f} min (+ evaluations)"
        )
    print(f"cpt + sft: {total:.1f} min before evaluations; pretrain: see benchmarks/bench_tinylm.py")


if __name__ == "__main__":
    main()
