"""GPU check (not a test): toedit's CUDA paths on random-initialised Llama models, in one run of <= 8 minutes.

Prints, all measured in this run:
- CUDA vs CPU agreement (selected positions, log-probs) on a small model briefly trained on the device so some
  tokens are confident (fp32 on both; bf16 on CUDA);
- per model shape (the embedded prior's, SmolLM2-135M; a 1B; an 8B with --shapes): scoring and edit tokens/s
  of toedit (bf16) and of the simplest HF script (one forward per document, full log-softmax, top-k:
  `bench_edit.simple_script`) on the same texts, the bf16 GEMM rate and the roofline (matmul FLOPs per token,
  `bench_edit.flops_per_token`) with each path's ratio to it, and peak GPU memory;
- the out-of-memory back-off exercised for real: the allocator capped (`set_per_process_memory_fraction`)
  below what a 64K-token batch needs, then the scores compared with uncapped ones;
- the tiny-LM trainers' training tokens/s on the device: the sequential one and the grid trainer (ensembles)
  (`tinylm_tokens_per_s`).

Needs only torch, transformers, tokenizers, numpy (+ what toedit imports; `WHEELS` travel as wheels) and the
prior's tokenizer and config, exported here once (the 93 MB prior package does not travel):

    python benchmarks/gpu_check.py --export .gpu_assets        # here: ~9 MB, ignored by git
    # on the GPU machine (the `run` tool): carry [".gpu_assets"], timeout_s 540
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu_assets/*.whl && \
    PYTHONPATH=src:/tmp/site PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --assets .gpu_assets \
        --shapes 135m,1b,8b --json $OUT/gpu_check.json

Without CUDA (or with --cpu-smoke) it runs every step on the CPU with tiny shapes and a few documents (the
OOM back-off then through a test seam: `torch.cuda.OutOfMemoryError` raised for batches over half the
budget): tests/test_gpu_check.py runs that in CI. Its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_edit  # noqa: E402  (the simplest script, the corpus, FLOPs per token)

from toedit import EditConfig, ScoreConfig, run_edit, score_texts, scoring  # noqa: E402
from toedit.agreement import compare_scorings  # noqa: E402
from toedit.config import RunConfig  # noqa: E402
from toedit.prior import Prior, context_token_id  # noqa: E402

# imported by toedit, absent from the GPU machine's image (its package list: the device README's KINDS.md)
WHEELS = ("zstandard",)
ASSET_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Llama shapes beside the prior's (vocabulary: the prior's tokenizer)
SHAPES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, tie_word_embeddings=False),
}  # fmt: skip
TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)
LOG = logging.getLogger("gpu_check")


# ------------------------------------------------------------------------------------------------ assets
def export_assets(out: Path, wheels: bool = True) -> None:
    """Copy the embedded prior's config and tokenizer files (converted once by load_prior) into `out`, and
    download the wheels of what toedit imports that the GPU machine lacks (`WHEELS`, for its Python 3.12)."""
    from toedit.prior import load_prior

    load_prior("default", device="cpu", dtype="float32")  # makes sure the safetensors cache exists
    src = bench_edit.model_dir()
    out.mkdir(parents=True, exist_ok=True)
    for name in ASSET_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, out / name)
    if wheels:
        download_wheels(out)
    print(f"exported {', '.join(sorted(p.name for p in out.iterdir()))} from {src} to {out}")


def download_wheels(out: Path) -> None:
    """`pip download` the installed versions of `WHEELS` as CPython 3.12 manylinux wheels into `out`."""
    import subprocess
    from importlib.metadata import version

    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(out)]
    cmd += [arg for p in platforms for arg in ("--platform", p)]
    subprocess.run(cmd + [f"{name}=={version(name)}" for name in WHEELS], check=True)


def load_assets(path: Path):
    from transformers import AutoConfig, AutoTokenizer

    return AutoConfig.from_pretrained(path), AutoTokenizer.from_pretrained(path)


# ------------------------------------------------------------------------------------------------ models
def model_config(base, shape: str, smoke: bool):
    """The LlamaConfig of a shape: "135m" = the prior's own; the others its vocabulary with SHAPES' sizes."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(**base.to_dict())
    if shape != "135m":
        cfg.update(SHAPES[shape])
        cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
    if smoke:
        cfg.update(TINY)
        cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
    return cfg


def random_prior(cfg, tokenizer, device: torch.device, dtype: torch.dtype, name: str, seed: int = 0) -> Prior:
    """A random-initialised Llama as a toedit prior (made on the device: no host copy of 8B weights)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = cast(LlamaForCausalLM(cfg), device, dtype).eval()
    ctx = context_token_id(tokenizer)
    max_pos = int(cfg.max_position_embeddings or 2048)
    return Prior(model, tokenizer, name, f"random:{name}:{seed}", ctx, device, dtype, max_pos)


def briefly_trained(cfg, tokenizer, texts: list[str], device: torch.device, steps: int) -> torch.nn.Module:
    """The small model trained for a few steps in fp32 on the device, so some tokens get p > 0.99."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).float()
    ids = tokenizer("\n".join(texts), add_special_tokens=False)["input_ids"]
    seq = 128
    data = torch.tensor(ids[: (len(ids) // seq) * seq], device=device).view(-1, seq)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        rows = data[torch.randint(len(data), (8,), generator=gen).to(device)]
        loss = model(input_ids=rows, labels=rows).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def cast(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """`model.to(device, dtype)` keeping the rotary `inv_freq` buffers fp32, as a model loaded in bf16 has them."""
    keep = {n: b.detach().clone() for n, b in model.named_buffers() if n.endswith("inv_freq")}
    model = model.to(device=device, dtype=dtype)
    for name, buf in keep.items():
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner), leaf, buf.to(device))
    return model


def as_prior(model, tokenizer, device: torch.device, dtype: torch.dtype, name: str) -> Prior:
    model = cast(model, device, dtype).eval()
    ctx = context_token_id(tokenizer)
    max_pos = int(model.config.max_position_embeddings or 2048)
    return Prior(model, tokenizer, name, f"trained:{name}", ctx, device, dtype, max_pos)


# --------------------------------------------------------------------------------------------- measuring
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_tflops(device: torch.device, n: int, seconds: float = 1.0) -> float:
    """bf16 matmul TFLOP/s of an n x n x n product on the device (best of a few timed loops)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    best = 0.0
    for _ in range(3):
        a @ b
        sync(device)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            a @ b
            reps += 1
            if device.type == "cuda" and reps % 10:
                continue
            sync(device)
        sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12)
    return best


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict, key: str):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield
    finally:
        out[key] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def timed(fn, device: torch.device, repeats: int) -> float:
    """Best wall seconds of `repeats` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def edit_once(prior: Prior, jsonl: Path, out: Path, score: ScoreConfig) -> None:
    run_edit([str(jsonl)], str(out), EditConfig(), score=score, run=RunConfig(progress=False, overwrite=True),
             prior=prior)  # fmt: skip


# ------------------------------------------------------------------------------------------------- steps
def agreement(base, tokenizer, texts: list[str], device: torch.device, smoke: bool) -> dict:
    """CUDA vs CPU on the same weights: fp32 on both, and bf16 on the device against fp32 on the CPU."""
    cfg = model_config(base, "135m", smoke)
    model = briefly_trained(cfg, tokenizer, texts, device, steps=5 if smoke else 150)
    cpu_prior = as_prior(model, tokenizer, torch.device("cpu"), torch.float32, "small-cpu")
    config = ScoreConfig(compile="off")
    ref = score_texts(texts, cpu_prior, config)
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        dev_prior = as_prior(model, tokenizer, device, dtype, f"small-{device.type}")
        other = score_texts(texts, dev_prior, config)
        agr = compare_scorings(ref, other)
        top1 = np.mean(
            np.concatenate([(r.topk_ids[:, 0] == o.topk_ids[:, 0]) for r, o in zip(ref, other, strict=True)])
        )
        name = f"{device.type} {str(dtype).removeprefix('torch.')} vs cpu float32"
        out[name] = {**agr.to_dict(), "top1_match": float(top1)}
        print(
            f"agreement {name}: IoU p>0.99 {agr.iou_threshold:.4f} ({agr.selected_reference}/"
            f"{agr.selected_other} selected), IoU @2% {agr.iou_calibrated:.4f}, mean|dlogp| "
            f"{agr.mean_abs_logprob_diff:.2e}, max|dlogp| {agr.max_abs_logprob_diff:.2e}, top-1 ids {top1:.4f}"
        )
    return out


def speed(base, tokenizer, shape: str, texts, jsonl: Path, device, gemm: float, args) -> dict:
    """toedit scoring / edit vs the simplest script on one shape, bf16 on the device (fp32 in the smoke)."""
    dtype = torch.float32 if args.cpu_smoke else torch.bfloat16
    prior = random_prior(model_config(base, shape, args.cpu_smoke), tokenizer, device, dtype, shape)
    fpt = bench_edit.flops_per_token(prior, texts)
    roof = gemm * 1e12 / fpt
    n = sum(len(ids) for ids, _ in scoring.tokenize(prior, texts))
    config = ScoreConfig(compile="off")
    mem: dict[str, float] = {}
    res = {"tokens": n, "mflop_per_token": fpt / 1e6, "roofline_tok_s": roof}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "toedit score": lambda: score_texts(texts, prior, config),
            "toedit edit": lambda: edit_once(prior, jsonl, Path(tmp) / "run", config),
            "simplest script": lambda: bench_edit.simple_script(prior, texts),
        }
        for name, fn in paths.items():
            with peak_memory(device, mem, name):
                seconds = timed(fn, device, args.repeats)
            res[name] = {"tok_s": n / seconds, "of_roofline": n / seconds / roof, "peak_gib": mem[name]}
    simple = res["simplest script"]["tok_s"]
    print(
        f"\n{shape}: {n} tokens, {fpt / 1e6:.0f} MFLOP/token, roofline {roof:,.0f} tok/s ({gemm:.1f} TFLOP/s)"
    )
    for name in paths:
        r = res[name]
        print(
            f"  {name:16s} {r['tok_s']:10,.0f} tok/s  {r['of_roofline']:.3f} of the roofline  "
            f"{r['tok_s'] / simple:.2f}x the simplest script  peak {r['peak_gib']:.2f} GiB"
        )
    return res


def oom_backoff(base, tokenizer, texts, device, args) -> dict:
    """Exercise the out-of-memory back-off of `score_texts`: its scores must match unconstrained ones."""
    shape = "135m" if args.cpu_smoke else "1b"
    dtype = torch.float32 if args.cpu_smoke else torch.bfloat16
    prior = random_prior(model_config(base, shape, args.cpu_smoke), tokenizer, device, dtype, shape)
    budget = 512 if args.cpu_smoke else 65536
    window = 64 if args.cpu_smoke else None  # the smoke's few texts cut into many rows
    config = ScoreConfig(compile="off", token_budget=budget, window=window)
    ref = score_texts(texts, prior, dataclasses.replace(config, token_budget=max(64, budget // 8)))
    records: list[str] = []
    handler = _ListHandler(records)
    logging.getLogger("toedit.scoring").addHandler(handler)
    real = scoring._score_batch
    try:
        if device.type == "cuda":  # for real: the allocator capped at what is in use + `room`
            release(device)
            total = torch.cuda.get_device_properties(device).total_memory
            room = 1.5 * 2**30
            torch.cuda.set_per_process_memory_fraction(
                min(1.0, (torch.cuda.memory_allocated() + room) / total)
            )
            how = f"allocator capped at {room / 2**30:.1f} GiB above the weights, token budget {budget}"
        else:  # the seam: batches over half the budget "run out of memory"

            def seam(batch, *a, **k):
                if len(batch) > 1 and scoring._padded(batch) > budget // 2:
                    raise torch.cuda.OutOfMemoryError("forced by gpu_check")
                return real(batch, *a, **k)

            scoring._score_batch = seam
            how = f"test seam: batches over {budget // 2} padded tokens raise, token budget {budget}"
        got = score_texts(texts, prior, config)
    finally:
        scoring._score_batch = real
        logging.getLogger("toedit.scoring").removeHandler(handler)
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
    agr = compare_scorings(ref, got)
    backoffs = [r for r in records if "out of memory" in r]
    print(
        f"\nOOM back-off ({how}): {len(backoffs)} back-off(s)"
        + (f", last: {backoffs[-1]}" if backoffs else "")
    )
    print(f"  scores vs an unconstrained run: max|dlogp| {agr.max_abs_logprob_diff:.2e}, IoU {agr.iou:.4f}")
    return {"how": how, "backoffs": len(backoffs), "messages": backoffs, "agreement": agr.to_dict()}


class _ListHandler(logging.Handler):
    def __init__(self, records: list[str]):
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def tinylm_tokens_per_s(texts: list[str], device: torch.device, smoke: bool) -> dict:
    """The tiny-LM trainers on the device, training tokens/s: the sequential one (`tinylm.train_rows`, one run)
    and the grid trainer (`ensemble.train_grid`, the runs of a grid as ensembles, compiled on the device), on
    the same configuration."""
    from bench_tinylm import grid_tokens_per_s

    from toedit.experiments import ensemble, tinylm

    config = tinylm.TrainConfig(tokens=4096 if smoke else 262_144, device=device.type)
    tokenizer = tinylm.build_tokenizer(config.tokenizer, texts)
    rows = tinylm.pack(texts, tokenizer, config.seq_len)
    model = tinylm.make_model(config, len(tokenizer)).to(device)
    _, stats = tinylm.train_rows(rows.to(device), config, len(tokenizer), model=model)
    print(
        f"\ntiny LM (hidden {config.hidden}, {config.layers} layers, batch {config.batch_size} x {config.seq_len}) "
        f"on {device.type}: {stats['tokens_per_s']:,.0f} training tokens/s ({stats['steps']} steps, "
        f"loss {stats['first_loss']:.2f} -> {stats['final_loss']:.2f})"
    )
    out = {k: v for k, v in stats.items() if k != "losses"}
    n = 2 if smoke else 10
    members = [ensemble.Member(rows, dataclasses.replace(config, seed=s)) for s in range(n)]
    res = ensemble.train_grid(members, len(tokenizer), compile=not smoke)
    tps, first = grid_tokens_per_s(res, config)
    grid = res[0][1]
    print(
        f"grid trainer ({n} runs, ensembles of {grid['members']}, {grid['precision']}, compiled "
        f"{'yes' if grid['compiled'] else 'no'}): {tps:,.0f} training tokens/s after the first steps "
        f"({first:.1f} s), {tps / stats['tokens_per_s']:.1f}x the sequential trainer"
    )
    out["grid"] = {"runs": n, "members": grid["members"], "precision": grid["precision"],
                   "compiled": grid["compiled"], "tokens_per_s": tps, "first_steps_seconds": first,
                   "vs_sequential": tps / stats["tokens_per_s"]}  # fmt: skip
    return out


def release(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=Path, default=Path(".gpu_assets"), help="the prior's config + tokenizer")
    ap.add_argument("--export", type=Path, help="write the assets here from the installed prior, then exit")
    ap.add_argument("--shapes", default="135m,1b", help="model shapes timed: 135m (the prior's), 1b, 8b")
    ap.add_argument("--tokens", type=int, default=60_000, help="corpus tokens per shape (GPU)")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per path (best kept)")
    ap.add_argument(
        "--cpu-smoke", action="store_true", help="tiny shapes on the CPU (automatic without CUDA)"
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if args.export:
        export_assets(args.export)
        return {}
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("no CUDA device: running the reduced CPU smoke mode (--cpu-smoke); its numbers mean nothing")
        args.cpu_smoke = True
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    if args.cpu_smoke:
        args.tokens, args.repeats = min(args.tokens, 400), 1
    t_start = time.perf_counter()
    base, tokenizer = load_assets(args.assets)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else bench_edit.cpu_name()
    print(f"device: {name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    ref_prior = random_prior(
        model_config(base, "135m", True), tokenizer, torch.device("cpu"), torch.float32, "t"
    )
    texts = bench_edit.corpus(args.tokens, ref_prior)
    del ref_prior
    results: dict = {
        "device": name,
        "torch": torch.__version__,
        "smoke": args.cpu_smoke,
        "section_seconds": {},
    }

    def done(section: str, t0: float) -> None:
        """Record the section's time and write what is measured so far (a run cut off by its time limit
        still returns every finished section)."""
        results["section_seconds"][section] = round(time.perf_counter() - t0, 1)
        results["seconds"] = time.perf_counter() - t_start
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")

    t0 = time.perf_counter()
    gemm = gemm_tflops(device, 256 if args.cpu_smoke else 8192)
    results["gemm_bf16_tflops"] = gemm
    print(f"bf16 GEMM: {gemm:.1f} TFLOP/s ({'256' if args.cpu_smoke else '8192'}^3)")
    results["agreement"] = agreement(base, tokenizer, texts[:8], device, args.cpu_smoke)
    done("gemm+agreement", t0)
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "input.jsonl"
        bench_edit.write_jsonl(texts, jsonl)
        results["speed"] = {}
        for shape in filter(None, args.shapes.split(",")):
            t0 = time.perf_counter()
            results["speed"][shape] = speed(base, tokenizer, shape, texts, jsonl, device, gemm, args)
            release(device)  # the shape's model and activations
            done(f"speed {shape}", t0)
    t0 = time.perf_counter()
    results["oom"] = oom_backoff(base, tokenizer, texts, device, args)
    release(device)
    done("oom", t0)
    t0 = time.perf_counter()
    results["tinylm"] = tinylm_tokens_per_s(texts, device, args.cpu_smoke)
    done("tinylm", t0)
    print(f"\ngpu_check done in {results['seconds']:.0f} s: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in results["section_seconds"].items()))  # fmt: skip
    return results


if __name__ == "__main__":
    main()
