"""The configuration of `experiment collapse`: chains, seeds, corpus sizes, the tiny LM, sampling, the edit rule,
the margin of no effect and the quick preset."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ConfigError
from .common import TinyLMOptions, int_list, lm_config, sampling_config
from .generate import GenerateConfig
from .tinylm import TrainConfig

SETTINGS = ("human", "replace", "accumulate", "toedit", "toedit_fixed")


@dataclass
class CollapseConfig(TinyLMOptions):
    """Chains, seeds, corpus sizes, the tiny LM, sampling and the edit rule."""

    rounds: int = field(default=5, metadata={"help": "generations of each chain"})
    settings: str = field(
        default="human,replace,accumulate,toedit,toedit_fixed",
        metadata={"help": "chains, comma-separated, among " + ", ".join(SETTINGS)},
    )
    seeds: str = field(
        default="0,1,2",
        metadata={"help": "seeds, comma-separated (chains of one seed share data and initialisation)"},
    )
    human_segments: int = field(default=1000, metadata={"help": "human training segments of round 0"})
    segment_tokens: int = field(default=128, metadata={"help": "tiny-tokenizer tokens per segment"})
    prompt_tokens: int = field(
        default=16, metadata={"help": "tokens of each segment that prompt the next generation's text"}
    )
    own_docs: int = field(
        default=100, metadata={"help": "training documents scored for the PPL of a model on its own data"}
    )
    gen_batch_size: int = field(default=32, metadata={"help": "prompts generated together"})
    change_rate: float = field(
        default=0.05, metadata={"help": "ToEdit chains: target share of tokens really changed per round"}
    )
    edit_top_k: int = field(default=8, metadata={"help": "ToEdit chains: candidates drawn from (top-k)"})
    edit_beta: float = field(
        default=1.5, metadata={"help": "ToEdit chains: temperature of the candidate draw"}
    )
    tokens: int = field(default=200_000, metadata={"help": "training tokens per model"})
    ppl_margin: float = field(
        default=0.02,
        metadata={
            "help": "margin of no effect for held-out PPL differences, relative to the human control's mean at "
            "the last round (0.02: 2 %, below the 3.4 % the paper calls 'barely moves')",
            "verdict": True,
        },
    )

    def validate(self) -> None:
        if self.ppl_margin <= 0:
            raise ConfigError("ppl_margin must be > 0")
        if self.rounds < 1:
            raise ConfigError("rounds must be >= 1")
        bad = set(self.setting_list()) - set(SETTINGS)
        if bad or not self.setting_list():
            raise ConfigError(f"settings must be among {', '.join(SETTINGS)}, got {self.settings!r}")
        if not int_list(self.seeds, "seeds"):
            raise ConfigError("give at least one seed")
        if self.segment_tokens <= self.prompt_tokens:
            raise ConfigError("segment_tokens must exceed prompt_tokens")
        if not 0 < self.change_rate < 1:
            raise ConfigError("change_rate must be in (0, 1)")
        self.train_config(0).validate()
        self.generate_config(0).validate()

    def setting_list(self) -> list[str]:
        return [s.strip() for s in self.settings.split(",") if s.strip()]

    def train_config(self, seed: int) -> TrainConfig:
        return lm_config(self, seed, self.tokens)

    def generate_config(self, seed: int) -> GenerateConfig:
        return sampling_config(self, seed)


# quick: 3 rounds of the human control, replace and both ToEdit arms (accumulate only in the full setting);
# 200,000 tokens at batch 8 on 1,200 segments (~150K tokens of human text) gets the round-0 model to about half
# the unigram level's PPL (probe: 1,500 segments / 250K tokens -> 263 vs ~600; the results page states both);
# ~40 s per tiny LM with 1 thread, 39 models
COLLAPSE_QUICK = dict(
    rounds=3,
    settings="human,replace,toedit,toedit_fixed",
    human_segments=1200,
    heldout_segments=80,
    tokens=200_000,
    hidden=128,
    batch_size=8,
    own_docs=50,
)
