"""Parity with the official ToEdit selection (not a test): which positions are selected at p > 0.99.

The official script asks vLLM for prompt log-probs of the bare token sequence: position 0 has no score and is
kept, position i is scored given tokens 0..i-1, and a token is selected when exp(logprob) > 0.99. The reference
here computes exactly those conditionals with one plain Hugging Face forward per document over the unprefixed
ids and a full log_softmax (the documented semantics, written here; nothing is copied from the script). toedit
is run twice on the same fp32 model: with its default context token (the first token is scored too) and with
`--context-token none` (parity mode). Documents longer than the official 2048-token cut are skipped.

    python benchmarks/bench_parity.py            # 40 Python-reference documents, ~2 x 17K tokens
"""

from __future__ import annotations

import argparse
import json
import pydoc_data.topics

import numpy as np
import torch

from toedit import ScoreConfig, load_prior, score_texts
from toedit.rule import above
from toedit.scoring import tokenize

OFFICIAL_MAX_TOKENS = 2048


def official_selection(prior, ids: np.ndarray, threshold: float) -> set[int]:
    """Positions the official post-processing selects: prob of the actual token > threshold, position 0 never."""
    seq = torch.from_numpy(ids.astype(np.int64))[None]
    with torch.inference_mode():
        logp = prior.model(seq).logits.float().log_softmax(-1)[0]
    lp = logp[:-1].gather(1, seq[0, 1:, None])[:, 0].double().exp().numpy()
    return {int(i) + 1 for i in np.nonzero(lp > threshold)[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=40)
    ap.add_argument("--threshold", type=float, default=0.99)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    prior = load_prior(args.model, device="cpu", dtype="float32")
    topics = pydoc_data.topics.topics
    texts = []
    for key in sorted(topics):
        ((ids, _),) = tokenize(prior, [topics[key]])
        if 2 <= len(ids) <= OFFICIAL_MAX_TOKENS:
            texts.append(topics[key])
        if len(texts) == args.docs:
            break
    window = ScoreConfig(window=OFFICIAL_MAX_TOKENS + 1)  # one window per document, as the official pass
    runs = {
        "toedit default (context token)": score_texts(texts, prior, window),
        "toedit --context-token none": score_texts(
            texts, prior, ScoreConfig(window=OFFICIAL_MAX_TOKENS + 1, context_token="none")
        ),
    }
    tokens = sum(len(s) for s in runs["toedit --context-token none"])
    official = [
        official_selection(prior, s.token_ids, args.threshold) for s in runs["toedit --context-token none"]
    ]
    result = {
        "documents": len(texts),
        "tokens": tokens,
        "official_selected": sum(map(len, official)),
        "runs": {},
    }
    for name, scores in runs.items():
        mine = [set(np.nonzero(above(s.logprob, args.threshold))[0].tolist()) for s in scores]
        inter = sum(len(a & b) for a, b in zip(mine, official, strict=True))
        union = sum(len(a | b) for a, b in zip(mine, official, strict=True))
        result["runs"][name] = {
            "selected": sum(map(len, mine)),
            "documents_differing": sum(a != b for a, b in zip(mine, official, strict=True)),
            "iou": inter / union if union else 1.0,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
