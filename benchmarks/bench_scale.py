"""Scale-out benchmark (not a test): executors against a bare in-process loop on the same corpus slice.

Measured in this one run: a bare loop (load the prior, then `edit_texts` over the documents in batches, no
run layer), then `run_edit` with the local executor (1 worker = in this process; 2 spawned workers) and
with Ray (2 actors, a local `ray.init`). Every wall time includes loading the prior (and starting workers or
Ray), so the ratio to the bare loop is the whole overhead of each executor; it shrinks as the run grows.
CPU seconds (this process and its reaped children: spawned workers, Ray's processes after its shutdown)
are printed too: on a machine shared with other jobs, wall time mostly shows how the OS split the cores.
The edited data of every executor is checked to be byte-identical.

    python benchmarks/bench_scale.py                   # ~25,000 tokens of Python reference topics
    python benchmarks/bench_scale.py --tokens 150000   # >= 5 minutes a setup: the start-up costs amortise
"""

from __future__ import annotations

import argparse
import itertools
import json
import pydoc_data.topics
import resource
import tempfile
import time
from pathlib import Path

from toedit import EditConfig, edit_texts, load_prior, run_edit
from toedit.config import IOConfig, RunConfig
from toedit.runs.executors import default_threads
from toedit.scoring import tokenize

DOCS_PER_BATCH = IOConfig().docs_per_batch


def corpus_slice(prior, tokens: int, chunk_chars: int) -> list[dict]:
    """Python reference topics cut into documents of at most `chunk_chars`, until `tokens` tokens (the
    topics hold about 113,000 tokens; past that they are taken again, with new ids)."""
    docs, total = [], 0
    topics = pydoc_data.topics.topics
    for lap in itertools.count():
        for key in sorted(topics):
            text = topics[key]
            for start in range(0, len(text), chunk_chars):
                piece = text[start : start + chunk_chars]
                docs.append({"id": f"{key}/{start}" + (f"/{lap}" if lap else ""), "text": piece})
                total += len(tokenize(prior, [piece])[0][0])
                if total >= tokens:
                    return docs
    raise AssertionError("unreachable")


def write_shards(docs: list[dict], root: Path, shards: int) -> Path:
    src = root / "in"
    src.mkdir()
    per = -(-len(docs) // shards)
    for s in range(shards):
        with open(src / f"part-{s:03d}.jsonl", "w", encoding="utf-8") as fh:
            for doc in docs[s * per : (s + 1) * per]:
                fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return src


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that have been waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bare_loop(model: str, docs: list[dict], config: EditConfig) -> tuple[float, float, int]:
    """(seconds with the prior's load, seconds of the loop alone, tokens) without the run layer."""
    t0 = time.perf_counter()
    prior = load_prior(model, "cpu")
    t1 = time.perf_counter()
    tokens = 0
    for i in range(0, len(docs), DOCS_PER_BATCH):
        batch = docs[i : i + DOCS_PER_BATCH]
        results = edit_texts([d["text"] for d in batch], prior, config, ids=[d["id"] for d in batch])
        tokens += sum(r.stats.n_tokens for r in results)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, tokens


def timed_run(src: Path, out: Path, config: EditConfig, run: RunConfig) -> tuple[float, int]:
    t0 = time.perf_counter()
    summary = run_edit([str(src)], str(out), config, run=run)
    if summary.failed:
        raise RuntimeError(f"shards failed: {summary.failed}")
    return time.perf_counter() - t0, summary.stats["n_tokens"]


def data_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "data").iterdir())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=25_000, help="tokens in the corpus slice")
    ap.add_argument("--shards", type=int, default=8, help="input files the slice is written to")
    ap.add_argument("--chunk-chars", type=int, default=2000, help="characters per document")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threshold", type=float, default=0.99)
    ap.add_argument("--repeats", type=int, default=1, help="rounds over all setups (the fastest is kept)")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = ap.parse_args()

    config = EditConfig(threshold=args.threshold)
    docs = corpus_slice(load_prior(args.model, "cpu"), args.tokens, args.chunk_chars)

    def run_config(**kw) -> RunConfig:
        return RunConfig(model=args.model, device="cpu", progress=False, **kw)

    setups = {
        "local, 1 worker (in process)": run_config(),
        "local, 2 workers": run_config(workers=2),
    }
    if not args.no_ray:
        setups["ray, 2 actors"] = run_config(executor="ray", workers=2)
    best: dict[str, tuple[float, float]] = {}  # name -> (seconds, CPU seconds) of the fastest round
    outputs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = write_shards(docs, root, args.shards)
        for r in range(args.repeats):  # rounds interleave the setups, so load drifts hit all of them
            cpu0 = cpu_seconds()
            with_load, loop_only, tokens = bare_loop(args.model, docs, config)
            _keep(best, "bare loop (load + edit_texts)", with_load, cpu_seconds() - cpu0)
            for i, (name, run) in enumerate(setups.items()):
                out = root / f"round{r}-run{i}"
                cpu0 = cpu_seconds()
                seconds, n = timed_run(src, out, config, run)
                assert n == tokens, (name, n, tokens)
                _keep(best, name, seconds, cpu_seconds() - cpu0)
                outputs.append(data_bytes(out))
        identical = all(o == outputs[0] for o in outputs)

    print(
        f"corpus: {len(docs)} documents, {tokens:,} tokens in {args.shards} shards; "
        f"{default_threads(1)} cores; best of {args.repeats} rounds"
    )
    print(
        f"bare loop without the prior's load (last round): {loop_only:.1f} s ({tokens / loop_only:,.0f} tokens/s)"
    )
    base, base_cpu = best["bare loop (load + edit_texts)"]
    print(f"{'':32} {'seconds':>8} {'tokens/s':>9} {'time / bare':>12} {'CPU s':>8} {'CPU / bare':>11}")
    for name, (seconds, cpu) in best.items():
        # Ray's actors are children of its raylet, not of this process: their CPU time is not seen here
        cpu_cols = (
            f"{'n/a':>8} {'n/a':>11}" if name.startswith("ray") else f"{cpu:8.1f} {cpu / base_cpu:11.3f}"
        )
        print(f"{name:32} {seconds:8.1f} {tokens / seconds:9,.0f} {seconds / base:12.3f} {cpu_cols}")
    print(f"\nedited data byte-identical across executors and rounds: {'yes' if identical else 'NO'}")
    if not identical:
        raise SystemExit(1)


def _keep(best: dict[str, tuple[float, float]], name: str, seconds: float, cpu: float) -> None:
    if name not in best or seconds < best[name][0]:
        best[name] = (seconds, cpu)


if __name__ == "__main__":
    main()
