"""JSON records kept as the input wrote them: strict parsing and splicing of only the values that changed.

A JSONL record is written back as its source text with the changed values replaced (and new keys added before
its closing brace), so every untouched value keeps its exact spelling: number text such as
`12345678901234567.89` or `1e400`, `\\u00e9` escapes, key order and spacing. New values are written with the
record's own separators (`","` or `", "`, `":"` or `": "`).
"""

from __future__ import annotations

import json
from json.decoder import WHITESPACE, scanstring
from typing import Any


class DuplicateKey(ValueError):
    """An object names the same key twice: JSON leaves its value undefined (parsers keep the first or the last)."""

    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return data


_DECODER = json.JSONDecoder(object_pairs_hook=_unique)
_SCAN = _DECODER.scan_once
_DEFAULT_SEPS = (", ", ": ")


def loads(text: str) -> Any:
    """json.loads, refusing a repeated key in any object (raises DuplicateKey, a ValueError)."""
    return _DECODER.decode(text)


def _ws(s: str, i: int) -> int:
    if i < len(s) and s[i] not in " \t\n\r":
        return i  # most tokens follow without space: skip the regex
    return WHITESPACE.match(s, i).end()


def _members(s: str, i: int) -> tuple[list[tuple[str, int, int, int, int]], int]:
    """(key, key start, key end, value start, value end) of the object at s[i] == "{", and its end."""
    out: list[tuple[str, int, int, int, int]] = []
    i = _ws(s, i + 1)
    if s[i] == "}":
        return out, i + 1
    while True:
        key, key_end = scanstring(s, i + 1)
        start = _ws(s, _ws(s, key_end) + 1)  # past ':'
        _, end = _SCAN(s, start)
        out.append((key, i, key_end, start, end))
        i = _ws(s, end)
        if s[i] == "}":
            return out, i + 1
        i = _ws(s, i + 1)  # past ','


def _items(s: str, i: int) -> list[tuple[int, int]]:
    """(start, end) of every element of the array at s[i] == "["."""
    out: list[tuple[int, int]] = []
    i = _ws(s, i + 1)
    if s[i] == "]":
        return out
    while True:
        _, end = _SCAN(s, i)
        out.append((i, end))
        i = _ws(s, end)
        if s[i] == "]":
            return out
        i = _ws(s, i + 1)


class _Splicer:
    """Collects (start, end, replacement) edits that turn the source text of `old` into a text of `new`."""

    def __init__(self, s: str, seps: tuple[str, str]):
        self.s, self.seps = s, seps
        self.edits: list[tuple[int, int, str]] = []

    def dumps(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=self.seps)

    def value(self, start: int, end: int, old: Any, new: Any) -> None:
        if new is old:
            return
        if type(old) is dict and type(new) is dict:
            self.object(start, end, old, new)
        elif type(old) is list and type(new) is list and len(old) == len(new):
            for (a, b), o, n in zip(_items(self.s, start), old, new, strict=True):
                self.value(a, b, o, n)
        elif type(old) is type(new) and not isinstance(new, dict | list) and old == new:
            return  # same value: keep its source spelling
        else:
            self.edits.append((start, end, self.dumps(new)))

    def object(self, start: int, end: int, old: dict, new: dict, members: list | None = None) -> None:
        if any(key not in new for key in old):  # a key removed: rewrite the whole object
            self.edits.append((start, end, self.dumps(new)))
            return
        if members is None:
            members, _ = _members(self.s, start)
        spans = {m[0] for m in members}
        added = [key for key in new if key not in spans]
        if added:
            item_sep, key_sep = self.seps
            text = "".join(
                (item_sep if members or n else "") + self.dumps(key) + key_sep + self.dumps(new[key])
                for n, key in enumerate(added)
            )
            at = members[-1][4] if members else end - 1  # after the last member, else before the brace
            self.edits.append((at, at, text))
        for key, _, _, a, b in members:
            self.value(a, b, old[key], new[key])

    def apply(self) -> str:
        out, cursor = [], 0
        for start, end, text in sorted(self.edits, key=lambda e: (e[0], e[1])):
            out += [self.s[cursor:start], text]
            cursor = end
        out.append(self.s[cursor:])
        return "".join(out)


def _separators(s: str, members: list[tuple[str, int, int, int, int]]) -> tuple[str, str]:
    """The record's own (item, key) separators, so what is added looks like the rest of it."""
    if not members:
        return _DEFAULT_SEPS
    _, _, key_end, value_start, value_end = members[0]
    key_sep = s[key_end:value_start]
    if len(members) > 1:
        return s[value_end : members[1][1]], key_sep
    return ("," if key_sep == ":" else ", "), key_sep


def splice(source: str, old: dict, new: dict) -> str:
    """The JSON object text `source` (read as `old`) changed into `new`: values that differ are rewritten,
    keys new to an object are added before its closing brace; everything else keeps its source text."""
    start = _ws(source, 0)
    members, end = _members(source, start)
    splicer = _Splicer(source, _separators(source, members))
    splicer.object(start, end, old, new, members)
    return splicer.apply()


def jsonl_line(data: dict, source: str | None = None, old: dict | None = None) -> str:
    """One JSONL line (with its newline) for `data`: spliced into `source` (the text `old` was read from)
    when given, else json.dumps."""
    if source is not None and old is not None:
        return splice(source, old, data) + "\n"
    return json.dumps(data, ensure_ascii=False) + "\n"
