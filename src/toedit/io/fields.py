"""Which parts of a record get edited: a text field, an instruction response, or chat turns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldSpec:
    """Where the editable text lives; precedence: messages_field > response_field > text_field."""

    text_field: str = "text"
    id_field: str | None = None
    messages_field: str | None = None  # chat data: a list of {"role": ..., "content": ...}
    roles: tuple[str, ...] = ("assistant",)
    response_field: str | None = None  # instruction data: edit only this field

    def __post_init__(self) -> None:
        roles = (self.roles,) if isinstance(self.roles, str) else tuple(self.roles)
        object.__setattr__(self, "roles", roles)

    @property
    def mode(self) -> str:
        """Which kind of field is edited: "messages", "response" or "text"."""
        if self.messages_field:
            return "messages"
        return "response" if self.response_field else "text"


class FieldError(ValueError):
    """A record lacks the configured field or has the wrong type; the message is the BadRecord reason."""


def type_name(value: Any) -> str:
    """Short type name used in error messages ("null" for None)."""
    return "null" if value is None else type(value).__name__


def _str_field(data: dict, name: str) -> str:
    if name not in data:
        raise FieldError(f"missing field {name!r}")
    value = data[name]
    if not isinstance(value, str):
        raise FieldError(f"field {name!r} is {type_name(value)}, expected str")
    return value


def _turns(data: dict, spec: FieldSpec) -> list[int]:
    """Indices of the turns whose content is edited, after validating the messages list."""
    name = spec.messages_field
    assert name is not None
    if name not in data:
        raise FieldError(f"missing field {name!r}")
    messages = data[name]
    if not isinstance(messages, list):
        raise FieldError(f"field {name!r} is {type_name(messages)}, expected list")
    picked = []
    for i, turn in enumerate(messages):
        if not isinstance(turn, dict):
            raise FieldError(f"{name}[{i}] is {type_name(turn)}, expected an object")
        if "role" not in turn:
            raise FieldError(f"{name}[{i}] has no 'role'")
        if not isinstance(turn["role"], str):
            raise FieldError(f"{name}[{i}].role is {type_name(turn['role'])}, expected str")
        if turn["role"] not in spec.roles:
            continue
        if "content" not in turn:
            raise FieldError(f"{name}[{i}] has no 'content'")
        if not isinstance(turn["content"], str):
            raise FieldError(f"{name}[{i}].content is {type_name(turn['content'])}, expected str")
        picked.append(i)
    return picked


def extract_texts(data: dict, spec: FieldSpec) -> list[str]:
    """The texts to edit, in order; raises FieldError for a missing field or a wrong type."""
    if spec.mode == "messages":
        picked = _turns(data, spec)
        return [data[spec.messages_field][i]["content"] for i in picked]
    return [_str_field(data, spec.response_field if spec.mode == "response" else spec.text_field)]


def replace_texts(data: dict, spec: FieldSpec, new_texts: list[str]) -> dict:
    """A new dict with `new_texts` put back where extract_texts found the originals; input untouched."""
    n_old = len(extract_texts(data, spec))
    if len(new_texts) != n_old:
        raise ValueError(f"replace_texts got {len(new_texts)} texts for {n_old} editable parts")
    out = dict(data)
    if spec.mode == "messages":
        name = spec.messages_field
        messages = [dict(turn) for turn in data[name]]
        for i, text in zip(_turns(data, spec), new_texts, strict=True):
            messages[i]["content"] = text
        out[name] = messages
    else:
        out[spec.response_field if spec.mode == "response" else spec.text_field] = new_texts[0]
    return out


def record_id(data: dict, spec: FieldSpec, default: str) -> str:
    """str(data[id_field]) when configured, present and not None, else `default`."""
    if spec.id_field is not None and data.get(spec.id_field) is not None:
        return str(data[spec.id_field])
    return default


def free_key(data: dict, base: str) -> str:
    """`base`, or the first of `base_1`, `base_2`, ... that `data` does not hold: where a new field (the
    stats) goes without overwriting a field of the record's own (e.g. stats of an earlier run)."""
    if base not in data:
        return base
    n = 1
    while f"{base}_{n}" in data:
        n += 1
    return f"{base}_{n}"


def shown(text: str) -> str:
    """`text` made safe to print and to write as UTF-8: lone surrogates become \\udXXX escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate(text: str) -> str | None:
    """How `text` fails to encode as UTF-8 (a lone surrogate left by a JSON `\\udXXX` escape), else None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start + 1}"
    return None


def unencodable(data: Any) -> str | None:
    """The BadRecord reason if any string or key anywhere in `data` cannot be written as UTF-8, else None.

    Walks dicts and lists iteratively (deep records cannot overflow the stack) and names the path of the
    problem, as in `meta.tags[2]` (a dict's keys are checked before its values)."""
    try:  # fast path, in C: almost every record encodes
        json.dumps(data, ensure_ascii=False).encode("utf-8")
        return None
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        pass  # find (or rule out) the culprit below
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if (why := _surrogate(value)) is not None:
                return f"field {path!r} holds an unencodable string ({why})"
        elif isinstance(value, dict):
            children = []
            for key, item in value.items():
                if isinstance(key, str) and (why := _surrogate(key)) is not None:
                    where = f"in field {path!r}" if path else "at the top level"
                    return f"key '{shown(key)}' {where} is an unencodable string ({why})"
                children.append((f"{path}.{key}" if path else str(key), item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", value[i]) for i in reversed(range(len(value))))
    return None
