"""`toedit experiment benefit`: does editing help? A package: `config` (options, presets, endpoints), `data`
(corpora, one normalisation, overlap), `arms` (H, E, E-rate, E-text, E-word, R), `settings` (pretrain, cpt,
sft behind one protocol), `items` (evaluation items), `lm` (models, evaluation), `stats` (families, verdicts,
the moved rule), `report` (the page section) and `run` (the driver)."""

from .arms import Calibrated, build_arms, calibrate_arms, matched_random
from .config import ARM_KINDS, BENEFIT_QUICK, SETTINGS, BenefitConfig, load_preset
from .data import load_setting_data, normalise_text, remove_overlap, whitespace_stats
from .report import benefit_markdown, setting_markdown
from .run import rerender, run_benefit, run_setting
from .settings import pretrain_config, sft_example, trainable_copy

__all__ = [
    "ARM_KINDS",
    "BENEFIT_QUICK",
    "SETTINGS",
    "BenefitConfig",
    "Calibrated",
    "benefit_markdown",
    "build_arms",
    "calibrate_arms",
    "load_preset",
    "load_setting_data",
    "matched_random",
    "normalise_text",
    "pretrain_config",
    "remove_overlap",
    "rerender",
    "run_benefit",
    "run_setting",
    "setting_markdown",
    "sft_example",
    "trainable_copy",
    "whitespace_stats",
]
