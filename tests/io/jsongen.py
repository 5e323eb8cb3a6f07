"""A seeded generator of JSON object texts that exercise every spelling JSON allows (property tests).

Numbers beyond float range or precision (`1e400`, `12345678901234567.89`), `-0`, exponent forms, `\\u` escapes
(surrogate pairs included), `\\/`, nested objects and arrays, null/true/false and random spacing: the text is
built piece by piece, never by json.dumps, so a writer that re-serialises a value changes its bytes.
"""

from __future__ import annotations

import json
import random

NUMBERS = [
    "0",
    "-0",
    "7",
    "-42",
    "12345678901234567890123456789",
    "12345678901234567.89",
    "1e400",
    "-1E+400",
    "1e-400",
    "2.5E-10",
    "0.1e1",
    "1.0",
    "3.141592653589793238462643383279",
    "-0.0",
]
ESCAPES = [
    "\\u00e9",
    "\\u2028",
    "\\ud83d\\ude00",
    "\\/",
    "\\n",
    "\\t",
    '\\"',
    "\\\\",
    "\\u0000",
    "\\b",
    "\\f",
]
CHARS = ["a", "Z", " ", "é", "東", "😀", "\u2029", "'", ",", ":", "{", "]"]


def _space(rng: random.Random) -> str:
    return rng.choice(["", "", " ", "  ", "\t"])


def string(rng: random.Random) -> str:
    parts = [
        rng.choice(ESCAPES) if rng.random() < 0.3 else rng.choice(CHARS) for _ in range(rng.randint(0, 8))
    ]
    return '"' + "".join(parts) + '"'


def value(rng: random.Random, depth: int = 0) -> str:
    kinds = ["number", "string", "null", "true", "false"] + (["object", "array"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "number":
        return rng.choice(NUMBERS)
    if kind == "string":
        return string(rng)
    if kind == "array":
        items = [_space(rng) + value(rng, depth + 1) + _space(rng) for _ in range(rng.randint(0, 4))]
        return "[" + ",".join(items) + "]" if items else "[" + _space(rng) + "]"
    if kind == "object":
        return obj(rng, [f"k{i}" for i in range(rng.randint(0, 4))], depth + 1)[0]
    return kind


def obj(
    rng: random.Random, keys: list[str], depth: int, fixed: dict[str, str] | None = None
) -> tuple[str, int]:
    """An object text with `keys` (values from `fixed` where given), and the offset where its last member ends."""
    if not keys:
        return "{" + _space(rng) + "}", 1
    item_sep = rng.choice([",", ", ", " , "])
    key_sep = rng.choice([":", ": ", " : "])
    members = []
    for key in keys:
        val = (fixed or {}).get(key) or value(rng, depth)
        members.append(json.dumps(key) + key_sep + val)
    head = "{" + _space(rng)
    body = item_sep.join(members)
    return head + body + _space(rng) + "}", len(head) + len(body)


def record(rng: random.Random, n: int) -> tuple[str, int]:
    """One JSONL record (no newline) with an "id", a plain "text" and random other members, and the offset
    where its last member ends (where a writer adds the stats)."""
    keys = ["id", "text", *(f"f{i}" for i in range(rng.randint(0, 6)))]
    if rng.random() < 0.2:
        keys.append("toedit")  # a field of the record's own, named like the stats
    rng.shuffle(keys)
    fixed = {"id": json.dumps(f"r{n}"), "text": json.dumps(f"plain text number {n}.")}
    return obj(rng, keys, 0, fixed)
