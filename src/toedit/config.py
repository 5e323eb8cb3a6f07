"""The option sections shared by the run verbs (score, edit, io, run): one schema for Python, CLI flags and
config files (see `toedit.options`). Every field carries its help text."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .options import ConfigError, opt

__all__ = ["ConfigError", "EditConfig", "IOConfig", "RunConfig", "ScoreConfig"]

STRATEGIES = ("resample", "resample+drop", "drop")
EXECUTORS = ("local", "ray")
COMPILE_MODES = ("auto", "on", "off")
# Each round re-scores the whole text (a full pass of the prior) and keeps its own counts and histogram in
# every marker, so N rounds cost N edits; the paper stops at 3 and the collapse curves flatten within tens.
# 100 leaves room for long studies and refuses typos such as 1000000 (a run that would never end).
MAX_ROUNDS = 100
_f = opt


def devices_value(value: Any) -> str | None:
    """GPU ids as "0,1": from a flag ("0,1"), or from a config file (0, "0,1" or [0, 1])."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected GPU ids such as 0,1, got {value!r}")
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    ids = [str(d).strip() for d in items]
    if not ids or not all(d.isdigit() for d in ids) or any(isinstance(d, bool) for d in items):
        raise ValueError(f"expected comma-separated GPU ids such as 0,1,2,3, got {value!r}")
    return ",".join(ids)


@dataclass
class ScoreConfig:
    """How the prior scores documents."""

    window: int | None = _f(None, "tokens per scoring window (default: the model's context, at most 2048)")
    stride: int | None = _f(
        None, "window advance; every token keeps >= window-stride left context (default 7/8 window)"
    )
    token_budget: int = _f(2048, "padded tokens per forward batch (CPU: 1-2K is fastest; GPU: larger)")
    head_chunk: int = _f(512, "positions per LM-head + log-softmax chunk (bounds logits memory)")
    compile: str = _f(
        "auto",
        "torch.compile the decoder layers and the head's statistics: auto (on for a bf16 or bf32 body on CPU "
        "when the input is large enough to pay back the seconds compiling takes, ~16K tokens estimated from "
        "the files' sizes: faster and closer to fp32 than eager) | on | off",
        choices=COMPILE_MODES,
    )
    store_k: int = _f(8, "top-k candidates stored per position in scores/ (for analysis)")
    entropy: bool = _f(False, "also compute the full-distribution entropy per position")
    context_token: str = _f(
        "auto",
        "left context prepended so the first token is scored: auto (BOS if the tokenizer adds one, else "
        "<|endoftext|>, else EOS) | none (the official code's conditioning: no prefix, first token unscored "
        "and kept) | a token string or id",
    )

    def validate(self) -> None:
        if self.window is not None and self.window < 2:
            raise ConfigError("window must be >= 2")
        if self.stride is not None and self.stride < 1:
            raise ConfigError("stride must be >= 1")
        if self.window is not None and self.stride is not None and self.stride > self.window - 1:
            raise ConfigError("stride must be < window (each window needs a token of context)")
        if self.token_budget < 1 or self.head_chunk < 1 or self.store_k < 0:
            raise ConfigError("token_budget and head_chunk must be >= 1, store_k >= 0")


@dataclass
class EditConfig:
    """The ToEdit rule (parity with the official code by default)."""

    threshold: float = _f(0.99, "resample tokens whose probability is strictly above this")
    top_k: int = _f(8, "candidates = top-k plus the original token; 0 = full vocabulary")
    beta: float = _f(1.5, "candidate weights softmax(logprob / beta)")
    low: float = _f(0.001, "drop tokens with probability below this (drop strategies)")
    strategy: str = _f("resample", "resample | resample+drop | drop", choices=STRATEGIES)
    exclude_original: bool = _f(False, "resample among the other candidates only")
    seed: int = _f(0, "random seed; one stream per (seed, document id, round)")
    rounds: int = _f(1, "editing rounds; round r re-scores round r-1's output")
    target_change_rate: float | None = _f(
        None, "choose the threshold so this fraction of scored tokens is expected to really change"
    )
    target_selected_rate: float | None = _f(None, "choose the threshold so this fraction is above it")
    calibration_docs: int = _f(256, "documents sampled (seeded) to choose the threshold for a target rate")
    record_spans: bool = _f(
        False, "keep every edit span [start, end, old, new, p, round, candidates] for audit"
    )
    boundary: str = _f(
        "none",
        "none | word: edit only tokens that are a whole word, replaced only by candidates that start a word",
        choices=("none", "word"),
    )

    def validate(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.top_k < 0:
            raise ConfigError("top_k must be >= 0 (0 = full vocabulary)")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ConfigError(f"beta must be a finite number > 0, got {self.beta}")
        if not 0.0 <= self.low <= 1.0:
            raise ConfigError("low must be in [0, 1]")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise ConfigError(
                f"rounds must be in [1, {MAX_ROUNDS}] (each round is a full re-scoring pass), got {self.rounds}"
            )
        if self.boundary not in ("none", "word"):
            raise ConfigError(f"boundary must be none or word, got {self.boundary!r}")
        if self.boundary == "word" and (self.top_k == 0 or self.strategy != "resample"):
            raise ConfigError("boundary word needs strategy resample and top_k > 0 (candidates are checked)")
        if self.target_change_rate is not None and self.target_selected_rate is not None:
            raise ConfigError("give at most one of target_change_rate and target_selected_rate")
        for rate in (self.target_change_rate, self.target_selected_rate):
            if rate is not None and not 0.0 <= rate <= 1.0:
                raise ConfigError(f"target rates must be in [0, 1], got {rate}")
        if (self.target_change_rate is not None or self.target_selected_rate is not None) and self.top_k == 0:
            raise ConfigError("target rates need --top-k > 0")
        if self.calibration_docs < 1:
            raise ConfigError(f"calibration_docs must be >= 1, got {self.calibration_docs}")


@dataclass
class IOConfig:
    """Which fields are read and how outputs are written."""

    text_field: str = _f("text", "field holding the text to edit")
    id_field: str | None = _f("id", "field holding the document id (records without it: <shard>:<line>)")
    messages_field: str | None = _f(None, "chat data: edit the turns of this list of {role, content}")
    roles: str = _f("assistant", "comma-separated roles edited in --messages-field mode")
    response_field: str | None = _f(None, "instruction data: edit only this field")
    inline_stats: bool = _f(True, "add a 'toedit' stats object to every output record (else scores/ only)")
    save_topk: bool = _f(False, "store top-k ids/log-probs per token in scores/ (large)")
    max_errors: int | None = _f(None, "abort when more bad records than this are found (default: never)")
    docs_per_batch: int = _f(64, "documents read and scored together (bounds memory)")

    def validate(self) -> None:
        if self.docs_per_batch < 1:
            raise ConfigError(f"docs_per_batch must be >= 1, got {self.docs_per_batch}")
        if self.max_errors is not None and self.max_errors < 0:
            raise ConfigError(
                f"max_errors must be >= 0 (0: stop at the first bad record), got {self.max_errors}"
            )


@dataclass
class RunConfig:
    """Where and how a run executes."""

    model: str = _f("default", "prior: 'default' (embedded SmolLM2-135M), a .gguf file, an HF dir or hub id")
    device: str | None = _f(None, "cpu | cuda | cuda:N (default: cuda if available)")
    dtype: str | None = _f(
        "auto",
        "auto | float32 | bf32 | bfloat16 | float16 (auto: bf16 on CUDA and on CPUs with AMX/AVX512-BF16, "
        "else fp32; float32 is the exact reference; bf32, CPU only: fp32 weights and activations, matmuls "
        "with bf16 inputs and fp32 outputs: slower than bf16, closer to fp32)",
    )
    trust_remote_code: bool = _f(False, "allow custom model code from the model directory")
    overwrite: bool = _f(False, "reuse RUN_DIR even if its config differs (drops its outputs)")
    progress: bool = _f(True, "show progress bars")
    executor: str = _f(
        "local", "local (worker processes) | ray (actor pool; needs the [ray] extra)", choices=EXECUTORS
    )
    workers: int = _f(1, "worker processes (local) or actors (ray), one model each; 1 = in this process")
    devices: str | None = _f(
        None, "comma-separated GPU ids, one worker per GPU, e.g. 0,1,2,3", convert=devices_value
    )
    rank: int | None = _f(
        None, "manual launch: run shards i with i mod world_size == rank (default $SLURM_ARRAY_TASK_ID)"
    )
    world_size: int | None = _f(None, "manual launch: how many launches share RUN_DIR")
    ray_address: str | None = _f(None, "Ray cluster to join (e.g. auto); default: a local ray.init")
    max_retries: int = _f(2, "retries of a shard whose worker died or raised; then it is reported as failed")
    shard_lines: int | None = _f(
        None, "split JSONL inputs into shards of this many lines (balance, finer resume)"
    )

    def validate(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.workers < 1 or self.max_retries < 0:
            raise ConfigError("workers must be >= 1 and max_retries >= 0")
        if self.shard_lines is not None and self.shard_lines < 1:
            raise ConfigError("shard_lines must be >= 1")
        if self.world_size is not None and self.world_size < 1:
            raise ConfigError("world_size must be >= 1")
        if self.rank is not None and (self.world_size is None or not 0 <= self.rank < self.world_size):
            raise ConfigError("rank needs --world-size and must be in [0, world_size)")
        try:
            self.devices = devices_value(self.devices)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
