"""Options: every field of every verb arrives from flags and from config files (flag beats file), values are
checked by type the same way from both, and bad config files are exit 2 with the file and line."""

from __future__ import annotations

import importlib
import inspect
import json
import typing

import pytest
import yaml

from toedit.cli import EXIT_CONFIG, all_verbs, main, parse
from toedit.options import Leaf, _unwrap, getattr_path, leaves

VERBS = all_verbs()


def _value(leaf: Leaf, n: int):
    """A value of the leaf's type that differs from its default (n = 1, 2 give two different ones)."""
    default = leaf.default
    choices = leaf.meta.get("choices")
    if choices:
        others = [c for c in choices if c != default]
        return others[(n - 1) % len(others)]
    if leaf.meta.get("convert") is not None:  # GPU ids
        return "1,2" if n == 1 else "3"
    typ, _ = _unwrap(leaf.typ)
    if typing.get_origin(typ) is list:
        (item,) = typing.get_args(typ)
        return {int: [n, n + 10], float: [0.5 * n, 0.125], str: [f"a{n}", "b"]}[item]
    if typ is bool:
        return (not default) if n == 1 else bool(default)
    if typ is int:
        return (default or 0) + 10 * n + 1
    if typ is float:
        return (default or 0.0) + 0.25 * n
    return f"v{n}-{leaf.name}"


def _flag(leaf: Leaf, value) -> list[str]:
    typ, _ = _unwrap(leaf.typ)
    if leaf.meta.get("positional"):
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if typ is bool and leaf.meta.get("convert") is None:
        return [leaf.flag if value else "--no-" + leaf.flag[2:]]
    if isinstance(value, list):
        if leaf.meta.get("nargs"):
            return [leaf.flag, *map(str, value)]
        return [leaf.flag, ",".join(map(str, value))]
    return [leaf.flag, str(value)]


def _argv(verb, values: dict[str, object]) -> list[str]:
    argv = verb.name.split()
    positional = []
    for leaf in leaves(verb.options):
        if leaf.name not in values:
            continue
        (positional if leaf.meta.get("positional") else argv).extend(_flag(leaf, values[leaf.name]))
    return argv + positional  # positionals last: an nargs="+" flag before them would swallow them


def _check(verb, options, values: dict[str, object]) -> None:
    for leaf in leaves(verb.options):
        if leaf.name in values:
            assert getattr_path(options, leaf.path) == values[leaf.name], (verb.name, leaf.name)


@pytest.mark.parametrize("verb", VERBS, ids=[v.name for v in VERBS])
def test_every_option_arrives_from_flags_and_files(verb, tmp_path):
    ones = {leaf.name: _value(leaf, 1) for leaf in leaves(verb.options)}
    twos = {leaf.name: _value(leaf, 2) for leaf in leaves(verb.options)}
    # flags alone
    _, options = parse(_argv(verb, ones), validate=False)
    _check(verb, options, ones)
    # a YAML file alone (flat keys)
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump(ones))
    _, options = parse([*verb.name.split(), "--config", str(flat)], validate=False)
    _check(verb, options, ones)
    # a JSON file with one table per section, overridden by flags: the flags win
    nested: dict[str, object] = {}
    for leaf in leaves(verb.options):
        table = nested
        for part in leaf.path[:-1]:
            table = table.setdefault(part, {})
        table[leaf.name] = ones[leaf.name]
    sectioned = tmp_path / "sections.json"
    sectioned.write_text(json.dumps(nested))
    argv = _argv(verb, twos)
    _, options = parse(
        [*argv[: len(verb.name.split())], "--config", str(sectioned), *argv[len(verb.name.split()) :]],
        validate=False,
    )
    _check(verb, options, twos)


@pytest.mark.parametrize("verb", VERBS, ids=[v.name for v in VERBS])
def test_every_option_reaches_the_public_function(verb):
    """The options are passed as keyword arguments the verb's function really takes, values unchanged."""
    _, options = parse(
        _argv(verb, {leaf.name: _value(leaf, 1) for leaf in leaves(verb.options)}), validate=False
    )
    module, _, name = verb.target.partition(":")
    function = getattr(importlib.import_module(module), name)
    kwargs = verb.arguments(options)
    inspect.signature(function).bind(**kwargs)  # raises if a parameter name does not exist
    for f in __import__("dataclasses").fields(options):
        if not f.metadata.get("cli_only"):
            assert kwargs[f.metadata.get("param", f.name)] is getattr(options, f.name)


def alias_bomb(levels: int = 9) -> str:
    """The issue's 455-byte YAML "billion laughs" under a known key: 10^levels strings once expanded."""
    inner = "".join(f", &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels))
    return "threshold: [&a0 [x,x,x,x,x,x,x,x,x,x]" + inner + "]\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("top_k: 2.5\n", "expected an integer"),
        ("record_spans: 'no'\n", "expected true or false"),
        ("seed: abc\n", "expected an integer"),
        ("threshold: [1, 2]\n", "expected a number"),
        ("edit:\n  strategy: explode\n", "must be one of"),
        ("devices: [0, x]\n", "GPU ids"),
        ("a: [1, 2\nb: 3\n", "line 2"),
        ("x: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping"),
        # the bomb was exit 1 with MemoryError after ~2 minutes: the error message built the value's repr
        (alias_bomb(), "with YAML aliases expanded, exceed 100,000 items"),
        ("threshold: &a [1, *a]\n", "recursive alias"),
        ("threshold: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("threshold: [" + ", ".join(["x" * 50] * 5000) + "]\n", "expected a number, got ['xxx"),
        # a key in the wrong section was accepted silently (`score: {threshold: ...}` as the edit threshold)
        (
            "score:\n  threshold: 0.5\n",
            "'threshold' is not an option of section [score]: it belongs in section [edit]",
        ),
        (
            "edit:\n  store_k: 3\n",
            "'store_k' is not an option of section [edit]: it belongs in section [score]",
        ),
        ("run:\n  output: r2\n", "'output' is not an option of section [run]: it belongs at the top level"),
    ],
)
def test_bad_config_files_are_exit_2(tmp_path, capsys, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert main(["edit", "in.jsonl", "-o", str(tmp_path / "r"), "--config", str(cfg)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert message in err and str(cfg) in err and "Traceback" not in err
    assert len(err) < 600  # a bounded message, whatever the value


def test_aliases_within_the_bound_still_work(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("edit: &e {threshold: 0.5}\nscore: {store_k: 3}\nseed: 4\n")
    _, options = parse(["edit", "in.jsonl", "-o", "r", "--config", str(cfg)])
    assert (options.edit.threshold, options.score.store_k, options.edit.seed) == (0.5, 3, 4)


def test_bad_toml_and_json_name_the_line(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("seed = 1\nthreshold = = 2\n")
    assert main(["edit", "x", "-o", "r", "--config", str(toml)]) == EXIT_CONFIG
    assert "line 2" in capsys.readouterr().err
    js = tmp_path / "c.json"
    js.write_text('{"seed": 1,\n "threshold": }')
    assert main(["edit", "x", "-o", "r", "--config", str(js)]) == EXIT_CONFIG
    assert "line 2" in capsys.readouterr().err


def test_flags_are_checked_like_file_values(capsys):
    for argv in (["--top-k", "2.5"], ["--seed", "abc"], ["--threshold", "x"], ["--devices", "0,x"]):
        with pytest.raises(SystemExit) as exc:
            parse(["edit", "in.jsonl", "-o", "r", *argv])
        assert exc.value.code == 2
        assert argv[0] in capsys.readouterr().err


def test_required_options_come_from_flags_or_files(tmp_path, capsys):
    assert main(["edit", "in.jsonl"]) == EXIT_CONFIG
    assert "--output" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("inputs: [a.jsonl, b.jsonl]\noutput: runs/x\n")
    _, options = parse(["edit", "--config", str(cfg)])
    assert options.inputs == ["a.jsonl", "b.jsonl"] and options.output == "runs/x"


def test_required_positionals_are_required(tmp_path, capsys):
    """An empty required positional is missing: `toedit status` with no RUN_DIR read the current directory,
    `toedit corpus -o DIR` with no name raised a traceback."""
    for argv, name in (
        (["status"], "run_dir"),
        (["report"], "run_dir"),
        (["corpus", "-o", str(tmp_path)], "name"),
    ):
        assert main(argv) == EXIT_CONFIG
        assert f"missing required option(s): {name}" in capsys.readouterr().err


def test_a_positional_with_choices_may_come_from_a_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: pydoc\n")
    _, options = parse(["corpus", "--config", str(cfg), "-o", str(tmp_path)])
    assert options.name == "pydoc"
    with pytest.raises(SystemExit) as exc:
        parse(["corpus", "dickens", "-o", str(tmp_path)])
    assert exc.value.code == 2 and "must be one of austen, pydoc, got 'dickens'" in capsys.readouterr().err


def test_leaf_names_are_unique_per_verb():
    for verb in VERBS:
        names = [leaf.name for leaf in leaves(verb.options)]
        assert len(names) == len(set(names)), verb.name
