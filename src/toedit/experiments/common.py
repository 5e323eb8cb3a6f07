"""Shared by the experiments: set-up (`prepare`, presets), stored results, the tiny LM and sampling configs of
an experiment config, the unigram level, machine information and marked page sections (a block of a markdown
page that one experiment owns, between `<!-- NAME:start -->` and `<!-- NAME:end -->`)."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..options import opt
from .generate import GenerateConfig
from .tinylm import DEVICES, TrainConfig, mlp_width


@dataclass
class TinyLMOptions:
    """Options shared by the tiny-LM experiments (mix, collapse): device, held-out set, sampling, the tiny LM."""

    device: str = opt(
        "auto",
        "where the prior generates/scores and the tiny LMs train: cpu | cuda | auto (cuda when available; on "
        "CUDA the matmuls run in bf16)",
        choices=DEVICES,
    )
    heldout_share: float = opt(0.1, "share of human documents (chapters) held out for the PPL, by id hash")
    heldout_segments: int = opt(200, "held-out human segments the PPL is measured on")
    temperature: float = opt(1.0, "sampling temperature of the generated text")
    top_p: float = opt(0.95, "nucleus sampling mass (1 = off)")
    top_k: int = opt(0, "sample among the k most likely tokens only (0 = off)")
    seq_len: int = opt(128, "tiny LM: sequence length")
    batch_size: int = opt(8, "tiny LM: sequences per step")
    lr: float = opt(3e-3, "tiny LM: peak learning rate")
    hidden: int = opt(192, "tiny LM: hidden size")
    layers: int = opt(4, "tiny LM: decoder layers")
    vocab: int = opt(4096, "tiny LM: BPE size (trained on the training texts)")
    threads: int = opt(0, "torch threads (0: leave as is)")


def machine() -> str:
    """CPU model, logical CPUs, torch version and threads, Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}{gpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"thread(s), Python {platform.python_version()}"
    )


def load_average() -> str:
    """The 1/5/15-minute load averages ("n/a" where the OS has none)."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def marked_block(path: Path, name: str) -> str | None:
    """The text between the `name` markers of an existing page, if any."""
    start, end = markers(name)
    old = path.read_text() if path.exists() else ""
    if start not in old or end not in old:
        return None
    return old.split(start, 1)[1].split(end, 1)[0].strip("\n")


def write_marked(path: Path, name: str, md: str) -> None:
    """Replace (or append) the text between the `name` markers of `path`."""
    start, end = markers(name)
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{md}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def int_list(text: str | list, name: str) -> list[int]:
    if isinstance(text, list):
        return [int(x) for x in text]
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"{name}: expected comma-separated integers, got {text!r}") from exc


def lm_config(exp: Any, seed: int, tokens: int) -> TrainConfig:
    """The tiny LM of an experiment config (fields tokens, seq_len, batch_size, lr, hidden, layers, vocab)."""
    return TrainConfig(
        tokens=tokens,
        seq_len=exp.seq_len,
        batch_size=exp.batch_size,
        lr=exp.lr,
        hidden=exp.hidden,
        layers=exp.layers,
        intermediate=mlp_width(exp.hidden),
        tokenizer=f"bpe:{exp.vocab}",
        seed=seed,
        device=getattr(exp, "device", "auto"),
    )


def sampling_config(exp: Any, seed: int) -> GenerateConfig:
    """Length-matched continuations of `segment_tokens`-token segments prompted by their first tokens."""
    return GenerateConfig(
        prompt_tokens=exp.prompt_tokens,
        max_new_tokens=exp.segment_tokens - exp.prompt_tokens,
        temperature=exp.temperature,
        top_p=exp.top_p,
        top_k=exp.top_k,
        seed=seed,
        batch_size=exp.gen_batch_size,
    )


def prepare(config: Any, out_dir: str | Path) -> Path:
    """Set-up shared by the experiment runners: validate `config`, apply its `threads`, create `out_dir`."""
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def preset(cls: type, quick: bool, presets: dict[str, Any], **overrides: Any):
    """`cls()` with the quick preset (if asked) and then the given overrides applied."""
    names = {f.name for f in fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return replace(cls(), **{**(presets if quick else {}), **overrides})


def finished_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def verdict_fields(config: Any) -> set[str]:
    """Fields that only set verdict rules (margins): they do not change the runs, so a stored run is reused."""
    return {f.name for f in fields(config) if f.metadata.get("verdict")}


def stored_result(
    path: Path, config: dict[str, Any], human: list[str], ignore: set[str] = frozenset()
) -> dict[str, Any] | None:
    """A result file written for the same configuration (and inputs, where recorded), else None; keys in
    `ignore` (verdict-only settings) are not compared."""
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    want = {k: v for k, v in json.loads(json.dumps(config)).items() if k not in ignore}
    if {k: v for k, v in stored.get("config", {}).items() if k not in ignore} != want:
        return None
    if "human" in stored and stored["human"] != list(human):
        return None
    return stored


def unigram_ppl(rows: torch.Tensor, heldout: list[str], tokenizer) -> float:
    """Held-out PPL of an add-one unigram model of the training rows: the level a tiny LM must beat to have
    learnt more than word frequencies (each document's first token is not scored, as in `evaluate`)."""
    held = [x[1:] for x in tokenizer(heldout, add_special_tokens=False)["input_ids"]]
    return unigram_ppl_ids(rows, held, len(tokenizer))


def unigram_ppl_ids(rows: torch.Tensor, held: Sequence[Sequence[int]], vocab: int) -> float:
    """`unigram_ppl` on held-out token ids, every one of them scored."""
    ids = rows[rows >= 0].numpy()
    counts = np.bincount(ids, minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    parts = [np.asarray(h, dtype=np.int64) for h in held if len(h)]
    held_ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return float(math.exp(-logp[held_ids].mean())) if len(held_ids) else math.nan
