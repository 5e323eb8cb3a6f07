"""Experiments: synthetic generation, a tiny-LM trainer, synthetic-share mixing and model-collapse chains."""

from .collapse import CollapseConfig, run_collapse
from .editrounds import EditRoundsConfig, run_edit_rounds
from .generate import GenerateConfig, generate_texts, opening_prompts, run_generate, topic_prompts
from .mix import MixConfig, run_mix
from .results import run_all
from .tinylm import TrainConfig, evaluate
from .train import train_tinylm

__all__ = [
    "CollapseConfig",
    "EditRoundsConfig",
    "GenerateConfig",
    "MixConfig",
    "TrainConfig",
    "evaluate",
    "generate_texts",
    "opening_prompts",
    "run_all",
    "run_collapse",
    "run_edit_rounds",
    "run_generate",
    "run_mix",
    "topic_prompts",
    "train_tinylm",
]
