"""Dataclass options: one schema for Python, command-line flags and YAML/TOML/JSON config files.

A verb's options are one dataclass whose fields are leaves (int, float, str, bool, optional or list of those)
or sections (nested dataclasses). Leaf names are unique within a verb, so flags stay flat (`--seed`, not
`--edit.seed`) while config files may use either flat keys or one table per section. Flags and file values go
through the same converters (`coerce`), so a value is checked the same way wherever it comes from:
defaults < config file < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import reprlib
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


# A YAML file's values after its aliases are expanded: a config needs a few hundred at most; a 455-byte
# "billion laughs" file expands to 10^9 (its repr alone would exhaust memory), so it is refused beforehand.
MAX_CONFIG_NODES = 100_000
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother = 3, 8, 8, 80, 80


def shown(value: Any) -> str:
    """A bounded repr of a config value for an error message (never the whole of a huge or deep value)."""
    return _SHOWN.repr(value)


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A leaf option with its help text; `kw` are metadata: choices, flags, positional, nargs, cli_only,
    param (the public function's parameter name when it differs), convert (a custom converter)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def section(cls: type, help: str = "") -> Any:
    """A nested dataclass of options (its leaves become flags of the same verb)."""
    return field(default_factory=cls, metadata={"help": help or (cls.__doc__ or "").strip(), "section": True})


@dataclass(frozen=True)
class Leaf:
    """One option: where it lives (`path`, e.g. ("edit", "seed")), its type and its dataclass field."""

    path: tuple[str, ...]
    typ: Any
    field: dataclasses.Field

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def meta(self) -> typing.Mapping[str, Any]:
        return self.field.metadata

    @property
    def default(self) -> Any:
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return None if self.field.default is dataclasses.MISSING else self.field.default

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def is_section(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("section"))


def leaves(cls: type, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """Every leaf option of `cls`, sections expanded; raises if two leaves share a name."""
    out: list[Leaf] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if is_section(f):
            out += leaves(hints[f.name], (*prefix, f.name))
        else:
            out.append(Leaf((*prefix, f.name), hints[f.name], f))
    if not prefix:
        seen: dict[str, tuple[str, ...]] = {}
        for leaf in out:
            if leaf.name in seen:
                raise TypeError(
                    f"{cls.__name__}: option {leaf.name!r} is in {seen[leaf.name]} and {leaf.path}"
                )
            seen[leaf.name] = leaf.path
    return out


def sections(cls: type) -> dict[str, type]:
    hints = _hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if is_section(f)}


# ---------------------------------------------------------------------------------------------- conversion


def _unwrap(typ: Any) -> tuple[Any, bool]:
    """(the type without `| None`, whether None is allowed)."""
    if isinstance(typ, types.UnionType) or typing.get_origin(typ) is typing.Union:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return (args[0] if len(args) == 1 else typ), len(args) < len(typing.get_args(typ))
    return typ, False


def _scalar(value: Any, typ: Any, where: str, from_text: bool) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {shown(value)}")
    if typ is int:
        if from_text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {shown(value)}")
    if typ is float:
        if from_text and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {shown(value)}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {shown(value)}")
    raise TypeError(f"{where}: unsupported option type {typ!r}")


def coerce(leaf: Leaf, value: Any, where: str, from_text: bool = False) -> Any:
    """Check and convert one value for `leaf` (`from_text`: a command-line string)."""
    where = f"{where} {leaf.name!r}" if where else f"option {leaf.name!r}"
    convert: Callable[[Any], Any] | None = leaf.meta.get("convert")
    if convert is not None:
        try:
            return convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    typ, optional = _unwrap(leaf.typ)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required (got null)")
    if typing.get_origin(typ) is list:
        (item,) = typing.get_args(typ)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {shown(value)}")
        out = [_scalar(v, item, where, from_text or isinstance(v, str) and item is not str) for v in value]
    else:
        out = _scalar(value, typ, where, from_text)
    choices = leaf.meta.get("choices")
    if choices is not None and out not in choices:
        raise ConfigError(f"{where}: must be one of {', '.join(map(str, choices))}, got {out!r}")
    return out


# ------------------------------------------------------------------------------------------------- files


def _parse_file(p: Path) -> Any:
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return _load_yaml(text, p)
        except RecursionError:
            raise ConfigError(f"{p}: not a usable config: its values are nested too deeply") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{p}{where}: not valid YAML: {problem}") from exc
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p} line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}") from exc
    raise ConfigError(f"{p}: a config file must be .yaml, .yml, .toml or .json")


def _load_yaml(text: str, p: Path) -> Any:
    """yaml.safe_load, but the document's size with its aliases expanded is bounded before it is built."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, p)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expanded_size(root: Any, p: Path) -> None:
    """Count the nodes of a composed YAML document as if every alias were copied out (each shared node is
    counted once per use, computed once); refuse recursive aliases and more than MAX_CONFIG_NODES."""
    import yaml

    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(f"{p}: a YAML alias refers to a value that contains it (recursive alias)")
        open_.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_CONFIG_NODES:
                raise ConfigError(
                    f"{p}: the file's values, with YAML aliases expanded, exceed {MAX_CONFIG_NODES:,} items "
                    "(an alias bomb?); write the values out or shorten them"
                )
        open_.discard(key)
        sizes[key] = total
        return total

    size(root)


def read_config_file(path: str | Path, cls: type) -> dict[str, Any]:
    """The options a YAML/TOML/JSON file sets for verb `cls`, checked and converted: {leaf name: value}.

    Keys are leaf names (dashes or underscores) at the top level, or inside a table named after their section.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = _parse_file(p)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping of option names to values")
    by_name = {leaf.name: leaf for leaf in leaves(cls)}
    secs = sections(cls)
    flat: dict[str, tuple[Any, str]] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name in secs and isinstance(value, dict):
            for sub, v in value.items():
                sub_name = str(sub).replace("-", "_")
                leaf = by_name.get(sub_name)
                if leaf is not None and leaf.path[:-1] != (name,):
                    home = (
                        f"in section [{leaf.path[-2]}] (or at the top level)"
                        if len(leaf.path) > 1
                        else "at the top level"
                    )
                    raise ConfigError(
                        f"{p}: {sub_name!r} is not an option of section [{name}]: it belongs {home}"
                    )
                flat[sub_name] = (v, f"{p}: [{name}]")
        else:
            flat[name] = (value, f"{p}:")
    unknown = sorted(set(flat) - set(by_name))
    if unknown:
        raise ConfigError(f"{p}: unknown option(s) {unknown}; this command takes {sorted(by_name)}")
    return {name: coerce(by_name[name], value, where) for name, (value, where) in flat.items()}


# ------------------------------------------------------------------------------------------------- build


def build(cls: type, values: dict[str, Any], validate: bool = True):
    """An instance of verb or section `cls` from {leaf name: value} (missing leaves keep their defaults)."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if is_section(f):
            kwargs[f.name] = build(hints[f.name], values, validate)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    obj = cls(**kwargs)
    if validate:
        missing = [
            f.name if f.metadata.get("positional") else "--" + f.name.replace("_", "-")
            for f in dataclasses.fields(cls)
            if f.metadata.get("required") and getattr(obj, f.name) in (None, [], "")
        ]
        if missing:
            raise ConfigError(f"missing required option(s): {', '.join(missing)} (flags or --config)")
        check = getattr(obj, "validate", None)
        if check is not None:
            try:
                check()
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(f"{cls.__name__}: {exc}") from exc
    return obj


def getattr_path(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


# ------------------------------------------------------------------------------------------------- flags


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag (or positional) per leaf; defaults are suppressed so that only given flags appear."""
    groups: dict[tuple[str, ...], Any] = {}
    for leaf in leaves(cls):
        owner = leaf.path[:-1]
        if owner not in groups:
            groups[owner] = parser.add_argument_group(f"{owner[-1]} options") if owner else parser
        group = groups[owner]
        meta = leaf.meta
        help_text = meta.get("help", "")
        default = leaf.default
        if "default" not in help_text and default not in (None, [], "") and not meta.get("positional"):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" (default: {shown})"
        typ, _ = _unwrap(leaf.typ)
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
        if meta.get("choices"):
            kw["metavar"] = "{" + ",".join(map(str, meta["choices"])) + "}"
        if meta.get("positional"):
            # "?": a required positional may also come from --config (checked once both are merged)
            many = meta.get("nargs") is not None
            nargs = meta.get("nargs", "?")
            group.add_argument(leaf.name, nargs=nargs, type=_flag_type(leaf, item=many), **kw)
            continue
        names = [*meta.get("flags", ()), leaf.flag]
        if typ is bool and meta.get("convert") is None:
            group.add_argument(*names, dest=leaf.name, action=argparse.BooleanOptionalAction, **kw)
        elif meta.get("nargs"):
            group.add_argument(
                *names, dest=leaf.name, nargs=meta["nargs"], type=_flag_type(leaf, item=True), **kw
            )
        else:
            group.add_argument(*names, dest=leaf.name, type=_flag_type(leaf), **kw)


def _flag_type(leaf: Leaf, item: bool = False) -> Callable[[str], Any]:
    """argparse type function: the same converter as config files, from text (item: one list element)."""

    def convert(text: str) -> Any:
        if text is argparse.SUPPRESS:  # an absent "?" positional: argparse converts its default too
            return text
        try:
            if item:
                return coerce(leaf, [text], "", from_text=True)[0]
            return coerce(leaf, text, "", from_text=True)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from exc

    convert.__name__ = leaf.name  # argparse names the type in its error message
    return convert


def given_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """{leaf name: value} of the flags and positionals given on the command line."""
    names = {leaf.name for leaf in leaves(cls)}
    out = {k: v for k, v in vars(args).items() if k in names}
    for leaf in leaves(cls):  # nargs="*" positionals are always present; empty means not given
        if leaf.meta.get("positional") and out.get(leaf.name, 0) in ([], None):
            del out[leaf.name]
    return out


# ------------------------------------------------------------------------------------------------- verbs


@dataclass(frozen=True)
class Verb:
    """A CLI verb: its options dataclass, the public function they are passed to, and how results print."""

    name: str  # "edit", or "experiment mix" for a sub-verb
    options: type
    target: str  # "module:function", imported when the verb runs
    show: Callable[[Any, Any], int]
    prepare: Callable[[Any, set[str]], Any] | None = None  # (options, names given) -> options (presets)

    @property
    def help(self) -> str:
        doc = (self.options.__doc__ or "").strip()
        return doc.split(": ", 1)[-1] if doc.startswith("`") else doc

    def function(self) -> Callable[..., Any]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def arguments(self, options: Any) -> dict[str, Any]:
        """The keyword arguments the public function receives: every option that is not CLI-only."""
        return {
            f.metadata.get("param", f.name): getattr(options, f.name)
            for f in dataclasses.fields(options)
            if not f.metadata.get("cli_only")
        }

    def run(self, options: Any) -> int:
        return self.show(self.function()(**self.arguments(options)), options)
