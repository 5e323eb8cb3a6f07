"""torch.compile for CPU scoring (the prior's decoder layers; the head's slice statistics are compiled in
`scoring._fused_slice_stats`), whether it is on, and the bf16 matmul math of `--dtype bf32`.

Inductor fuses what eager runs as separate passes over memory (RMSNorm, rotary embeddings, SiLU x up, the
residual adds; the head's bf16 -> fp32 conversion, block maxima and exp-sum) and keeps the fused
intermediates in fp32. With a bf16 body that is faster and closer to fp32 than eager (measured in
`benchmarks/bench_edit.py`; docs/benchmarks.md). The layers are compiled once per process with dynamic shapes
(all layers share one graph); compilation takes some seconds, cached on disk by inductor across processes.

`compile="auto"` turns it on for a bf16 or bf32 body on CPU only: `--dtype float32` stays the exact eager
reference and CUDA runs eager. Given the input's size (runs pass an estimate from the input files' bytes,
`estimate_tokens`), `auto` also needs at least COMPILE_MIN_TOKENS tokens: compilation costs seconds (and the
inductor import), more than it saves on a few short documents. If compilation fails (an architecture dynamo cannot trace), scoring warns once
and continues eagerly. `body_math` sets the bf16 matmul math of a bf32 prior (`--dtype bf32`), and runs an
eager fp32 body's linears through oneDNN where that is the faster fp32 GEMM (`onednn_fp32`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import torch

from .config import COMPILE_MODES
from .prior import Prior, cpu_vendor

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


def body_math(prior: Prior, eager: bool = True) -> contextlib.AbstractContextManager:
    """The body's matmul math: `bf16_matmul_math` for a bf32 prior (`--dtype bf32`), `onednn_linears` for an
    eager fp32 body where `onednn_fp32` holds, nothing for any other."""
    if prior.dtype_name == "bf32":
        return bf16_matmul_math()
    if eager and onednn_fp32(prior):
        return onednn_linears(prior)
    return contextlib.nullcontext()


# CPU vendors whose fp32 linears run through oneDNN instead of MKL. Measured on an AMD EPYC (Zen 4), 1 thread:
# oneDNN's fp32 GEMM 1.1-1.5x MKL's at the prior's shapes (M 57-1,677), fp32 scoring ~1.08x end to end; MKL
# dispatches its tuned AVX-512 kernels on Intel CPUs only. Intel keeps MKL (not measured).
ONEDNN_FP32_VENDORS = frozenset({"AuthenticAMD"})


def onednn_fp32(prior: Prior) -> bool:
    """Whether fp32 scoring on this prior runs its linears (body and LM head) through oneDNN: an fp32 prior on
    a CPU of ONEDNN_FP32_VENDORS with oneDNN built into torch. Still fp32 math (fp32 inputs, products and
    accumulation), in another summation order: log-probs move by fp32 rounding (mean |delta| vs an fp64
    forward 6.2e-6 against MKL's 3.9e-6 on the bench's corpus)."""
    return (
        prior.device.type == "cpu"
        and prior.dtype_name == "float32"
        and cpu_vendor() in ONEDNN_FP32_VENDORS
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear` through oneDNN's fp32 matmul (CPU, fp32 tensors, no autograd)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [None], "")


class _OneDnnLinear(torch.nn.Linear):
    """An nn.Linear whose inference forward is `onednn_linear` (swapped in by class, `onednn_linears`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dtype != torch.float32 or x.device.type != "cpu":
            return super().forward(x)
        return onednn_linear(x, self.weight, self.bias)


@contextlib.contextmanager
def onednn_linears(prior: Prior) -> Iterator[None]:
    """Inside, the plain nn.Linear modules of the prior's body run through oneDNN (`_OneDnnLinear`: the same
    module, parameters and state dict, another class); outside they are plain again. Reentrant and safe for
    threads sharing a prior (the last one out restores them)."""
    state = prior.compile_state
    with _swap_lock:
        if not state.onednn_users:
            for m in prior.model.base_model.modules():
                if type(m) is torch.nn.Linear:
                    m.__class__ = _OneDnnLinear
        state.onednn_users += 1
    try:
        yield
    finally:
        with _swap_lock:
            state.onednn_users -= 1
            if not state.onednn_users:
                for m in prior.model.base_model.modules():
                    if type(m) is _OneDnnLinear:
                        m.__class__ = torch.nn.Linear


def give_up(prior: Prior, error: BaseException) -> None:
    """Record a compilation failure: this prior scores eagerly from now on."""
    prior.compile_state.failed = True
    log.warning("compile failed (%s: %s); scoring continues eagerly", type(error).__name__, error)
