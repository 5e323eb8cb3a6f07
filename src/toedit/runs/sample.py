"""A seeded sample of the texts of a corpus (reservoir over records), keyed like the run layer keys them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..io import BadRecord, FieldSpec, Shard, extract_texts, read_shard


def unit_ids(record_id: str, n_texts: int, spec: FieldSpec) -> list[str]:
    """Random-stream keys of a record's texts (one per chat turn in messages mode)."""
    return [f"{record_id}/{i}" if spec.messages_field else record_id for i in range(n_texts)]


def sample_texts(shards: Sequence[Shard], spec: FieldSpec, n: int, seed: int) -> tuple[list[str], list[str]]:
    """(texts, ids) of up to `n` records drawn uniformly (reservoir sampling), in corpus order."""
    rng = np.random.default_rng(seed)
    reservoir: list[tuple[int, str, list[str]]] = []
    seen = 0
    for shard in shards:
        for item in read_shard(shard, spec):
            if isinstance(item, BadRecord):
                continue
            entry = (seen, item.id, extract_texts(item.data, spec))
            if len(reservoir) < n:
                reservoir.append(entry)
            else:
                j = int(rng.integers(0, seen + 1))
                if j < n:
                    reservoir[j] = entry
            seen += 1
    texts, ids = [], []
    for _, rec_id, parts in sorted(reservoir, key=lambda e: e[0]):
        texts.extend(parts)
        ids.extend(unit_ids(rec_id, len(parts), spec))
    return texts, ids
