"""Start-up benchmark (not a test): where the first seconds of `toedit edit` on a few short documents go.

Two measurements, each in fresh processes (so imports and loads are really paid):
- the split: one child runs what `toedit edit` runs, in order, with timestamps: interpreter start, `import
  toedit.cli`, torch, transformers, the prior's load (weight hash, tokenizer, model), the first scoring call
  (with `--compile on` this includes torch.compile's tracing and inductor's code, cached on disk across
  processes), and a second scoring call of the same documents (the steady state the first call is compared with);
- the wall time of the whole command `toedit edit DOCS -o DIR` per `--compile` mode, best of --repeats.

Each step shows wall and CPU seconds (the child's own; its first line is the interpreter's start). `--src` times
another source tree (a checkout of an earlier commit) with the same child, for a before/after in one session.

Caches (the GGUF conversion, the weight-hash cache, inductor's code cache) are warmed by one discarded run
first, unless --cold: the numbers are those of the second run on a machine.

    python benchmarks/bench_startup.py                  # 2 one-line documents, compile auto / off / on
    python benchmarks/bench_startup.py --docs 5 --dtype float32
    python benchmarks/bench_startup.py --splits off --modes auto --src /tmp/old/src   # before/after
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "A second short line of text for the start-up test.",
    "Rivers carry sediment from the mountains down to the sea.",
    "She opened the window and listened to the rain.",
    "Every prime larger than two is an odd number.",
    "The museum closes at six on weekdays and at four on Sundays.",
]

# The child: the steps of `toedit edit` in order, timed (wall and this process's CPU seconds). Function wrappers
# split load_prior without copying it.
CHILD = r"""
import json, sys, time
T = [("interpreter start", float(sys.argv[1]), 0.0)]
def mark(name):
    T.append((name, time.time(), time.process_time()))
mark("python ready")
import toedit.cli  # noqa: F401  (what the command imports before parsing flags)
mark("import toedit.cli")
import torch
mark("import torch")
import toedit.runs  # noqa: F401  (the verb's module: pyarrow, numpy, toedit's run machinery)
mark("import toedit.runs")
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
mark("import transformers")
from toedit import prior as P
from toedit.config import ScoreConfig
from toedit.scoring import score_texts
split = {}
def timed(owner, name, label):
    fn = getattr(owner, name)
    def wrapper(*a, **k):
        t0, c0 = time.time(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            w, c = split.get(label, (0.0, 0.0))
            split[label] = (w + time.time() - t0, c + time.process_time() - c0)
    setattr(owner, name, wrapper)
timed(P, "content_hash", "weight hash")
timed(transformers.AutoTokenizer, "from_pretrained", "tokenizer")
timed(transformers.AutoModelForCausalLM, "from_pretrained", "model weights")
t0, c0 = time.time(), time.process_time()
prior = P.load_prior("default", dtype=sys.argv[3])
for label in ("weight hash", "tokenizer", "model weights"):
    w, c = split.get(label, (0.0, 0.0))
    t0, c0 = t0 + w, c0 + c
    T.append(("prior: " + label, t0, c0))
mark("prior: the rest")
texts = json.loads(sys.argv[2])
config = ScoreConfig(compile=sys.argv[4])
score_texts(texts, prior, config)
mark("first scoring (compile " + sys.argv[4] + ")")
score_texts(texts, prior, config)
mark("second scoring")
print(json.dumps({"steps": T, "dtype": prior.dtype_name}))
"""


SRC = ROOT / "src"  # the toedit source tree timed, unless --src names another


def _env(threads: int, src: Path = SRC) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(src) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def split(
    texts: list[str], dtype: str, compile_mode: str, threads: int, src: Path = SRC
) -> tuple[list[tuple[str, float, float]], str]:
    """(step, wall seconds, CPU seconds) of one fresh child process, and the dtype it resolved. The first
    step's CPU seconds are the interpreter's start-up."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, repr(time.time()), json.dumps(texts), dtype, compile_mode],
        env=_env(threads, src),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    steps = data["steps"]
    return [(name, t - steps[i][1], c - steps[i][2]) for i, (name, t, c) in enumerate(steps[1:])], data[
        "dtype"
    ]


def command_wall(
    docs: Path, dtype: str, compile_mode: str, threads: int, src: Path = SRC
) -> tuple[float, float]:
    """(wall, CPU) seconds of one `toedit edit DOCS -o DIR` in a fresh process. The CPU seconds (user + system)
    barely move with other jobs on the machine; on an idle machine wall is about that (most start-up work runs
    on one thread)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "toedit.cli", "edit", str(docs), "-o", str(Path(tmp) / "run")]
        cmd += ["--dtype", dtype, "--compile", compile_mode, "--no-progress"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        subprocess.run(cmd, env=_env(threads, src), capture_output=True, text=True, check=True)
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2, help=f"one-line documents (1-{len(LINES)})")
    ap.add_argument("--dtype", default="auto", help="the prior's --dtype")
    ap.add_argument("--modes", default="auto,off,on", help="--compile modes timed end to end")
    ap.add_argument("--splits", default="off,on", help="--compile modes of the step-by-step split")
    ap.add_argument("--repeats", type=int, default=2, help="end-to-end runs per mode (best is shown)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--cold", action="store_true", help="no warm-up run (measure whatever the caches hold)")
    ap.add_argument(
        "--src",
        type=Path,
        default=SRC,
        help="toedit source tree to time (another commit's, for a before/after)",
    )
    args = ap.parse_args(argv)
    src = args.src.resolve()
    texts = LINES[: max(1, min(args.docs, len(LINES)))]
    modes = [m for m in args.modes.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs.jsonl"
        docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        if not args.cold:  # GGUF conversion, weight-hash cache, inductor's code cache
            for mode in modes:
                command_wall(docs, args.dtype, mode, args.threads, src)
        print(
            f"# start-up of `toedit edit` on {len(texts)} one-line documents, {args.threads} threads, {src}"
        )
        for mode in [m for m in args.splits.split(",") if m]:
            steps, dtype = split(texts, args.dtype, mode, args.threads, src)
            wall, cpu = (sum(step[i] for step in steps[:-1]) for i in (1, 2))
            print(
                f"\n## split, --dtype {args.dtype} (= {dtype}), --compile {mode}: {wall:.1f} s wall, {cpu:.1f} s "
                "CPU to the scores"
            )
            print(f"  {'step':<34} {'wall':>8} {'CPU':>8}")
            for name, seconds, cpu_seconds in steps:
                print(f"  {name:<34} {seconds:6.2f} s {cpu_seconds:6.2f} s")
        print(
            f"\n## whole command (best of {args.repeats}), --dtype {args.dtype}; load average {os.getloadavg()[0]:.1f}"
        )
        for mode in modes:
            runs = [command_wall(docs, args.dtype, mode, args.threads, src) for _ in range(args.repeats)]
            wall, cpu = min(runs)
            print(f"  --compile {mode:<5} wall {wall:6.1f} s   CPU (user + system) {cpu:6.1f} s")


if __name__ == "__main__":
    main()
