"""Configuration of `experiment benefit`: settings, arms, seeds, budgets, primary endpoints and families.

The quick preset is a data file (`presets/benefit_quick.toml`, the same format as `--config`); `--quick` loads
it. Its budgets were sized from per-step timings measured on the 2-core machine
(`benchmarks/bench_benefit_steps.py` prints them and the estimate).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...config import ConfigError

SETTINGS = ("pretrain", "cpt", "sft")
ARM_KINDS = ("H", "E", "E-rate", "E-text", "E-word", "R")
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("auto", "float32", "bfloat16")
METRICS = {"ppl": False, "acc": True}  # metric -> higher is better


@dataclass
class BenefitConfig:
    """Settings, arms, seeds, data and budgets of `experiment benefit`."""

    setting: str = field(default="all", metadata={"help": "pretrain | cpt | sft | all"})
    model: str = field(
        default="default", metadata={"help": "prior that scores/edits (and, in cpt/sft, is trained)"}
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "training data of ONE setting: pretrain/cpt: JSONL/text files (comma-separated); sft: a "
            "chitchat-format JSON (default: novels in data/austen, the Python docs, chitchat-dataset)"
        },
    )
    heldout: str | None = field(
        default=None,
        metadata={
            "help": "held-out files of ONE setting (pretrain default: data/austen/persuasion.jsonl; cpt/sft "
            "default: 20 or 10 percent of documents/conversations by id hash)"
        },
    )
    arms: str = field(
        default="H,E,E-rate,E-text,E-word,R",
        metadata={
            "help": "arms, comma-separated: H (human), E (p > 0.99), E-rate (rate-calibrated), E-text (E-rate "
            "leaving whitespace-only tokens alone: editing words, not layout), E-word (word boundaries), R "
            "(random positions matched to E-rate per document and kind of change)"
        },
    )
    rates: str = field(
        default="0.02", metadata={"help": "target change rate(s) of E-rate/E-word/R, comma-separated"}
    )
    seeds: str = field(
        default="", metadata={"help": "seeds of every setting (default: 0-9 pretrain, 0-2 cpt and sft)"}
    )
    items: int = field(
        default=400, metadata={"help": "pretrain: multiple-choice items (fewer if the data lacks)"}
    )
    ft_items: int = field(
        default=400, metadata={"help": "cpt/sft: multiple-choice items (fewer if the data lacks)"}
    )
    bootstrap: int = field(default=2000, metadata={"help": "paired bootstrap resamples over items"})
    ppl_margin: float = field(
        default=0.02,
        metadata={
            "help": "margin of no effect for Δ held-out PPL, relative to H's mean (0.02: 2 %)",
            "verdict": True,
        },
    )
    acc_margin: float = field(
        default=0.0025,
        metadata={
            "help": "margin of no effect for Δ accuracy (0.0025: 0.25 points, the smallest effect the paper "
            "reports, so 'no effect' rules the paper's effect out)",
            "verdict": True,
        },
    )
    threads: int = field(default=0, metadata={"help": "torch threads (0: leave as is)"})
    device: str = field(
        default="auto",
        metadata={
            "help": "where the prior scores and the models train: cpu | cuda | auto (cuda when available; "
            "on CUDA the matmuls run under bf16 autocast)",
            "choices": DEVICES,
        },
    )
    normalise: bool = field(
        default=True,
        metadata={
            "help": "put every training, arm and held-out text of a setting through the setting's one "
            "normalisation before scoring (off: texts as read, which lets editing change the format)"
        },
    )
    overlap_words: int = field(
        default=6,
        metadata={
            "help": "held-out sentences of at least this many words that occur verbatim in the training "
            "texts are removed before the items are drawn (0: keep them)"
        },
    )
    moved_ppl: float = field(
        default=0.10,
        metadata={
            "help": "cpt/sft: H moved the prior when its mean held-out PPL is at least this share below the "
            "prior's and at least one seed's accuracy differs from the prior's; else no verdict",
            "verdict": True,
        },
    )
    pt_arms: str = field(default="", metadata={"help": "pretrain: its own arms (empty: --arms)"})
    cpt_arms: str = field(default="", metadata={"help": "cpt: its own arms (empty: --arms)"})
    sft_arms: str = field(default="", metadata={"help": "sft: its own arms (empty: --arms)"})
    ft_precision: str = field(
        default="auto",
        metadata={
            "help": "cpt/sft: matmul precision of the trained top layers: float32 | bfloat16 (autocast, fp32 "
            "weights) | auto (bf16 on CUDA and on CPUs with native bf16 matmuls, else fp32)",
            "choices": PRECISIONS,
        },
    )
    pt_primary: str = field(
        default="E:acc", metadata={"help": "pretrain: primary endpoint, ARM:METRIC (metric ppl or acc)"}
    )
    cpt_primary: str = field(default="E:acc", metadata={"help": "cpt: primary endpoint, ARM:METRIC"})
    sft_primary: str = field(default="E:acc", metadata={"help": "sft: primary endpoint, ARM:METRIC"})
    pt_family: str = field(
        default="all",
        metadata={
            "help": "pretrain: the tests Holm-adjusted together, ARM:METRIC comma-separated (all: every arm "
            "but H, both metrics); the rest of the arms are exploratory"
        },
    )
    cpt_family: str = field(default="all", metadata={"help": "cpt: the Holm family (as pt_family)"})
    sft_family: str = field(default="all", metadata={"help": "sft: the Holm family (as pt_family)"})
    # pretrain: the tiny Llama
    pt_docs: int = field(default=0, metadata={"help": "pretrain: training documents sampled (0: all)"})
    pt_tokens: int = field(default=2_000_000, metadata={"help": "pretrain: training tokens per run"})
    pt_hidden: int = field(default=192, metadata={"help": "pretrain: hidden size"})
    pt_layers: int = field(default=4, metadata={"help": "pretrain: decoder layers"})
    pt_vocab: int = field(default=4096, metadata={"help": "pretrain: BPE size (trained on the human texts)"})
    pt_seq_len: int = field(default=128, metadata={"help": "pretrain: sequence length"})
    pt_batch: int = field(default=16, metadata={"help": "pretrain: sequences per step"})
    pt_lr: float = field(default=3e-3, metadata={"help": "pretrain: peak learning rate"})
    # cpt / sft: the prior, top layers trained
    ft_layers: int = field(
        default=4, metadata={"help": "cpt/sft: top decoder layers trained (the rest frozen)"}
    )
    ft_lr: float = field(default=1e-4, metadata={"help": "cpt/sft: peak learning rate"})
    ft_batch: int = field(default=8, metadata={"help": "cpt/sft: sequences per step"})
    cpt_docs: int = field(default=0, metadata={"help": "cpt: training documents sampled (0: all)"})
    cpt_tokens: int = field(default=200_000, metadata={"help": "cpt: training tokens per run"})
    cpt_seq_len: int = field(default=256, metadata={"help": "cpt: sequence length"})
    sft_pairs: int = field(default=4000, metadata={"help": "sft: training (context, reply) pairs per run"})
    sft_context_turns: int = field(default=3, metadata={"help": "sft: previous turns kept as context"})
    sft_max_len: int = field(
        default=192, metadata={"help": "sft: tokens per pair (context cut from the left)"}
    )
    item_words: int = field(default=60, metadata={"help": "last-word items: context words kept"})

    def setting_list(self) -> list[str]:
        return list(SETTINGS) if self.setting == "all" else [self.setting]

    def seed_list(self, setting: str) -> list[int]:
        if self.seeds:
            return _ints(self.seeds, "seeds")
        return list(range(10)) if setting == "pretrain" else list(range(3))

    def for_setting(self, setting: str) -> BenefitConfig:
        """This configuration with the setting's own arm list (`pt_arms`, `cpt_arms`, `sft_arms`) as `arms`."""
        own = getattr(self, f"{_PREFIX[setting]}_arms")
        return replace(self, arms=own) if own else self

    def primary(self, setting: str) -> str:
        """The declared primary endpoint of `setting` as a test name ("E - H, acc")."""
        return _endpoint(getattr(self, f"{_PREFIX[setting]}_primary"))

    def family(self, setting: str) -> list[str] | None:
        """The declared family of `setting` as test names (None: every arm and metric). An arm kind without a
        rate (E-rate:acc) stands for that kind at every rate."""
        text = getattr(self, f"{_PREFIX[setting]}_family").strip()
        if text == "all":
            return None
        out = []
        for name in (_endpoint(x) for x in text.split(",") if x.strip()):
            arm, rest = name.split(" - ", 1)
            if arm in ARM_KINDS and arm not in ("H", "E"):
                out += [f"{arm}@{_pct(r)} - {rest}" for r in self.rate_list()]
            else:
                out.append(name)
        return out

    def rate_list(self) -> list[float]:
        try:
            rates = [float(x) for x in self.rates.split(",") if x.strip()]
        except ValueError as exc:
            raise ConfigError(f"rates: expected comma-separated numbers, got {self.rates!r}") from exc
        if not rates or any(not 0 < r < 1 for r in rates):
            raise ConfigError(f"rates must be in (0, 1), got {self.rates!r}")
        return rates

    def arm_names(self) -> list[str]:
        kinds = [a.strip() for a in self.arms.split(",") if a.strip()]
        bad = [a for a in kinds if a not in ARM_KINDS]
        if bad:
            raise ConfigError(f"unknown arm(s) {', '.join(bad)}; choose from {', '.join(ARM_KINDS)}")
        if "H" not in kinds:
            raise ConfigError("the arms must include H (every delta is against the human data)")
        if "R" in kinds and "E-rate" not in kinds:
            raise ConfigError("arm R matches E-rate's changes: include E-rate")
        names = []
        for kind in kinds:
            if kind in ("H", "E"):
                names.append(kind)
            else:
                names += [f"{kind}@{_pct(r)}" for r in self.rate_list()]
        return names

    def validate(self) -> None:
        if self.setting not in (*SETTINGS, "all"):
            raise ConfigError(f"setting must be pretrain, cpt, sft or all, got {self.setting!r}")
        if self.setting == "all" and (self.data or self.heldout):
            raise ConfigError(
                "--data/--heldout describe one setting: give --setting pretrain|cpt|sft with them"
            )
        self.arm_names()
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.ft_precision not in PRECISIONS:
            raise ConfigError(
                f"ft_precision must be one of {', '.join(PRECISIONS)}, got {self.ft_precision!r}"
            )
        for s in self.setting_list():
            names = self.for_setting(s).arm_names()
            fam, primary = self.family(s), self.primary(s)
            unknown = [t for t in fam or [] if t.split(" - ")[0] not in names or t.startswith("H ")]
            if unknown:
                raise ConfigError(f"{s}: the family names arms that are not run: {', '.join(unknown)}")
            if fam is not None and primary.split(" - ")[0] in names and primary not in fam:
                raise ConfigError(f"{s}: the primary endpoint {primary} must be in the family")
            seeds = self.seed_list(s)
            if len(seeds) < 2:
                raise ConfigError("give at least 2 seeds (the intervals are over seeds)")
            if len(set(seeds)) != len(seeds):
                raise ConfigError("seeds must be distinct")
        for name in (
            "items",
            "ft_items",
            "pt_tokens",
            "pt_hidden",
            "pt_layers",
            "pt_seq_len",
            "pt_batch",
            "ft_layers",
            "ft_batch",
            "cpt_tokens",
            "cpt_seq_len",
            "sft_pairs",
            "sft_max_len",
            "item_words",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if not 0 <= self.moved_ppl < 1 or self.overlap_words < 0:
            raise ConfigError("moved_ppl must be in [0, 1) and overlap_words >= 0")
        if self.pt_vocab < 300 or self.pt_lr <= 0 or self.ft_lr <= 0 or self.pt_docs < 0:
            raise ConfigError("pt_vocab must be >= 300, learning rates > 0, pt_docs >= 0")


PRESETS = Path(__file__).resolve().parent.parent / "presets"


def load_preset(name: str) -> dict:
    """A preset file of `presets/` (TOML, flat benefit options): {option: value}."""
    return tomllib.loads((PRESETS / f"benefit_{name}.toml").read_text())


BENEFIT_QUICK = load_preset("quick")
_PREFIX = {"pretrain": "pt", "cpt": "cpt", "sft": "sft"}


def _endpoint(text: str) -> str:
    arm, sep, metric = text.strip().rpartition(":")
    if not sep or metric not in METRICS:
        raise ConfigError(f"an endpoint is ARM:METRIC with METRIC ppl or acc, got {text!r}")
    return f"{arm} - H, {metric}"


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"{name}: expected comma-separated integers, got {text!r}") from exc


def _pct(rate: float) -> str:
    return f"{100 * rate:g}%"
