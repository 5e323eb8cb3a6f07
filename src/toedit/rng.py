"""Per-document random streams: the output never depends on batching, workers, shard order or windows."""

from __future__ import annotations

import hashlib

import numpy as np


def doc_uniforms(seed: int, doc_id: str, round_index: int, n: int) -> np.ndarray:
    """`n` uniforms in [0, 1) for one document and round; position i always consumes element i."""
    digest = hashlib.sha256(f"toedit\0{seed}\0{round_index}\0{doc_id}".encode()).digest()
    entropy = int.from_bytes(digest[:16], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy))).random(n)
