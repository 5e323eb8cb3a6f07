"""CLI verbs of the experiments capability (`toedit generate`, `train`, `experiment ...`); registered by
`toedit.cli`. Each verb's options are one dataclass; the experiment's own settings are its config section."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import Verb, opt, section
from .benefit import BENEFIT_QUICK, BenefitConfig
from .collapse import COLLAPSE_QUICK, CollapseConfig
from .generate import GenerateConfig
from .mix import MIX_QUICK, MixConfig
from .tinylm import TrainConfig

DEFAULT_HUMAN = ["data/austen"]


@dataclass
class GenerateOptions:
    """`toedit generate`: synthetic documents from the prior, prompted by human openings or topics."""

    inputs: list[str] = opt(
        [], "human documents: their first tokens are the prompts", positional=True, nargs="*"
    )
    output: str | None = opt(None, "output records (.jsonl[.gz])", flags=("-o",), required=True)
    topics: str | None = opt(None, "one topic per line, used as the prompt (instead of INPUT)")
    model: str = opt("default", "prior (default: the embedded SmolLM2-135M, no chat template)")
    text_field: str = opt("text", "field holding the human text")
    id_field: str | None = opt("id", "field holding the document id")
    config: GenerateConfig = section(GenerateConfig, "generation options")


@dataclass
class TrainOptions:
    """`toedit train`: train a tiny Llama from scratch; report held-out perplexity."""

    inputs: list[str] = opt([], "training documents", positional=True, nargs="*", required=True)
    output: str | None = opt(None, "save model, tokenizer and metrics.json here", flags=("-o",))
    heldout: list[str] = opt([], "held-out documents for the perplexity", nargs="*")
    text_field: str = opt("text", "field holding the text")
    config: TrainConfig = section(TrainConfig, "model and training options")


@dataclass
class MixOptions:
    """`toedit experiment mix`: held-out human PPL vs synthetic share of the training tokens."""

    human: list[str] = opt(DEFAULT_HUMAN, "human corpus", nargs="+")
    output: str = opt("runs/mix", "output directory", flags=("-o",), param="out_dir")
    quick: bool = opt(False, "the quick setting (minutes on 2 CPU cores)", cli_only=True)
    config: MixConfig = section(MixConfig, "mixing options")


@dataclass
class CollapseOptions:
    """`toedit experiment collapse`: replace / accumulate / ToEdit generation chains of tiny LMs."""

    human: list[str] = opt(DEFAULT_HUMAN, "human corpus", nargs="+")
    output: str = opt("runs/collapse", "output directory", flags=("-o",), param="out_dir")
    quick: bool = opt(False, "the quick setting (minutes on 2 CPU cores)", cli_only=True)
    config: CollapseConfig = section(CollapseConfig, "collapse options")


@dataclass
class BenefitOptions:
    """`toedit experiment benefit`: does editing help? Human vs edited arms (H, E, E-rate, E-word, R) trained
    paired by seed: pretrain / cpt / sft, deltas vs H with 95 % intervals and verdicts."""

    output: str = opt("runs/benefit", "output directory", flags=("-o",), param="out_dir")
    quick: bool = opt(
        False,
        "the quick setting: presets/benefit_quick.toml (about an hour on a 2-core CPU; measured: docs/experiments.md)",
        cli_only=True,
    )
    results: str | None = opt(None, "write the marked benefit section of this page (e.g. docs/RESULTS.md)")
    command: str | None = opt(None, "the command shown on the results page (default: this command line)")
    config: BenefitConfig = section(BenefitConfig, "benefit options")


@dataclass
class AllOptions:
    """`toedit experiment all`: theory + mix + collapse; writes the results page."""

    human: list[str] = opt(DEFAULT_HUMAN, "human corpus", nargs="+")
    output: str = opt("runs/experiments", "output directory", flags=("-o",), param="out_dir")
    quick: bool = opt(False, "the quick setting (about an hour on 2 CPU cores)")
    results: str | None = opt("docs/RESULTS.md", "results page (figures beside it as exp_*.png)")
    seeds: str | None = opt(None, "override the seeds of mix and collapse, e.g. 0,1,2")
    threads: int = opt(0, "torch threads (0: torch's default)")
    resume: bool = opt(True, "reuse mix/collapse results in OUTPUT computed with the same configuration")
    command: str | None = opt(None, "the command shown on the results page (default: this command line)")


def _quick(presets: dict[str, Any]):
    """Apply the quick preset to the options that were not given (flags and config files win)."""

    def prepare(options: Any, given: set[str]) -> Any:
        if options.quick:
            keep = {k: v for k, v in presets.items() if k not in given}
            options.config = dataclasses.replace(options.config, **keep)
        return options

    return prepare


def _record_command(options: Any, given: set[str]) -> Any:
    if options.command is None and sys.argv and "toedit" in sys.argv[0]:
        options.command = "toedit " + " ".join(sys.argv[1:])
    return options


def _benefit_prepare(options: BenefitOptions, given: set[str]) -> BenefitOptions:
    return _record_command(_quick(BENEFIT_QUICK)(options, given), given)


def _show_benefit(result, options) -> int:
    print((Path(options.output) / "benefit.md").read_text())
    print(f"{result['seconds'] / 60:.1f} min")
    return 0


def _show_json(result, options) -> int:
    print(json.dumps(result, indent=2))
    return 0


def _show_train(result, options) -> int:
    print(json.dumps({k: v for k, v in result["metrics"].items() if k != "losses"}, indent=2))
    return 0


def _show_table(result, options) -> int:
    print(result["table"] + "\n\n" + result["statement"])
    return 0


def _show_all(out, options) -> int:
    from .results import findings

    print("\n".join(findings(out["theory"], out["mix"], out["collapse"], out["mix_once"], out["editrounds"])))
    if options.results:
        print(f"\nwrote {options.results}")
    return 0


VERBS = (
    Verb("generate", GenerateOptions, "toedit.experiments.generate:run_generate", _show_json),
    Verb("train", TrainOptions, "toedit.experiments.train:run_train", _show_train),
    Verb("experiment mix", MixOptions, "toedit.experiments.mix:run_mix", _show_table, _quick(MIX_QUICK)),
    Verb(
        "experiment collapse",
        CollapseOptions,
        "toedit.experiments.collapse:run_collapse",
        _show_table,
        _quick(COLLAPSE_QUICK),
    ),
    Verb("experiment all", AllOptions, "toedit.experiments.results:run_all", _show_all, _record_command),
    Verb(
        "experiment benefit",
        BenefitOptions,
        "toedit.experiments.benefit.run:run_benefit",
        _show_benefit,
        _benefit_prepare,
    ),
)
