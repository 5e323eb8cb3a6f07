"""JSON records kept as the input wrote them: splicing changes only the values that changed."""

from __future__ import annotations

import json
import random

import pytest

from tests.io import jsongen
from toedit.io.jsontext import DuplicateKey, jsonl_line, loads, splice

SOURCE = '{"id":"a","n": 12345678901234567.89, "h": 1e400,"e":"\\u00e9","text":"The quick"}'


def test_untouched_values_keep_their_source_text():
    old = loads(SOURCE)
    new = old | {"text": "A changed text", "toedit": {"n_tokens": 3}}
    out = splice(SOURCE, old, new)
    assert out == (
        '{"id":"a","n": 12345678901234567.89, "h": 1e400,"e":"\\u00e9","text":"A changed text",'
        '"toedit":{"n_tokens":3}}'
    )
    assert "Infinity" not in out and json.loads(out)["toedit"] == {"n_tokens": 3}


def test_an_equal_value_keeps_its_escapes_and_a_nested_change_touches_only_itself():
    src = '{"m":[{"role":"user","content":"x","w":1.0E5},{"role":"assistant","content":"caf\\u00e9"}]}'
    old = loads(src)
    same = {"m": [dict(t) for t in old["m"]]}  # equal values, new objects: nothing is rewritten
    assert splice(src, old, same) == src
    changed = {"m": [dict(t) for t in old["m"]]}
    changed["m"][1]["content"] = "thé"
    assert splice(src, old, changed) == src.replace('"caf\\u00e9"', '"thé"')


def test_added_members_use_the_records_own_separators():
    assert splice('{ "text" : "x" }', {"text": "x"}, {"text": "x", "s": [1, 2]}) == (
        '{ "text" : "x", "s" : [1, 2] }'
    )
    assert (
        splice('{"text":"x"}', {"text": "x"}, {"text": "y", "s": {"a": [1]}}) == '{"text":"y","s":{"a":[1]}}'
    )


def test_a_removed_key_rewrites_the_object_and_no_source_falls_back_to_dumps():
    assert json.loads(splice('{"a":1,"text":"x"}', {"a": 1, "text": "x"}, {"text": "y"})) == {"text": "y"}
    assert jsonl_line({"text": "東"}) == '{"text": "東"}\n'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"id":"a","text":"first","text":"second"}', "text"),
        ('{"text":"x","meta":{"a":1,"a":2}}', "a"),
        ('{"text":"x","m":[{"role":"assistant","content":"a","content":"b"}]}', "content"),
    ],
)
def test_a_repeated_key_anywhere_is_refused(text, key):
    with pytest.raises(DuplicateKey, match=f"duplicate key '{key}'"):
        loads(text)


def test_random_records_round_trip_byte_for_byte():
    """Property: for random records of every JSON spelling, splicing a new text and the stats changes exactly
    the text's value and adds the stats after the last member; every other byte is the source's."""
    rng = random.Random(20250714)
    for n in range(400):
        raw, last = jsongen.record(rng, n)
        old = loads(raw)
        assert loads(splice(raw, old, dict(old))) == old and splice(raw, old, dict(old)) == raw
        stats_key = "toedit_1" if "toedit" in old else "toedit"
        new = old | {stats_key: {"n_tokens": n}}
        out = splice(raw, old, new)
        middle = out[last : len(out) - (len(raw) - last)]
        assert out[:last] == raw[:last] and out[len(out) - (len(raw) - last) :] == raw[last:], (raw, out)
        assert middle.lstrip(" ,").startswith(json.dumps(stats_key)), middle
        assert json.loads(out)[stats_key] == {"n_tokens": n}
        edited = splice(raw, old, old | {"text": f"edited ✓ {n}"})
        assert edited == raw.replace(
            json.dumps(f"plain text number {n}."), json.dumps(f"edited ✓ {n}", ensure_ascii=False)
        )
