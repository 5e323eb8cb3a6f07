"""CLI verbs of the experiments capability (`toedit generate`, `train`, `experiment`); registered by `toedit.cli`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

DEFAULT_HUMAN = ["data/austen"]


def _config(cls: type, args: argparse.Namespace, quick: dict | None = None):
    """`cls` from the flags that were given (defaults suppressed), over the quick preset when asked."""
    from .mix import preset

    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return preset(cls, bool(quick) and getattr(args, "quick", False), quick or {}, **given)


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import GenerateConfig, run_generate

    summary = run_generate(
        args.inputs,
        args.output,
        _config(GenerateConfig, args),
        topics=args.topics,
        model=args.model,
        text_field=args.text_field,
        id_field=args.id_field,
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .generate import read_texts
    from .tinylm import TrainConfig, train_tinylm

    texts = [t for _, t in read_texts(args.inputs, args.text_field)]
    heldout = [t for _, t in read_texts(args.heldout, args.text_field)] if args.heldout else []
    result = train_tinylm(texts, _config(TrainConfig, args), heldout=heldout, output=args.output)
    metrics = {k: v for k, v in result["metrics"].items() if k != "losses"}
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_mix(args: argparse.Namespace) -> int:
    from .mix import MIX_QUICK, MixConfig, run_mix

    result = run_mix(args.human, args.output, _config(MixConfig, args, MIX_QUICK))
    print(result["table"] + "\n\n" + result["statement"])
    return 0


def cmd_collapse(args: argparse.Namespace) -> int:
    from .collapse import COLLAPSE_QUICK, CollapseConfig, run_collapse

    result = run_collapse(args.human, args.output, _config(CollapseConfig, args, COLLAPSE_QUICK))
    print(result["table"] + "\n\n" + result["statement"])
    return 0


def cmd_all(args: argparse.Namespace) -> int:
    from .results import findings, run_all

    command = "toedit " + " ".join(sys.argv[1:]) if sys.argv and "toedit" in sys.argv[0] else None
    out = run_all(
        args.human,
        args.output,
        quick=args.quick,
        results=args.results,
        seeds=args.seeds,
        threads=args.threads,
        command=command,
        resume=args.resume,
    )
    print("\n".join(findings(out["theory"], out["mix"], out["collapse"], out["mix_once"], out["editrounds"])))
    if args.results:
        print(f"\nwrote {args.results}")
    return 0


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Add this capability's verbs to the `toedit` sub-command parser."""
    from ..cli import add_config_flags
    from .collapse import CollapseConfig
    from .generate import GenerateConfig
    from .mix import MixConfig
    from .tinylm import TrainConfig

    p = sub.add_parser(
        "generate", help="synthetic documents from the prior, prompted by human openings or topics"
    )
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="human documents: their first tokens are the prompts"
    )
    p.add_argument("-o", "--output", required=True, metavar="JSONL", help="output records (.jsonl[.gz])")
    p.add_argument(
        "--topics", metavar="FILE", help="one topic per line, used as the prompt (instead of INPUT)"
    )
    p.add_argument(
        "--model", default="default", help="prior (default: the embedded SmolLM2-135M, no chat template)"
    )
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default="id")
    add_config_flags(p, GenerateConfig, "generation options")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("train", help="train a tiny Llama from scratch; report held-out perplexity")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="training documents")
    p.add_argument("-o", "--output", metavar="DIR", help="save model, tokenizer and metrics.json here")
    p.add_argument("--heldout", nargs="*", metavar="FILE", help="held-out documents for the perplexity")
    p.add_argument("--text-field", default="text")
    add_config_flags(p, TrainConfig, "model and training options")
    p.set_defaults(func=cmd_train)

    exp = sub.add_parser("experiment", help="mixing, collapse chains, or all of them -> docs/RESULTS.md")
    esub = exp.add_subparsers(dest="experiment", required=True)

    def experiment(
        name: str, help_text: str, cls: type | None, func, out: str = ""
    ) -> argparse.ArgumentParser:
        q = esub.add_parser(name, help=help_text, description=help_text)
        out = out or f"runs/{name}"
        q.add_argument(
            "--human", nargs="+", default=DEFAULT_HUMAN, help="human corpus (default: data/austen)"
        )
        q.add_argument("-o", "--output", default=out, help=f"output directory (default: {out})")
        q.add_argument("--quick", action="store_true", help="the quick setting (minutes on 2 CPU cores)")
        if cls is not None:
            add_config_flags(q, cls, f"{name} options")
        q.set_defaults(func=func)
        return q

    experiment("mix", "held-out human PPL vs synthetic share of the training tokens", MixConfig, cmd_mix)
    experiment(
        "collapse",
        "replace / accumulate / ToEdit generation chains of tiny LMs",
        CollapseConfig,
        cmd_collapse,
    )
    q = experiment(
        "all", "theory + mix + collapse; writes the results page", None, cmd_all, "runs/experiments"
    )
    q.add_argument(
        "--results", default="docs/RESULTS.md", help="results page (figures beside it as exp_*.png)"
    )
    q.add_argument("--seeds", default=None, help="override the seeds of mix and collapse, e.g. 0,1,2")
    q.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    q.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse mix/collapse results in OUTPUT computed with the same configuration (default: yes)",
    )
