"""torch.compile for CPU scoring (the prior's decoder layers; the head's slice statistics are compiled in
`lmhead._fused_slice_stats`), whether it is on, and the bf16 matmul math of `--dtype bf32`.

Inductor fuses what eager runs as separate passes over memory (RMSNorm, rotary embeddings, SiLU x up, the
residual adds; the head's bf16 -> fp32 conversion, block maxima and exp-sum) and keeps the fused
intermediates in fp32. With a bf16 body that is faster and closer to fp32 than eager (measured in
`benchmarks/bench_edit.py`; docs/benchmarks.md). The layers are compiled once per process with dynamic shapes
(all layers share one graph); compilation takes some seconds, cached on disk by inductor across processes.

`compile="auto"` turns it on for a bf16 or bf32 body on CPU only: `--dtype float32` stays the exact eager
reference and CUDA runs eager. Given the input's size (runs pass an estimate from the input files' bytes,
`estimate_tokens`), `auto` also needs at least COMPILE_MIN_TOKENS tokens: compilation costs seconds (and the
inductor import), more than it saves on a few short documents. If compilation fails (an architecture dynamo cannot trace), scoring warns once
and continues eagerly. `body_math` sets the bf16 matmul math of a bf32 prior (`--dtype bf32`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import torch

from .config import COMPILE_MODES
from .prior import Prior

log = logging.getLogger(__name__)


def __getattr__(name: str):
    """`CompileError`, what a failed compilation raises, imported lazily: torch._dynamo costs ~1 s to import."""
    if name == "CompileError":
        import torch._dynamo

        return torch._dynamo.exc.TorchDynamoException
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_LAYER_LISTS = ("layers", "h", "blocks", "decoder_layers")  # where HF models keep their decoder blocks


# `auto` compiles only inputs of at least this many tokens. Compiling costs seconds before the first score
# (importing inductor ~2 s, tracing and loading the cached kernels ~1-8 s on 2 busy cores with inductor's disk
# cache warm, ~20 s cold; `benchmarks/bench_startup.py`), which dominates a trial on a few lines. Above this
# size compiled is kept: it is ~1.07x eager bf16 (pays back its time from ~100K tokens) and closer to fp32
# from the first token (README "Benchmarks"), which matters more for a real run than a few seconds.
COMPILE_MIN_TOKENS = 16_384
BYTES_PER_TOKEN = 4  # English text in a BPE vocabulary of ~50K: ~4 characters per token
COMPRESSION_RATIO = 4  # gzip / zstd / parquet text: bytes on disk x this ~ the text's bytes


def estimate_tokens(files: dict[str, tuple[int, bool]]) -> int:
    """Tokens in input files {path: (bytes on disk, compressed)}, from their size alone (no reading)."""
    return (
        sum(size * (COMPRESSION_RATIO if packed else 1) for size, packed in files.values()) // BYTES_PER_TOKEN
    )


def use_compile(mode: str, prior: Prior, tokens: int | None = None) -> bool:
    """Whether scoring compiles: `on`, `off`, or `auto` = a bf16 or bf32 body on CPU (not after a failure)
    and, when the input's size is given (`tokens`, an estimate), at least COMPILE_MIN_TOKENS of it."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if prior.compile_state.failed:
        return False
    if mode == "auto":
        large = tokens is None or tokens >= COMPILE_MIN_TOKENS
        fast_body = prior.dtype == torch.bfloat16 or prior.dtype_name == "bf32"
        return large and prior.device.type == "cpu" and fast_body
    return mode == "on"


def resolved_compile(mode: str, prior: Prior, tokens: int | None = None) -> str:
    """The mode as it applies to this prior (and input size): on | off (for manifests and fingerprints)."""
    return "on" if use_compile(mode, prior, tokens) else "off"


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The ModuleList of decoder blocks of an HF causal LM's base model, or None if it has none we know."""
    base = getattr(model, "base_model", model)
    for name in _LAYER_LISTS:
        layers = getattr(base, name, None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers):
            return layers
    return None


_swap_lock = threading.Lock()


@contextlib.contextmanager
def compiled_layers(prior: Prior) -> Iterator[bool]:
    """Inside, the prior's decoder layers are their compiled wrappers (made once per prior); outside, the
    model is the eager one again (generation and training code never see the wrappers). Reentrant and safe
    for threads sharing a prior (the last one out restores the eager layers). Yields whether compiled layers
    are in place (False for a model without a decoder-layer list we know, with a warning once)."""
    layers = decoder_layers(prior.model)
    state = prior.compile_state
    if layers is None:
        if not state.warned:
            state.warned = True
            log.warning("compile: no decoder-layer list found in %s; scoring runs eagerly", prior.name)
        yield False
        return
    with _swap_lock:
        if state.compiled is None:
            state.eager = list(layers)
            state.compiled = [torch.compile(m, dynamic=True) for m in state.eager]
        if not state.users:
            for i, m in enumerate(state.compiled):
                layers[i] = m
        state.users += 1
    try:
        yield True
    finally:
        with _swap_lock:
            state.users -= 1
            if not state.users:
                for i, m in enumerate(state.eager):
                    layers[i] = m


_bf32 = {"users": 0, "saved": None}  # process-wide, as the oneDNN setting it guards


@contextlib.contextmanager
def bf16_matmul_math() -> Iterator[None]:
    """Inside, fp32 matmuls run with oneDNN's fp32 precision "bf16" (bf16 inputs, fp32 accumulation and
    output). The setting is process-wide: the first user sets it, the last one out restores what it was."""
    matmul = torch.backends.mkldnn.matmul
    with _swap_lock:
        if not _bf32["users"]:
            _bf32["saved"], matmul.fp32_precision = matmul.fp32_precision, "bf16"
        _bf32["users"] += 1
    try:
        yield
    finally:
        with _swap_lock:
            _bf32["users"] -= 1
            if not _bf32["users"]:
                matmul.fp32_precision = _bf32["saved"]


def body_math(prior: Prior) -> contextlib.AbstractContextManager:
    """`bf16_matmul_math` for a bf32 prior (`--dtype bf32`), nothing for any other."""
    return bf16_matmul_math() if prior.dtype_name == "bf32" else contextlib.nullcontext()


def give_up(prior: Prior, error: BaseException) -> None:
    """Record a compilation failure: this prior scores eagerly from now on."""
    prior.compile_state.failed = True
    log.warning("compile failed (%s: %s); scoring continues eagerly", type(error).__name__, error)
