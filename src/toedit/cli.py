"""The `toedit` command line: one verb per public function, each verb's flags generated from one dataclass.

A verb is (options dataclass, public function, printer). Its flags are the dataclass's leaves (see
`toedit.options`), `--config FILE` sets the same keys from a file, and the options reach the function as
keyword arguments of the same names: the CLI adds nothing but parsing and printing.

Exit codes: 0 ok; 1 unexpected error; 2 usage or config error; 3 model cannot be loaded;
4 input or run-directory error (also: RUN_DIR in use by another process, or cannot be written: out of
space, read-only, no permission); 5 more bad records than
--max-errors; 6 shards failed every retry; 130 interrupted (SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from ._version import __version__
from .config import EditConfig, IOConfig, RunConfig, ScoreConfig
from .corpora import CORPORA
from .options import ConfigError, Verb, add_flags, build, given_values, opt, read_config_file, section

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_MODEL, EXIT_INPUT, EXIT_TOO_MANY_ERRORS = 0, 1, 2, 3, 4, 5
EXIT_SHARDS_FAILED = 6  # some shards failed every retry; the others are done
EXIT_INTERRUPTED = 130

_INPUTS_HELP = "files, directories, globs, or - for stdin"


# ------------------------------------------------------------------------------------------- verb options


@dataclass
class EditOptions:
    """`toedit edit`: edit corpora with the ToEdit rule into a resumable run directory."""

    inputs: list[str] = opt([], _INPUTS_HELP, positional=True, nargs="*", required=True)
    output: str | None = opt(None, "run directory (- writes JSONL to stdout)", flags=("-o",), required=True)
    dry_run: bool = opt(False, "print the plan (shards, settings that differ from the defaults) and exit")
    json: bool = opt(False, "print the summary as JSON", cli_only=True)
    edit: EditConfig = section(EditConfig)
    score: ScoreConfig = section(ScoreConfig)
    io: IOConfig = section(IOConfig)
    run: RunConfig = section(RunConfig)


@dataclass
class ScoreOptions:
    """`toedit score`: token log-probs into RUN_DIR/scores (top-k too with --save-topk)."""

    inputs: list[str] = opt([], _INPUTS_HELP, positional=True, nargs="*", required=True)
    output: str | None = opt(None, "run directory", flags=("-o",), required=True)
    dry_run: bool = opt(False, "print the plan (shards, settings that differ from the defaults) and exit")
    json: bool = opt(False, "print the summary as JSON", cli_only=True)
    score: ScoreConfig = section(ScoreConfig)
    io: IOConfig = section(IOConfig)
    run: RunConfig = section(RunConfig)


@dataclass
class SweepOptions:
    """`toedit sweep`: score a sample once; selected / expected / realised change % per setting."""

    inputs: list[str] = opt([], _INPUTS_HELP, positional=True, nargs="*", required=True)
    output: str | None = opt(None, "write sweep.json, sweep.md and sweep.png here", flags=("-o",))
    thresholds: list[float] = opt([0.9, 0.95, 0.99], "comma-separated thresholds")
    betas: list[float] = opt([1.0, 1.5], "comma-separated betas")
    top_ks: list[int] = opt([8, 64], "comma-separated top-k values", flags=("--top-k",))
    sample_docs: int = opt(256, "documents sampled (seeded)")
    seed: int = opt(0, "sampling and editing seed (the same streams as `toedit edit --seed`)")
    json: bool = opt(False, "print the result as JSON", cli_only=True)
    score: ScoreConfig = section(ScoreConfig)
    io: IOConfig = section(IOConfig)
    run: RunConfig = section(RunConfig)


@dataclass
class DiffOptions:
    """`toedit diff`: show the edits of a run (terminal colours, or an --html page)."""

    run_dir: str = opt("", "run directory", positional=True, required=True)
    doc: str | None = opt(None, "only this document id")
    html: str | None = opt(None, "also write a self-contained HTML page here")
    limit: int = opt(20, "documents shown; 0 = all")
    context: int | None = opt(None, "terminal: characters shown around each edit")
    color: bool | None = opt(None, "colour the terminal view (default: if a terminal)")


@dataclass
class StatusOptions:
    """`toedit status`: progress and stats of a run directory (per round for --rounds N)."""

    run_dir: str = opt("", "run directory", positional=True, required=True)
    json: bool = opt(False, "print the status as JSON", cli_only=True)


@dataclass
class ReportOptions:
    """`toedit report`: write RUN_DIR/report.md: totals, probability table, sample edits."""

    run_dir: str = opt("", "run directory", positional=True, required=True)
    examples: int = opt(12, "edits shown")


@dataclass
class SelectOptions:
    """`toedit select`: DSIR, pick raw documents whose hashed n-grams look like the target's."""

    target: list[str] = opt([], "target (human) corpus", nargs="+", required=True, param="target_paths")
    raw: list[str] = opt([], "raw (e.g. synthetic) pool", nargs="+", required=True, param="raw_paths")
    n: int | None = opt(None, "documents to select", flags=("-n",), required=True)
    output: str | None = opt(
        None, "selected raw records (JSONL)", flags=("-o",), required=True, param="out_path"
    )
    text_field: str = opt("text", "field holding the text")
    seed: int = opt(0, "Gumbel top-k seed")
    length_normalized: bool = opt(
        False, "rank by log w scaled to the mean document length (raw log weights grow with length)"
    )


@dataclass
class TheoryOptions:
    """`toedit theory`: linear-regression collapse chains: Monte Carlo, closed forms, exact oracle."""

    d: int = opt(10, "dimension")
    T: int = opt(50, "rows of the design")
    sigma: float = opt(1.0, "label noise")
    generations: int = opt(12, "generations per chain")
    trials: int = opt(2000, "Monte Carlo trials per point")
    fraction: float = opt(0.3, "share of rows edited in round 1")
    eta: float = opt(0.8, "geometric decay of the edited share")
    design: str = opt("random", "average over X (random), or one X (fixed)", choices=("random", "fixed"))
    seed: int = opt(0, "random seed")
    last: int = opt(
        3, "generations over which a chain's growth is judged (the mean increment per generation)"
    )
    increment_margin: float = opt(
        0.01,
        "growth per generation (in u) too small to matter: under 1u in 100 generations counts as bounded",
    )
    bound_margin: float = opt(0.05, "distance from 2u (in u) within which Theorem 2 is 'at the bound'")
    scope: bool = opt(True, "also compute Theorem 2's scope table (plateau error vs share of rows edited)")
    output: str | None = opt(
        None, "write theory.json, theory.md and theory.png here", flags=("-o",), param="out_dir"
    )


@dataclass
class CorpusOptions:
    """`toedit corpus`: fetch an offline human-written corpus as JSONL (austen, pydoc)."""

    name: str | None = opt(None, " | ".join(CORPORA), positional=True, required=True, choices=CORPORA)
    output: str | None = opt(
        None, "directory for the JSONL files", flags=("-o",), required=True, param="dest"
    )


# ----------------------------------------------------------------------------------------------- printers


def _show_summary(summary, options) -> int:
    if options.json:
        print(json.dumps(summary.to_dict(), indent=2))
    elif options.dry_run:
        print(f"plan: {summary.shards} shard(s) -> {summary.run_dir or 'stdout'}")
        changed = _changed_settings(options)
        print(f"settings: {' '.join(changed) if changed else 'all defaults'}")
        for item in summary.plan:
            print(f"  {item['name']:<40} {item['format']:<9} {item['size']:>12,} B  {item['path']}")
        for skipped in summary.skipped:
            print(f"  not read: {skipped['path']} ({skipped['reason']})")
    else:
        print(summary.format(), file=sys.stderr if summary.run_dir is None else sys.stdout)
    return EXIT_SHARDS_FAILED if summary.failed else EXIT_OK


def _changed_settings(options) -> list[str]:
    """`key=value` of every edit / score / io / run setting that differs from its default (flags and
    --config alike): what a dry run would run with."""
    out = []
    for name in ("edit", "score", "io", "run"):
        cfg = getattr(options, name, None)
        if cfg is None:
            continue
        default = type(cfg)()
        out += [
            f"{f.name}={getattr(cfg, f.name)}"
            for f in fields(cfg)
            if getattr(cfg, f.name) != getattr(default, f.name)
        ]
    return out


def _show_sweep(result, options) -> int:
    print(json.dumps(result, indent=2) if options.json else result["table"])
    return EXIT_OK


def _show_text(text, options) -> int:
    print(text)
    return EXIT_OK


def _show_status(status, options) -> int:
    from .runs import format_status

    print(json.dumps(status, indent=2) if options.json else format_status(status))
    return EXIT_OK


def _show_json(result, options) -> int:
    print(json.dumps(result[1] if isinstance(result, tuple) else result, indent=2))
    return EXIT_OK


def _show_theory(result, options) -> int:
    print(result["table"] + "\n\n" + result["statement"])
    if result.get("scope"):
        from .theory.scope import scope_markdown

        print("\nTheorem 2's scope (disjoint masks, exact oracle):\n\n" + scope_markdown(result["scope"]))
    return EXIT_OK


def _show_paths(paths, options) -> int:
    for path in paths:
        print(path)
    return EXIT_OK


# ------------------------------------------------------------------------------------------- verb registry


CORE_VERBS = (
    Verb("edit", EditOptions, "toedit.runs:run_edit", _show_summary),
    Verb("score", ScoreOptions, "toedit.runs:run_score", _show_summary),
    Verb("sweep", SweepOptions, "toedit.sweep:run_sweep", _show_sweep),
    Verb("diff", DiffOptions, "toedit.audit:run_diff", _show_text),
    Verb("status", StatusOptions, "toedit.runs:run_status", _show_status),
    Verb("report", ReportOptions, "toedit.runs:run_report", _show_text),
    Verb("select", SelectOptions, "toedit.analysis.dsir:select_files", _show_json),
    Verb("theory", TheoryOptions, "toedit.theory:run_theory", _show_theory),
    Verb("corpus", CorpusOptions, "toedit.corpora:fetch_corpus", _show_paths),
)


def all_verbs() -> list[Verb]:
    """Every verb, the capabilities' own included (each keeps its verbs beside its code)."""
    from .analysis.cli import VERBS as ANALYSIS_VERBS
    from .experiments.cli import VERBS as EXPERIMENT_VERBS

    return [*CORE_VERBS, *ANALYSIS_VERBS, *EXPERIMENT_VERBS]


def build_parser(verbs: Sequence[Verb] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toedit", description="ToEdit: token-level editing of human text.")
    parser.add_argument("--version", action="version", version=f"toedit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="verb", required=True)
    groups: dict[str, Any] = {}
    for verb in verbs or all_verbs():
        parent, _, child = verb.name.rpartition(" ")
        if parent:
            if parent not in groups:
                group = sub.add_parser(parent, help=f"{parent} sub-commands")
                groups[parent] = group.add_subparsers(dest=f"{parent}_verb", required=True)
            holder = groups[parent]
        else:
            holder = sub
        p = holder.add_parser(child, help=verb.help.replace("%", "%%"), description=verb.help)
        p.add_argument(
            "--config", metavar="FILE", help="YAML, TOML or JSON file with the same keys as the flags"
        )
        add_flags(p, verb.options)
        p.set_defaults(_verb=verb, _parser=p)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """argparse's message for arguments a verb does not take, with the closest flag of a typo."""
    flags = {
        name[2:]: name for action in parser._actions for name in action.option_strings if name[:2] == "--"
    }
    typos = [x.split("=")[0][2:] for x in extra if x.startswith("--")]
    close = [flags[m[0]] for t in typos if (m := difflib.get_close_matches(t, list(flags), n=1, cutoff=0.75))]
    return f"unrecognized arguments: {' '.join(extra)}" + (
        f" (did you mean {', '.join(close)}?)" if close else ""
    )


def parse_options(verb: Verb, args: argparse.Namespace, validate: bool = True) -> Any:
    """The verb's options: defaults < --config file < flags, checked by the same converters."""
    values = read_config_file(args.config, verb.options) if getattr(args, "config", None) else {}
    flags = given_values(args, verb.options)
    values.update(flags)
    options = build(verb.options, values, validate=validate)
    if verb.prepare is not None:
        options = verb.prepare(options, set(values))
    return options


def parse(argv: Sequence[str], validate: bool = True) -> tuple[Verb, Any]:
    """(verb, options) for a command line, without running anything (tests, dry runs)."""
    args = build_parser().parse_args(list(argv))
    return args._verb, parse_options(args._verb, args, validate)


def _sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C: temp files removed, no completion marker


def _verbs_for(argv: Sequence[str]) -> list[Verb] | None:
    """Only the core verb named by `argv` when it names one (`toedit edit ...`): the analysis and experiment
    verbs' modules are then not imported. None (every verb) otherwise, e.g. for `toedit --help`."""
    words = [a for a in argv if not a.startswith("-")]
    named = [v for v in CORE_VERBS if words and v.name == words[0]]
    return named or None


# The error classes main() maps to exit codes, by module, so that `toedit.cli` imports no torch: a class is
# looked up only when its module is already imported (one not imported cannot have raised).
# tests/test_cli.py checks that every name here exists.
EXIT_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("toedit.analysis.dsir", "SelectionError", EXIT_INPUT),
    ("toedit.corpora", "CorpusError", EXIT_INPUT),
    ("toedit.optional", "MissingExtra", EXIT_CONFIG),
    ("toedit.prior", "PriorError", EXIT_MODEL),
    ("toedit.io.records", "InputError", EXIT_INPUT),
    ("toedit.runs.layout", "RunDirError", EXIT_INPUT),  # RunLocked is one too
    ("toedit.runs.shard", "TooManyErrors", EXIT_TOO_MANY_ERRORS),
)


def _exit_code(exc: BaseException) -> int | None:
    """The exit code of an error main() reports, None for others."""
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, FileNotFoundError):
        return EXIT_INPUT
    for module, name, code in EXIT_ERRORS:
        found = sys.modules.get(module)
        if found is not None and isinstance(exc, getattr(found, name)):
            return code
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, extra = build_parser(_verbs_for(argv)).parse_known_args(argv)
    if extra:  # reported by the verb's parser: its usage, not the top level's (which lists one verb)
        args._parser.error(_unrecognized(args._parser, extra))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        previous = None
    try:
        return args._verb.run(parse_options(args._verb, args))
    except KeyboardInterrupt:
        # If the interrupt passed through code run by exec() of a string (a lazy import building dataclasses,
        # torch.compile's first use), CPython flagged it as unhandled and would end the process by SIGINT
        # instead of with our exit code; each exec() of a string resets that flag.
        exec("None")  # noqa: S102
        print("toedit: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            if not isinstance(exc, OSError) or exc.errno not in _WRITE_ERRNOS:
                raise
            print(f"toedit: cannot write: {exc}; rerun the same command to resume", file=sys.stderr)
            return EXIT_INPUT
        prefix = {EXIT_CONFIG: "config error: ", EXIT_MODEL: "model error: "}.get(code, "")
        print(f"toedit: {prefix}{exc}", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


if __name__ == "__main__":
    sys.exit(main())
