"""Tiny-LM training speed: a 4,096-token BPE vs the prior's 49,152-token vocabulary, and generation speed.

Prints tokens/s of AdamW training steps for both vocabularies (same body) and their ratio, measured in one run,
plus KV-cache sampling tokens/s of the embedded prior at one batch size. Usage:
    python benchmarks/bench_tinylm.py [--hidden 128] [--steps 10] [--generate-tokens 32]
"""

from __future__ import annotations

import argparse
import time

import torch

from toedit.experiments.tinylm import TrainConfig, make_model


def train_speed(vocab: int, hidden: int, steps: int, seq: int = 128, batch: int = 16) -> tuple[float, int]:
    config = TrainConfig(
        hidden=hidden, seq_len=seq, batch_size=batch, intermediate=hidden * 8 // 3 // 32 * 32
    )
    model = make_model(config, vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch * seq / (time.perf_counter() - t0), sum(p.numel() for p in model.parameters())


def generate_speed(new_tokens: int, batch: int) -> float:
    from toedit.experiments.generate import GenerateConfig, Prompt, generate_texts
    from toedit.prior import load_prior

    prior = load_prior("default", device="cpu")
    ids = prior.tokenizer(
        "It is a truth universally acknowledged, that a single man", add_special_tokens=False
    )
    prompts = [Prompt(f"p{i}", "", ids["input_ids"], new_tokens) for i in range(batch)]
    t0 = time.perf_counter()
    generate_texts(prompts, prior, GenerateConfig(max_new_tokens=new_tokens, batch_size=batch))
    return batch * new_tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--generate-tokens", type=int, default=32, help="0 skips the generation measurement")
    ap.add_argument("--generate-batch", type=int, default=16)
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    small, n_small = train_speed(4096, args.hidden, args.steps)
    big, n_big = train_speed(49152, args.hidden, args.steps)
    print(f"train, BPE 4,096:       {small:8.0f} tokens/s  ({n_small / 1e6:.2f}M parameters)")
    print(f"train, SmolLM2 49,152:  {big:8.0f} tokens/s  ({n_big / 1e6:.2f}M parameters)")
    print(f"bpe4096/prior_vocab speed ratio: {small / big:.1f}")
    if args.generate_tokens:
        rate = generate_speed(args.generate_tokens, args.generate_batch)
        print(f"generate (SmolLM2-135M, batch {args.generate_batch}, KV cache): {rate:.0f} tokens/s")


if __name__ == "__main__":
    main()
