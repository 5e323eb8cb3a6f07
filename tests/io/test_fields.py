"""FieldSpec modes: text, response, messages; ids; errors."""

from __future__ import annotations

import copy

import pytest

from toedit.io import FieldError, FieldSpec, extract_texts, record_id, replace_texts

CHAT = {
    "id": 7,
    "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi \U0001f600"},
        {"role": "assistant", "content": "Hello,\tworld  ", "weight": 1},
        {"role": "user", "content": "More?"},
        {"role": "assistant", "content": "東京\r\nです"},
    ],
    "source": "x",
}


def test_text_mode_extract_and_replace():
    data = {"a": 1, "text": "hello ", "b": [1, 2]}
    spec = FieldSpec()
    assert extract_texts(data, spec) == ["hello "]
    out = replace_texts(data, spec, ["bye"])
    assert out == {"a": 1, "text": "bye", "b": [1, 2]}
    assert list(out) == ["a", "text", "b"]
    assert data["text"] == "hello "
    assert extract_texts({"text": ""}, spec) == [""]


def test_custom_text_field():
    spec = FieldSpec(text_field="body")
    assert extract_texts({"body": "x", "text": 3}, spec) == ["x"]
    with pytest.raises(FieldError, match="missing field 'body'"):
        extract_texts({"text": "x"}, spec)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, "missing field 'text'"),
        ({"text": 5}, "field 'text' is int, expected str"),
        ({"text": None}, "field 'text' is null, expected str"),
        ({"text": ["a"]}, "field 'text' is list, expected str"),
    ],
)
def test_text_mode_errors(data, reason):
    with pytest.raises(FieldError) as info:
        extract_texts(data, FieldSpec())
    assert str(info.value) == reason


def test_response_mode_takes_precedence():
    data = {"instruction": "Say hi", "text": "ignored", "response": "Hi there"}
    spec = FieldSpec(response_field="response")
    assert extract_texts(data, spec) == ["Hi there"]
    out = replace_texts(data, spec, ["Hello there"])
    assert out == {"instruction": "Say hi", "text": "ignored", "response": "Hello there"}
    with pytest.raises(FieldError, match="missing field 'response'"):
        extract_texts({"text": "x"}, spec)


def test_messages_mode_extracts_assistant_turns_and_puts_them_back():
    spec = FieldSpec(messages_field="messages")
    before = copy.deepcopy(CHAT)
    assert extract_texts(CHAT, spec) == ["Hello,\tworld  ", "東京\r\nです"]
    out = replace_texts(CHAT, spec, ["A1", "A2"])
    assert before == CHAT  # input not mutated
    assert out["messages"] is not CHAT["messages"]
    assert [m["content"] for m in out["messages"]] == ["Be terse.", "Hi \U0001f600", "A1", "More?", "A2"]
    assert out["messages"][2] == {"role": "assistant", "content": "A1", "weight": 1}
    assert out["messages"][0] == CHAT["messages"][0] and out["messages"][1] == CHAT["messages"][1]
    assert {k: v for k, v in out.items() if k != "messages"} == {"id": 7, "source": "x"}
    assert list(out) == list(CHAT)


def test_messages_roles_configurable():
    spec = FieldSpec(messages_field="messages", roles=("user", "system"))
    assert extract_texts(CHAT, spec) == ["Be terse.", "Hi \U0001f600", "More?"]
    assert FieldSpec(messages_field="messages", roles="user").roles == ("user",)
    assert (
        extract_texts({"messages": [{"role": "user", "content": "q"}]}, FieldSpec(messages_field="messages"))
        == []
    )
    assert extract_texts({"messages": []}, FieldSpec(messages_field="messages")) == []
    out = replace_texts(CHAT, spec, ["s", "u1", "u2"])
    assert [m["content"] for m in out["messages"]] == ["s", "u1", "Hello,\tworld  ", "u2", "東京\r\nです"]


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        (None, "field 'messages' is null, expected list"),
        ("hi", "field 'messages' is str, expected list"),
        ([{"role": "user", "content": "q"}, "x"], "messages[1] is str, expected an object"),
        ([{"content": "q"}], "messages[0] has no 'role'"),
        ([{"role": 1, "content": "q"}], "messages[0].role is int, expected str"),
        (
            [{"role": "user", "content": "q"}, {"role": "user"}, {"role": "assistant"}],
            "messages[2] has no 'content'",
        ),
        ([{"role": "assistant", "content": ["part"]}], "messages[0].content is list, expected str"),
    ],
)
def test_messages_mode_errors(messages, reason):
    with pytest.raises(FieldError) as info:
        extract_texts({"messages": messages}, FieldSpec(messages_field="messages"))
    assert str(info.value) == reason


def test_missing_messages_field():
    with pytest.raises(FieldError, match="missing field 'conv'"):
        extract_texts({"messages": []}, FieldSpec(messages_field="conv"))


def test_replace_texts_count_mismatch():
    with pytest.raises(ValueError, match="2 texts for 1"):
        replace_texts({"text": "a"}, FieldSpec(), ["a", "b"])


def test_record_id():
    spec = FieldSpec(id_field="doc_id")
    assert record_id({"doc_id": 12}, spec, "f:1") == "12"
    assert record_id({"doc_id": "abc"}, spec, "f:1") == "abc"
    assert record_id({"doc_id": None}, spec, "f:1") == "f:1"
    assert record_id({}, spec, "f:1") == "f:1"
    assert record_id({"doc_id": "abc"}, FieldSpec(), "f:1") == "f:1"
