"""Synthetic text from a prior: KV-cache sampling prompted by human openings or topics (our Cosmopedia stand-in).

Each document draws from its own uniform stream keyed by (seed, document id), consumed one element per new
token by inverse-CDF sampling, so a document's text does not depend on which documents share its batch up to
floating-point differences between batch shapes (batches hold prompts of one length only: no padding).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..io import FieldSpec, InputError, list_shards, read_shard, write_jsonl_atomic
from ..io.records import BadRecord
from ..prior import Prior
from ..rng import doc_uniforms
from ..runs.rundir import RUN_DIRS

log = logging.getLogger(__name__)

_ROUND = 7  # stream index reserved for generation (editing rounds use 0, 1, ...)
_NUCLEUS_PROBE = 512


@dataclass
class GenerateConfig:
    """How synthetic documents are sampled."""

    prompt_tokens: int = field(
        default=32, metadata={"help": "tokens of each human document's opening used as its prompt"}
    )
    max_new_tokens: int = field(
        default=256,
        metadata={"help": "cap on new tokens per document (else: as many as the document has left)"},
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass (1 = off)"})
    top_k: int = field(default=0, metadata={"help": "sample among the k most likely tokens only (0 = off)"})
    seed: int = field(default=0, metadata={"help": "one random stream per (seed, prompt id)"})
    batch_size: int = field(default=8, metadata={"help": "prompts sampled together (same prompt length)"})
    limit: int | None = field(default=None, metadata={"help": "first N prompts only"})
    device: str = field(
        default="auto",
        metadata={
            "help": "where the prior generates: cpu | cuda | auto (cuda when available; bf16 on CUDA)",
            "choices": ("auto", "cpu", "cuda"),
        },
    )

    def validate(self) -> None:
        if self.prompt_tokens < 1:
            raise ConfigError("prompt_tokens must be >= 1")
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be >= 1")
        if self.temperature <= 0:
            raise ConfigError("temperature must be > 0")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("top_p must be in (0, 1]")
        if self.top_k < 0 or self.batch_size < 1:
            raise ConfigError("top_k must be >= 0 (0 = off), batch_size >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be >= 1")


@dataclass
class Prompt:
    """One generation request: its id, the prompt's text and token ids, and how many tokens to add."""

    id: str
    text: str
    ids: list[int]
    n_new: int
    source_id: str | None = None


def read_records(
    inputs: Sequence[str], text_field: str = "text", id_field: str | None = "id"
) -> list[tuple[str, dict]]:
    """(id, record) of every record of `inputs`; a bad record is an InputError naming its file and line."""
    spec = FieldSpec(text_field=text_field, id_field=id_field)
    out = []
    for shard in list_shards(inputs, fence=RUN_DIRS):
        for rec in read_shard(shard, spec):
            if isinstance(rec, BadRecord):
                raise InputError(f"{rec.file}:{rec.line}: {rec.reason}")
            out.append((rec.id, rec.data))
    return out


def read_texts(inputs: Sequence[str], text_field: str = "text", id_field: str | None = "id") -> list[tuple]:
    """(id, text) of every record of `inputs`."""
    return [(i, data[text_field]) for i, data in read_records(inputs, text_field, id_field)]


def opening_prompts(docs: Sequence[tuple[str, str]], tokenizer, config: GenerateConfig) -> list[Prompt]:
    """The first `prompt_tokens` tokens of each document; new tokens = the rest of its length, capped.

    A document of `prompt_tokens` tokens or fewer has nothing to match and gets no prompt (counted by
    the caller from the returned ids); the opening is the source's exact characters, not a re-decoding.
    """
    prompts = []
    for doc_id, text in docs:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        if len(ids) <= config.prompt_tokens:
            continue
        n = config.prompt_tokens
        prompts.append(
            Prompt(
                id=f"{doc_id}:gen",
                text=text[: offs[n - 1][1]],
                ids=list(ids[:n]),
                n_new=min(len(ids) - n, config.max_new_tokens),
                source_id=doc_id,
            )
        )
    return prompts


def topic_prompts(topics: Sequence[str], tokenizer, config: GenerateConfig) -> list[Prompt]:
    """One prompt per non-empty topic line, each given `max_new_tokens` new tokens."""
    out = []
    for i, topic in enumerate(t.strip() for t in topics):
        if topic:
            ids = tokenizer(topic, add_special_tokens=False)["input_ids"]
            out.append(Prompt(id=f"topic:{i}", text=topic, ids=list(ids), n_new=config.max_new_tokens))
    return out


def _filter(logits: torch.Tensor, config: GenerateConfig, banned: torch.Tensor | None) -> torch.Tensor:
    """Probabilities after temperature, banned tokens, top-k and top-p (nucleus), float64, rows sum to 1."""
    logits = logits.double() / config.temperature
    if banned is not None:
        logits[:, banned] = -torch.inf
    if config.top_k:
        kth = logits.topk(min(config.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    probs = torch.softmax(logits, dim=-1)
    if config.top_p < 1.0:
        # the nucleus is almost always inside the top few hundred: sort those, the full row only if needed
        k = min(_NUCLEUS_PROBE, probs.shape[-1])
        top_p, order = probs.topk(k, dim=-1)
        if bool((top_p.sum(-1) < config.top_p).any()) and k < probs.shape[-1]:
            top_p, order = probs.sort(dim=-1, descending=True)
        before = top_p.cumsum(-1) - top_p  # mass strictly before each token: keep while < top_p
        top_p = top_p.masked_fill(before >= config.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, top_p)
        probs /= probs.sum(-1, keepdim=True)
    return probs


def _inverse_cdf(probs: torch.Tensor, u: np.ndarray) -> torch.Tensor:
    """One token per row: the first index whose cumulative probability exceeds u (ties: lowest id)."""
    cdf = probs.cumsum(-1)
    target = torch.as_tensor(u, dtype=cdf.dtype)[:, None] * cdf[:, -1:]
    idx = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return idx.clamp_(max=probs.shape[-1] - 1)


@torch.inference_mode()
def sample_batch(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    n_new: int,
    streams: Sequence[np.ndarray],
    config: GenerateConfig,
    banned: torch.Tensor | None = None,
) -> list[list[int]]:
    """`n_new` tokens for each prompt (all of one length), reusing the KV cache between steps."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(p) for p in prompt_ids], dtype=torch.long, device=device)
    out = torch.empty((len(prompt_ids), n_new), dtype=torch.long)
    past = None
    step_input = ids
    for t in range(n_new):
        res = model(input_ids=step_input, use_cache=True, **{_cache_arg(model): past})
        past = res.cache if getattr(res, "cache", None) is not None else res.past_key_values
        probs = _filter(res.logits[:, -1, :].float().cpu(), config, banned)
        nxt = _inverse_cdf(probs, np.array([s[t] for s in streams]))
        out[:, t] = nxt
        step_input = nxt[:, None].to(device)
    return out.tolist()


def _cache_arg(model: torch.nn.Module) -> str:
    """transformers >= 5.2x names the KV cache argument `cache`; older versions `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _banned_ids(tokenizer, vocab_size: int) -> torch.Tensor | None:
    ids = sorted(i for i in (getattr(tokenizer, "all_special_ids", None) or []) if 0 <= i < vocab_size)
    return torch.tensor(ids, dtype=torch.long) if ids else None


def generate_texts(
    prompts: Sequence[Prompt], prior: Prior, config: GenerateConfig, progress: bool = False
) -> list[dict[str, Any]]:
    """Sample every prompt's continuation; records {id, text, prompt, source_id, toedit_generate}.

    `text` is the decoded new tokens only (the synthetic document); the prompt (human text, for openings) is
    kept in its own field, so analyses of `text` never see human words. `toedit_generate.prompt_in_text` is
    False (records written before this change held prompt + continuation; see `continuation`). Special tokens
    are never sampled, so each document gets exactly its `n_new` tokens.
    """
    config.validate()
    prompts = list(prompts)[: config.limit] if config.limit else list(prompts)
    if len({p.id for p in prompts}) != len(prompts):
        raise InputError("prompt ids must be unique (they key the random streams)")
    banned = _banned_ids(prior.tokenizer, prior.vocab_size)
    max_len = prior.max_positions
    for p in prompts:
        if len(p.ids) + p.n_new > max_len:
            raise ConfigError(
                f"prompt {p.id}: {len(p.ids)} + {p.n_new} tokens exceed the model's {max_len} positions"
            )
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i].ids), prompts[i].n_new, i))
    new_ids: dict[int, list[int]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(p.n_new for p in prompts), unit="tok", desc="generate")
    i = 0
    while i < len(order):
        length = len(prompts[order[i]].ids)
        batch = [order[i]]
        while (
            len(batch) < config.batch_size
            and i + len(batch) < len(order)
            and len(prompts[order[i + len(batch)]].ids) == length
        ):
            batch.append(order[i + len(batch)])
        i += len(batch)
        n = max(prompts[j].n_new for j in batch)
        streams = [doc_uniforms(config.seed, prompts[j].id, _ROUND, n) for j in batch]
        rows = sample_batch(prior.model, [prompts[j].ids for j in batch], n, streams, config, banned)
        for j, row in zip(batch, rows, strict=True):
            new_ids[j] = row[: prompts[j].n_new]
        if bar is not None:
            bar.update(sum(prompts[j].n_new for j in batch))
    if bar is not None:
        bar.close()
    meta = {"model": prior.name, "fingerprint": prior.fingerprint, **dataclasses.asdict(config)}
    meta.pop("limit")
    records = []
    for j, p in enumerate(prompts):
        cont = prior.tokenizer.decode(new_ids[j], clean_up_tokenization_spaces=False)
        records.append(
            {
                "id": p.id,
                "text": cont,
                "prompt": p.text,
                "source_id": p.source_id,
                "toedit_generate": {
                    **meta,
                    "prompt_tokens": len(p.ids),
                    "new_tokens": len(new_ids[j]),
                    "prompt_in_text": False,
                },
            }
        )
    return records


def continuation(record: dict[str, Any]) -> str:
    """The synthetic part of a generated record: `text`, minus a leading prompt in older records."""
    text, prompt = record["text"], record.get("prompt") or ""
    meta = record.get("toedit_generate") or {}
    if meta.get("prompt_in_text", True) and prompt and text.startswith(prompt):
        return text[len(prompt) :]
    return text


def run_generate(
    inputs: Sequence[str],
    output: str | Path,
    config: GenerateConfig | None = None,
    topics: str | Path | None = None,
    model: str = "default",
    text_field: str = "text",
    id_field: str | None = "id",
    prior: Prior | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """`toedit generate`: prompts from human openings (`inputs`) or a topics file; writes JSONL `output`."""
    from ..prior import load_prior

    config = config or GenerateConfig()
    config.validate()
    if bool(inputs) == bool(topics):
        raise ConfigError("give either human INPUT files (their openings are the prompts) or --topics FILE")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available to this torch; use --device cpu or auto")
    prior = prior or load_prior(model, device=None if config.device == "auto" else config.device)
    if topics:
        path = Path(topics)
        if not path.is_file():
            raise InputError(f"topics file not found: {path}")
        prompts = topic_prompts(path.read_text(encoding="utf-8").splitlines(), prior.tokenizer, config)
        skipped = 0
    else:
        docs = read_texts(inputs, text_field, id_field)
        prompts = opening_prompts(docs, prior.tokenizer, config)
        skipped = len(docs) - len(prompts)
    if not prompts:
        raise InputError("no prompts: every document is at most --prompt-tokens tokens long, or no topics")
    records = generate_texts(prompts, prior, config, progress=progress)
    write_jsonl_atomic(output, records)
    summary = {
        "output": str(output),
        "documents": len(records),
        "skipped_short_documents": skipped,
        "new_tokens": sum(r["toedit_generate"]["new_tokens"] for r in records),
        "capped_at_max_new_tokens": sum(p.n_new == config.max_new_tokens for p in prompts[: len(records)]),
    }
    if skipped:
        log.warning("%d document(s) of at most %d tokens gave no prompt", skipped, config.prompt_tokens)
    return summary
