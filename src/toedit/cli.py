"""The `toedit` command line: one verb per public function, flags generated from the config dataclasses.

Exit codes: 0 ok; 1 unexpected error; 2 usage or config error; 3 model cannot be loaded;
4 input or run-directory error; 5 more bad records than --max-errors; 6 shards failed every retry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import Any

from . import __version__
from .config import (
    SECTIONS,
    ConfigError,
    EditConfig,
    IOConfig,
    RunConfig,
    ScoreConfig,
    build,
    load_config_file,
)

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_MODEL, EXIT_INPUT, EXIT_TOO_MANY_ERRORS = 0, 1, 2, 3, 4, 5
EXIT_SHARDS_FAILED = 6  # some shards failed every retry; the others are done


def _field_type(f: dataclasses.Field) -> type:
    annotation = str(f.type)
    for name, typ in (("bool", bool), ("int", int), ("float", float)):
        if annotation.split("|")[0].strip() == name:
            return typ
    return str


def add_config_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One flag per dataclass field; defaults are suppressed so we know which flags were given."""
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        typ = _field_type(f)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        help_text = f.metadata.get("help", "")
        if "default" not in help_text:
            help_text += f" (default: {f.default})"
        if typ is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text, **kw)
        else:
            choices = f.metadata.get("choices")
            group.add_argument(flag, type=typ, choices=choices, help=help_text, **kw)


def _values(args: argparse.Namespace) -> dict[str, Any]:
    """Config values: defaults < --config file < command-line flags."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(load_config_file(args.config))
    skip = (
        "verb",
        "config",
        "func",
        "json",
        "dry_run",
        "seed",
        "thresholds",
        "betas",
        "top_k_list",
        "sample_docs",
    )
    given = {k: v for k, v in vars(args).items() if k not in skip}
    values.update(given)
    return values


def _inputs(args: argparse.Namespace, values: dict[str, Any]) -> tuple[list[str], str]:
    inputs = args.inputs or values.get("inputs") or []
    if isinstance(inputs, str):
        inputs = [inputs]
    output = getattr(args, "output", None) or values.get("output")
    if not inputs:
        raise ConfigError("no INPUT given (positional arguments or `inputs` in --config)")
    if not output:
        raise ConfigError("no output given (-o RUN_DIR, or `output` in --config)")
    return list(inputs), output


def _print_summary(summary, as_json: bool, dry_run: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    elif dry_run:
        print(f"plan: {summary.shards} shard(s) -> {summary.run_dir or 'stdout'}")
        for item in summary.plan:
            print(f"  {item['name']:<40} {item['format']:<9} {item['size']:>12,} B  {item['path']}")
    else:
        print(summary.format(), file=sys.stderr if summary.run_dir is None else sys.stdout)


def cmd_edit(args: argparse.Namespace) -> int:
    from .runs import run_edit

    values = _values(args)
    inputs, output = _inputs(args, values)
    summary = run_edit(
        inputs,
        output,
        edit=build(EditConfig, values),
        score=build(ScoreConfig, values),
        io=build(IOConfig, values),
        run=build(RunConfig, values),
        dry_run=args.dry_run,
    )
    _print_summary(summary, args.json, args.dry_run)
    return EXIT_SHARDS_FAILED if summary.failed else EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from .runs import run_score

    values = _values(args)
    inputs, output = _inputs(args, values)
    summary = run_score(
        inputs,
        output,
        score=build(ScoreConfig, values),
        io=build(IOConfig, values),
        run=build(RunConfig, values),
        dry_run=args.dry_run,
    )
    _print_summary(summary, args.json, args.dry_run)
    return EXIT_SHARDS_FAILED if summary.failed else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from .runs import format_status, run_status

    status = run_status(args.run_dir)
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .runs import run_report

    print(run_report(args.run_dir, args.examples))
    return EXIT_OK


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from exc


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import run_sweep

    values = _values(args)
    result = run_sweep(
        args.inputs,
        args.output,
        thresholds=_floats(args.thresholds),
        betas=_floats(args.betas),
        top_ks=[int(k) for k in _floats(args.top_k_list)],
        sample_docs=args.sample_docs,
        seed=args.seed,
        score=build(ScoreConfig, values),
        io=build(IOConfig, values),
        run=build(RunConfig, values),
    )
    print(json.dumps(result, indent=2) if args.json else result["table"])
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from .audit import run_diff

    limit = args.limit or None
    print(
        run_diff(
            args.run_dir, doc=args.doc, html=args.html, limit=limit, color=args.color, context=args.context
        )
    )
    return EXIT_OK


def cmd_theory(args: argparse.Namespace) -> int:
    from .theory import run_theory

    result = run_theory(
        d=args.d,
        T=args.T,
        sigma=args.sigma,
        generations=args.generations,
        trials=args.trials,
        fraction=args.fraction,
        eta=args.eta,
        seed=args.seed,
        out_dir=args.output,
        design=args.design,
    )
    print(result["table"])
    print()
    print(result["statement"])
    return EXIT_OK


def cmd_select(args: argparse.Namespace) -> int:
    from .analysis.dsir import select_files

    _, summary = select_files(
        args.target,
        args.raw,
        args.n,
        args.output,
        text_field=args.text_field,
        seed=args.seed,
        length_normalized=args.length_normalized,
    )
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def cmd_corpus(args: argparse.Namespace) -> int:
    from .corpora import fetch_corpus

    for path in fetch_corpus(args.name, args.output):
        print(path)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toedit", description="ToEdit: token-level editing of human text.")
    parser.add_argument("--version", action="version", version=f"toedit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="verb", required=True)

    def run_verb(name: str, help_text: str, sections: tuple[str, ...], func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("inputs", nargs="*", metavar="INPUT", help="files, directories, globs, or - for stdin")
        p.add_argument(
            "-o", "--output", metavar="RUN_DIR", help="run directory (edit: - writes JSONL to stdout)"
        )
        p.add_argument("--config", metavar="FILE", help="YAML or TOML file with the same keys as the flags")
        p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")
        for section in sections:
            add_config_flags(p, SECTIONS[section], f"{section} options")
        p.set_defaults(func=func)
        return p

    run_verb(
        "edit",
        "edit corpora with the ToEdit rule into a resumable run directory",
        ("edit", "score", "io", "run"),
        cmd_edit,
    )
    run_verb(
        "score",
        "score corpora (token log-probs, top-k) into RUN_DIR/scores",
        ("score", "io", "run"),
        cmd_score,
    )

    p = sub.add_parser("sweep", help="score a sample once; selected/expected/realised change %% per setting")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("-o", "--output", metavar="DIR", help="write sweep.json, sweep.md and sweep.png here")
    p.add_argument("--thresholds", default="0.9,0.95,0.99", help="comma-separated (default: 0.9,0.95,0.99)")
    p.add_argument("--betas", default="1,1.5", help="comma-separated (default: 1,1.5)")
    p.add_argument("--top-k", dest="top_k_list", default="8,64", help="comma-separated (default: 8,64)")
    p.add_argument("--sample-docs", type=int, default=256, help="documents sampled, seeded (default: 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    for section in ("score", "io", "run"):
        add_config_flags(p, SECTIONS[section], f"{section} options")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("diff", help="show the edits of a run (terminal colours, or --html page)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--doc", help="only this document id")
    p.add_argument("--html", metavar="OUT", help="also write a self-contained HTML page")
    p.add_argument("--limit", type=int, default=20, help="documents shown; 0 = all (default: 20)")
    p.add_argument("--context", type=int, default=None, help="terminal: characters shown around each edit")
    p.add_argument(
        "--color", action=argparse.BooleanOptionalAction, default=None, help="default: if a terminal"
    )
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("status", help="progress and stats of a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="write RUN_DIR/report.md: totals, probability table, sample edits")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--examples", type=int, default=12, help="edits shown (default: 12)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("select", help="DSIR: pick raw documents whose hashed n-grams look like the target's")
    p.add_argument("--target", nargs="+", required=True, metavar="INPUT", help="target (human) corpus")
    p.add_argument("--raw", nargs="+", required=True, metavar="INPUT", help="raw (e.g. synthetic) pool")
    p.add_argument("-n", type=int, required=True, help="documents to select")
    p.add_argument("-o", "--output", required=True, metavar="JSONL", help="selected raw records")
    p.add_argument("--text-field", default="text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--length-normalized",
        action="store_true",
        help="rank by log w scaled to the mean document length (raw log weights grow with length)",
    )
    p.set_defaults(func=cmd_select)

    p = sub.add_parser(
        "theory", help="linear-regression collapse chains: Monte Carlo, closed forms, exact oracle"
    )
    p.add_argument("--d", type=int, default=10, help="dimension (default: 10)")
    p.add_argument("--T", type=int, default=50, help="rows of the design (default: 50)")
    p.add_argument("--sigma", type=float, default=1.0, help="label noise (default: 1.0)")
    p.add_argument("--generations", type=int, default=12, help="(default: 12)")
    p.add_argument("--trials", type=int, default=2000, help="Monte Carlo trials per point (default: 2000)")
    p.add_argument(
        "--fraction", type=float, default=0.3, help="share of rows edited in round 1 (default: 0.3)"
    )
    p.add_argument(
        "--eta", type=float, default=0.8, help="geometric decay of the edited share (default: 0.8)"
    )
    p.add_argument("--design", choices=["random", "fixed"], default="random", help="average over X, or one X")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", metavar="DIR", help="write theory.json, theory.md and theory.png here")
    p.set_defaults(func=cmd_theory)

    p = sub.add_parser("corpus", help="fetch an offline human-written corpus as JSONL (austen, pydoc)")
    p.add_argument("name", help="austen | pydoc")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.set_defaults(func=cmd_corpus)

    # each capability registers its own verbs (kept beside its code; imports stay light until a verb runs)
    from .analysis.cli import add_verbs as add_analysis_verbs
    from .experiments.cli import add_verbs as add_experiment_verbs

    add_analysis_verbs(sub)
    add_experiment_verbs(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .io import InputError
    from .prior import PriorError
    from .runs import RunDirError, TooManyErrors

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"toedit: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PriorError as exc:
        print(f"toedit: model error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except (InputError, RunDirError, FileNotFoundError) as exc:
        print(f"toedit: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except TooManyErrors as exc:
        print(f"toedit: {exc}", file=sys.stderr)
        return EXIT_TOO_MANY_ERRORS
    except KeyboardInterrupt:
        print("toedit: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
