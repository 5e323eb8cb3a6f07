"""Edit-engine benchmark (not a test): every path against its own roofline and against honest baselines.

Everything is measured in this one run on this machine and printed as ratios:
- the GEMM rate of each dtype (fp32, bf32, bf16, dynamic int8) -> the roofline tokens/s of the embedded prior per
  dtype (matmul FLOPs per token from the model shape and the windows used);
- each toedit path (fp32, bf32, bf16, the `auto` default, int8 as a trial; `<dtype>+eager` = `--compile off`): scoring
  and full `run_edit`
  tokens/s (best of --repeats, paths interleaved), its ratio to its own roofline and to the fp32 roofline,
  where the time goes (tokenisation, body by op class, LM head + log-softmax + top-k, editing, IO), the
  agreement of its selected positions with fp32 (toedit.agreement) and with itself scored in other batches (its
  own noise floor: the GEMM shapes change, so do the roundings), and peak RSS / whole-process time in a
  child process;
- baselines, written here: (a) the simplest script, one HF forward per document, full log_softmax, per-token
  top-k dicts and the official per-token rule; (b) the official engine, vLLM `prompt_logprobs` (k = 8) with the
  same per-token post-processing, run by benchmarks/bench_vllm.py in .venv-vllm (`make bench-vllm`).

The corpus: Python reference documents of <= 2000 tokens (no path truncates or windows them, so all score the
same positions with the same context).

    python benchmarks/bench_edit.py                   # ~15 minutes on 2 busy cores
    python benchmarks/bench_edit.py --vllm            # + baseline (b), needs .venv-vllm

The trials of the bf16 path and of the body's precision are `benchmarks/bench_trials.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pydoc_data.topics
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from toedit import EditConfig, ScoreConfig, lmhead, load_prior, pipeline, run_edit, score_texts, scoring
from toedit.agreement import AGREEMENT_TARGET, compare_scorings
from toedit.compiling import bf16_matmul_math
from toedit.config import RunConfig
from toedit.prior import auto_dtype, cache_root, default_gguf_path, file_sha256
from toedit.scoring import TokenScores, plan_windows, resolve_window, tokenize

ROOT = Path(__file__).resolve().parent.parent
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"
MAX_DOC_TOKENS = 2000
SELF_BUDGET = 1024  # the second batch composition of the self-agreement check (the default is 2048)


# ---------------------------------------------------------------------------------------------- hardware
def _rate(fn, flops: float, seconds: float) -> float:
    fn()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        reps += 1
    return flops * reps / (time.perf_counter() - t0) / 1e9


def _bf32_linear(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    with bf16_matmul_math():
        return torch.nn.functional.linear(a, w)


def gemm_rates(repeats: int, seconds: float = 1.0) -> dict[str, dict[str, float]]:
    """Best-of-`repeats` GFLOP/s per dtype, dtypes interleaved: 2048^2 square and the model's MLP shape."""
    from torch.ao.quantization import quantize_dynamic

    shapes = {"square": (2048, 2048, 2048), "mlp": (2048, 576, 1536)}
    calls = {}
    for shape, (m, k, n) in shapes.items():
        a, w = torch.randn(m, k), torch.randn(n, k)
        lin = torch.nn.Linear(k, n, bias=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        ab, wb = a.bfloat16(), w.bfloat16()
        calls[("float32", shape)] = (lambda a=a, w=w: torch.nn.functional.linear(a, w), 2 * m * k * n)
        calls[("bfloat16", shape)] = (lambda a=ab, w=wb: torch.nn.functional.linear(a, w), 2 * m * k * n)
        # bf32: fp32 tensors, bf16 matmul math with fp32 output (oneDNN fp32 precision "bf16", as --dtype bf32)
        calls[("bf32", shape)] = (lambda a=a, w=w: _bf32_linear(a, w), 2 * m * k * n)
        # dynamic int8: activations quantised per call, as `quantize_dynamic` linears run
        calls[("int8", shape)] = (lambda a=a, q=q: q(a), 2 * m * k * n)
    best: dict[str, dict[str, float]] = defaultdict(dict)
    with torch.inference_mode():
        for _ in range(repeats):
            for (dtype, shape), (fn, flops) in calls.items():
                best[dtype][shape] = max(best[dtype].get(shape, 0.0), _rate(fn, flops, seconds))
    return dict(best)


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


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


# ------------------------------------------------------------------------------------------------ corpus
def corpus(min_tokens: int, prior) -> list[str]:
    """Python reference documents of at most MAX_DOC_TOKENS tokens, in a fixed order, until min_tokens."""
    texts, total = [], 0
    topics = pydoc_data.topics.topics
    for key in sorted(topics):
        n = len(tokenize(prior, [topics[key]])[0][0])
        if 2 <= n <= MAX_DOC_TOKENS:
            texts.append(topics[key])
            total += n
        if total >= min_tokens:
            break
    return texts


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def model_dir() -> Path:
    """The embedded prior's safetensors cache (written by load_prior("default"))."""
    return cache_root() / "gguf" / file_sha256(default_gguf_path())[:24]


# ------------------------------------------------------------------------------------------------- paths
def path_config(path: str) -> ScoreConfig:
    """The scoring config of a path: `<dtype>+eager` turns torch.compile off (`--compile off`)."""
    return ScoreConfig(compile="off") if path.endswith("+eager") else ScoreConfig()


def make_prior(path: str):
    """A toedit prior for one path: float32 | bfloat16 | auto | int8 (trial: dynamic int8 body linears), with
    an optional `+eager` suffix (see `path_config`)."""
    path = path.removesuffix("+eager")
    if path != "int8":
        return load_prior("default", device="cpu", dtype=path)
    from torch.ao.quantization import quantize_dynamic

    prior = load_prior("default", device="cpu", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(prior.model.base_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    prior.dtype_name = "int8"
    return prior


def write_jsonl(texts: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": str(i), "text": t}) + "\n")


def timed_edit(prior, jsonl: Path, out: Path, score: ScoreConfig | None = None) -> float:
    t0 = time.perf_counter()
    run_edit(
        [str(jsonl)],
        str(out),
        EditConfig(),
        score=score or ScoreConfig(),
        run=RunConfig(progress=False, overwrite=True),
        prior=prior,
    )
    return time.perf_counter() - t0


class Timers:
    """Wall time per stage of an edit run, by wrapping the functions the pipeline calls (bench only)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = defaultdict(float)

    def wrap(self, fn, label: str):
        def wrapped(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.t[label] += time.perf_counter() - t0

        return wrapped

    @contextlib.contextmanager
    def active(self, prior):
        patches = [
            (pipeline, "score_texts", "scoring"),
            (pipeline, "edit_scored", "editing"),
            (scoring, "tokenize", "tokenisation"),
            (lmhead.LMHead, "stats", "head"),
        ]
        saved = []
        for owner, name, label in patches:
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, self.wrap(getattr(owner, name), label))
        body = prior.model.base_model
        start: list[float] = []
        pre = body.register_forward_pre_hook(lambda *_: start.append(time.perf_counter()))
        post = body.register_forward_hook(
            lambda *_: self.t.__setitem__("body", self.t["body"] + time.perf_counter() - start.pop())
        )
        try:
            yield self
        finally:
            pre.remove()
            post.remove()
            for owner, name, orig in saved:
                setattr(owner, name, orig)


def body_op_classes(prior, texts: list[str], config: ScoreConfig) -> dict[str, float]:
    """Self CPU time of the body's ops by class (torch.profiler), as shares of the body's op time."""
    from torch.profiler import ProfilerActivity, profile, record_function

    orig = lmhead.LMHead.stats

    def stats(self, *a, **kw):
        with record_function("toedit::head"):
            return orig(self, *a, **kw)

    lmhead.LMHead.stats = stats
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            score_texts(texts, prior, config)
    finally:
        lmhead.LMHead.stats = orig
    out: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        anc, in_head = ev, False
        while anc is not None:
            if anc.name == "toedit::head":
                in_head = True
                break
            anc = anc.cpu_parent
        if in_head:
            continue
        name = ev.name.lower()
        if any(s in name for s in ("attention", "bmm", "softmax", "baddbmm")):
            cls = "attention"
        elif any(s in name for s in ("mm", "linear", "matmul", "quantized", "mkldnn")):
            cls = "linear"
        else:
            cls = "norms+elementwise+other"
        out[cls] += ev.self_cpu_time_total
    total = sum(out.values()) or 1.0
    return {k: v / total for k, v in sorted(out.items())}


# --------------------------------------------------------------------------------------------- baselines
def simple_script(prior, texts: list[str], k: int = 8, threshold: float = 0.99, beta: float = 1.5):
    """Baseline (a): one HF forward per document, full log_softmax, per-token top-k dicts, the official rule."""
    rng = np.random.default_rng(0)
    out = []
    for text in texts:
        ids = [prior.context_id, *prior.tokenizer(text, add_special_tokens=False)["input_ids"]]
        with torch.inference_mode():
            logp = (
                prior.model(input_ids=torch.tensor([ids], device=prior.device))
                .logits[0]
                .float()
                .log_softmax(-1)
            )
        top_v, top_i = logp.topk(k, dim=-1)
        top_v, top_i = top_v.tolist(), top_i.tolist()
        lps = []
        for j in range(1, len(ids)):
            cands = dict(zip(top_i[j - 1], top_v[j - 1], strict=True))
            actual = ids[j]
            cands.setdefault(actual, float(logp[j - 1, actual]))
            if np.exp(cands[actual]) > threshold:
                w = np.exp(np.array(list(cands.values())) / beta)
                rng.choice(list(cands), p=w / w.sum())
            lps.append(cands[actual])
        out.append((np.array(ids[1:], np.int32), np.array(lps, np.float32), top_i[:-1], top_v[:-1]))
    return out


def as_scores(token_ids, logprob, topk_ids, topk_lps) -> TokenScores:
    n = len(token_ids)
    return TokenScores(
        token_ids=np.asarray(token_ids, np.int32),
        offsets=np.zeros((n, 2), np.int32),
        logprob=np.asarray(logprob, np.float32),
        topk_ids=np.asarray(topk_ids, np.int32).reshape(n, -1),
        topk_logprobs=np.asarray(topk_lps, np.float32).reshape(n, -1),
    )


def run_vllm(prior, texts: list[str], dtype: str, tmp: Path) -> dict | None:
    """Baseline (b) in .venv-vllm; None (with the reason printed) when it cannot run."""
    if not VLLM_PY.exists():
        print(f"vllm: {VLLM_PY} missing (make bench-vllm builds it); baseline (b) skipped")
        return None
    ids = [[prior.context_id, *t[0].tolist()] for t in tokenize(prior, texts)]
    inp, out = tmp / "vllm-ids.json", tmp / f"vllm-{dtype}.json"
    inp.write_text(json.dumps({"docs": ids}))
    cmd = [str(VLLM_PY), str(ROOT / "benchmarks" / "bench_vllm.py"), "--model", str(model_dir())]
    cmd += ["--input", str(inp), "--out", str(out), "--dtype", dtype]
    # as many engine threads as toedit uses: vLLM's CPU backend binds one OpenMP thread per core and
    # reserves one core for its front end by default (1 thread on 2 cores); 0 reserved gives it every core
    threads = torch.get_num_threads()
    reserved = str(max(0, (os.cpu_count() or threads) - threads))
    env = {**os.environ, "VLLM_CPU_NUM_OF_RESERVED_CPU": reserved, "PYTHONPATH": ""}
    for attempt in (1, 2):  # vLLM's CPU engine aborts at start-up now and then with 2 threads: one retry
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode == 0:
            break
        print(
            f"vllm {dtype}: attempt {attempt} failed (rc {res.returncode}): {res.stderr.strip().splitlines()[-3:]}"
        )
    else:
        return None
    data = json.loads(out.read_text())
    data["process_s"] = time.perf_counter() - t0
    data["scores"] = [
        as_scores(i[1:], d["logprob"], d["topk_ids"], d["topk_logprobs"])
        for i, d in zip(ids, data.pop("docs"), strict=True)
    ]
    return data


# ---------------------------------------------------------------------------------------- child process
def child(path: str, jsonl: str) -> None:
    """One whole edit in a fresh process: load time, edit time, peak RSS."""
    t0 = time.perf_counter()
    if path == "simple":
        prior = load_prior("default", device="cpu", dtype="float32")
        texts = [json.loads(line)["text"] for line in Path(jsonl).read_text(encoding="utf-8").splitlines()]
        load = time.perf_counter() - t0
        t1 = time.perf_counter()
        simple_script(prior, texts)
    else:
        prior = make_prior(path)
        load = time.perf_counter() - t0
        t1 = time.perf_counter()
        timed_edit(
            prior, Path(jsonl), Path(tempfile.mkdtemp(prefix="toedit-bench-")) / "run", path_config(path)
        )
    work = time.perf_counter() - t1
    print(
        json.dumps({"load_s": load, "work_s": work, "process_s": load + work, "peak_rss_gb": peak_rss_gb()})
    )


def run_child(path: str, jsonl: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", path, "--input", str(jsonl)]
    cmd += ["--threads", str(torch.get_num_threads())]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------------------- main
def fmt_agreement(agr) -> str:
    verdict = "meets" if agr.meets() else "BELOW"
    return (
        f"IoU p>0.99 {agr.iou_threshold:.4f} ({agr.selected_reference}/{agr.selected_other} selected), "
        f"IoU @2%-change thr {agr.iou_calibrated:.4f}, mean|dlogp| {agr.mean_abs_logprob_diff:.4f} "
        f"[{verdict} the {AGREEMENT_TARGET} target]"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=16_000, help="corpus size (tokens)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (paths interleaved; best kept)")
    ap.add_argument(
        "--paths",
        default="float32,bfloat16,bfloat16+eager,int8",
        help="toedit paths to time (<dtype>[+eager]; +eager = --compile off)",
    )
    ap.add_argument("--vllm", action="store_true", help="also run baseline (b) on vLLM's CPU backend")
    ap.add_argument("--no-children", action="store_true", help="skip the whole-process / peak-RSS children")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default torch's; 1 on an oversubscribed CPU)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args.input)
        return

    auto = auto_dtype(torch.device("cpu"))
    print(f"cpu: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; auto -> {auto}")
    gemm = gemm_rates(args.repeats)
    for dtype, rates in gemm.items():
        print(f"gemm_gflops {dtype}: square2048 {rates['square']:.0f}  mlp2048x576x1536 {rates['mlp']:.0f}")
    paths = args.paths.split(",")
    priors = {p: make_prior(p) for p in paths}
    ref = priors.get("float32") or make_prior("float32")
    texts = corpus(args.tokens, ref)
    fpt = flops_per_token(ref, texts)
    roof = {d: gemm[d]["square"] * 1e9 / fpt for d in gemm}
    print(
        f"documents: {len(texts)} (each <= {MAX_DOC_TOKENS} tokens); model_mflop_per_token: {fpt / 1e6:.1f}"
    )
    print("roofline_tok_s: " + "  ".join(f"{d} {r:.0f}" for d, r in roof.items()))

    tmp = Path(tempfile.mkdtemp(prefix="toedit-bench-"))
    jsonl = tmp / "input.jsonl"
    write_jsonl(texts, jsonl)
    score_s: dict[str, float] = defaultdict(lambda: float("inf"))
    edit_s: dict[str, float] = defaultdict(lambda: float("inf"))
    scores: dict[str, list[TokenScores]] = {}
    first_s = {}
    for p, prior in priors.items():  # warm-up incl. compilation (and the scores compared below)
        t0 = time.perf_counter()
        scores[p] = score_texts(texts, prior, path_config(p))
        first_s[p] = time.perf_counter() - t0
    n_tokens = sum(len(s) for s in scores[paths[0]])
    for _ in range(args.repeats):
        for p, prior in priors.items():
            t0 = time.perf_counter()
            score_texts(texts, prior, path_config(p))
            score_s[p] = min(score_s[p], time.perf_counter() - t0)
            edit_s[p] = min(edit_s[p], timed_edit(prior, jsonl, tmp / f"run-{p}", path_config(p)))
        # the GEMM rates again in every round: on a shared CPU the load drifts, and a roofline from a busier
        # moment than the paths' best round would flatter them
        for dtype, rates in gemm_rates(1).items():
            for shape, rate in rates.items():
                gemm[dtype][shape] = max(gemm[dtype][shape], rate)
    roof = {d: gemm[d]["square"] * 1e9 / fpt for d in gemm}
    for dtype, rates in gemm.items():
        print(f"gemm_gflops {dtype} (best over all rounds): square2048 {rates['square']:.0f}")
    print("roofline_tok_s (best GEMM): " + "  ".join(f"{d} {r:.0f}" for d, r in roof.items()))
    ref_scores = scores.get("float32") or score_texts(texts, ref)

    # baseline (a): interleaving it with the paths would double the run; best of 2 rounds instead
    simple_s, simple_out = float("inf"), None
    for _ in range(2):
        t0 = time.perf_counter()
        simple_out = simple_script(ref, texts)
        simple_s = min(simple_s, time.perf_counter() - t0)
    simple_scores = [as_scores(ids, lp, ti, tv) for ids, lp, ti, tv in simple_out]

    print(f"\ntokens: {n_tokens}\n")
    print("== toedit paths (in-process, model loaded; best of --repeats) ==")
    results = {}
    for p, prior in priors.items():
        d = prior.dtype_name
        tok_s, etok_s = n_tokens / score_s[p], n_tokens / edit_s[p]
        agr = compare_scorings(ref_scores, scores[p])
        results[p] = {"edit_tok_s": etok_s, "agreement": agr}
        print(
            f"{p:14s} score {tok_s:7.0f} tok/s  edit {etok_s:7.0f} tok/s  "
            f"edit/own_roofline {etok_s / roof[d]:.3f}  edit/fp32_roofline {etok_s / roof['float32']:.3f}  "
            f"score/own_roofline {tok_s / roof[d]:.3f}  first scoring pass (incl. compilation) {first_s[p]:.1f} s"
        )
        print(f"          agreement vs fp32: {fmt_agreement(agr)}")
        # the path's own noise floor: the same path, the same documents, other batches (other GEMM shapes)
        again = score_texts(texts, prior, dataclasses.replace(path_config(p), token_budget=SELF_BUDGET))
        results[p]["self_agreement"] = self_agr = compare_scorings(scores[p], again)
        print(f"          agreement with itself at --token-budget {SELF_BUDGET}: {fmt_agreement(self_agr)}")
    print("\n== baselines ==")
    simple_tok_s = n_tokens / simple_s
    print(
        f"(a) simple HF script fp32: {simple_tok_s:.0f} tok/s  /fp32_roofline {simple_tok_s / roof['float32']:.3f}"
    )
    print(f"    agreement vs toedit fp32: {fmt_agreement(compare_scorings(ref_scores, simple_scores))}")
    vllm = {}
    if args.vllm:
        for dtype in ("float32", "bfloat16"):
            v = run_vllm(ref, texts, dtype, tmp)
            if v is None:
                continue
            vllm[dtype] = v
            print(
                f"(b) vLLM {dtype}: {v['tok_s']:.0f} tok/s excluding start-up "
                f"(engine {v['engine_s']:.1f} s + post-processing {v['postprocess_s']:.1f} s), "
                f"start-up {v['startup_s']:.1f} s, whole process {v['process_s']:.1f} s, "
                f"/fp32_roofline {v['tok_s'] / roof['float32']:.3f}"
            )
            print(f"    agreement vs toedit fp32: {fmt_agreement(compare_scorings(ref_scores, v['scores']))}")

    print("\n== ratios (same run) ==")
    for p, r in results.items():
        line = f"{p:14s} edit vs (a) simple fp32: {r['edit_tok_s'] / simple_tok_s:.2f}x"
        for dtype, v in vllm.items():
            line += f"  vs (b) vLLM {dtype}: {r['edit_tok_s'] / v['tok_s']:.2f}x"
        print(line)

    print("\n== where the time goes (one edit run per path, wall seconds) ==")
    for p, prior in priors.items():
        timers = Timers()
        with timers.active(prior):
            total = timed_edit(prior, jsonl, tmp / f"run-t-{p}", path_config(p))
        t = timers.t
        rest_score = t["scoring"] - t["tokenisation"] - t["body"] - t["head"]
        parts = {
            "tokenisation": t["tokenisation"],
            "body": t["body"],
            "head+logsoftmax+topk": t["head"],
            "scoring other (batching, scatter)": rest_score,
            "editing": t["editing"],
            "IO+run bookkeeping": total - t["scoring"] - t["editing"],
        }
        print(f"{p:14s} total {total:.2f} s: " + ", ".join(f"{k} {v / total:.1%}" for k, v in parts.items()))
        ops = body_op_classes(prior, texts[: max(1, len(texts) // 3)], path_config(p))
        print(
            "          body op classes (profiler self time): "
            + ", ".join(f"{k} {v:.1%}" for k, v in ops.items())
        )

    if not args.no_children:
        print("\n== fresh process per path: load + edit, peak RSS ==")
        for p in [*paths, "simple"]:
            c = run_child(p, jsonl)
            print(
                f"{p:14s} load {c['load_s']:.1f} s  work {c['work_s']:.1f} s  "
                f"({n_tokens / c['work_s']:.0f} tok/s)  process wall {c['wall_s']:.1f} s  "
                f"peak_rss_gb {c['peak_rss_gb']:.2f}"
            )


if __name__ == "__main__":
    main()
