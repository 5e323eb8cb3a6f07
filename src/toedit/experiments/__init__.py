"""Experiments: synthetic generation, a tiny-LM trainer, synthetic-share mixing and model-collapse chains."""

from .collapse import CollapseConfig, run_collapse
from .editrounds import EditRoundsConfig, run_edit_rounds
from .generate import GenerateConfig, generate_texts, opening_prompts, run_generate, topic_prompts
from .mix import MixConfig, run_mix
from .results import run_all
from .tinylm import TrainConfig, evaluate, train_tinylm
from .verdicts import Verdict, effect, interval, paired_delta, t_quantile

__all__ = [
    "CollapseConfig",
    "EditRoundsConfig",
    "Verdict",
    "GenerateConfig",
    "MixConfig",
    "TrainConfig",
    "effect",
    "evaluate",
    "generate_texts",
    "interval",
    "opening_prompts",
    "paired_delta",
    "run_all",
    "run_collapse",
    "run_edit_rounds",
    "run_generate",
    "run_mix",
    "t_quantile",
    "topic_prompts",
    "train_tinylm",
]
