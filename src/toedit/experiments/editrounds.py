"""The paper's Table 15: the share of tokens above the threshold over repeated editing rounds of a real corpus.

`edit_texts(..., EditConfig(rounds=N))` re-scores each round's output with the same prior and threshold;
`EditResult.rounds` holds every round's counts. Run once at the paper's p = 0.99 and once at a threshold
calibrated (on the round-0 text) so that the round-0 selected share matches the paper's 12.5 %, then kept
fixed. The paper: 12.5 -> 11.76 -> 11.08 % above 0.99 over three rounds.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, EditConfig
from ..verdicts import Test, Verdict, family, family_note, fmt_delta, paired_delta
from .human import load_human, sample

PAPER_TABLE15 = (12.5, 11.76, 11.08)  # % of tokens above p = 0.99, rounds 1-3 (PAPER.md, Table 15)


@dataclass
class EditRoundsConfig:
    """Which documents, how many rounds, and the two thresholds."""

    docs: int = field(default=24, metadata={"help": "human documents (chapters) edited, a seeded sample"})
    rounds: int = field(default=3, metadata={"help": "editing rounds"})
    threshold: float = field(default=0.99, metadata={"help": "the paper's fixed threshold"})
    selected_rate: float = field(
        default=0.125,
        metadata={"help": "the second run's threshold is calibrated for this round-0 selected share"},
    )
    top_k: int = field(default=8, metadata={"help": "resample from the prior's top-k"})
    beta: float = field(default=1.5, metadata={"help": "top-k temperature (the official beta)"})
    model: str = field(default="default", metadata={"help": "the prior (default: the embedded SmolLM2-135M)"})
    seed: int = field(default=0, metadata={"help": "document sample and edit streams"})
    margin: float = field(
        default=0.5,
        metadata={
            "help": "margin of no effect for the change of the share above the threshold, in points (0.5: about "
            "a third of the paper's 1.42-point fall over three rounds)",
            "verdict": True,
        },
    )

    def validate(self) -> None:
        if self.margin <= 0:
            raise ConfigError("margin must be > 0")
        if self.docs < 2 or self.rounds < 2:
            raise ConfigError("edit rounds need docs >= 2 and rounds >= 2")
        if not 0 < self.selected_rate < 1 or not 0 < self.threshold < 1:
            raise ConfigError("threshold and selected_rate must be in (0, 1)")


EDITROUNDS_QUICK: dict[str, Any] = dict(docs=4)


def _per_round(results, n_rounds: int) -> dict[str, Any]:
    """Corpus-level shares per round and each document's above-share per round (for paired differences)."""
    rounds = []
    for r in range(n_rounds):
        st = [res.rounds[r] for res in results]
        scored = sum(s.n_scored for s in st)
        rounds.append(
            {
                "round": r + 1,
                "n_scored": scored,
                "n_above": sum(s.n_above for s in st),
                "n_changed": sum(s.n_changed for s in st),
                "above_pct": 100 * sum(s.n_above for s in st) / max(scored, 1),
                "changed_pct": 100 * sum(s.n_changed for s in st) / max(scored, 1),
            }
        )
    per_doc = [
        [100 * res.rounds[r].n_above / max(res.rounds[r].n_scored, 1) for r in range(n_rounds)]
        for res in results
    ]
    return {"rounds": rounds, "per_doc_above_pct": per_doc}


def run_edit_rounds(
    human: list[str], out_dir: str | Path, config: EditRoundsConfig | None = None, prior=None
) -> dict[str, Any]:
    """Edit `config.docs` documents for `config.rounds` rounds at both thresholds; editrounds.json / .md."""
    from ..pipeline import calibrate_threshold, edit_texts
    from ..prior import load_prior

    config = config or EditRoundsConfig()
    config.validate()
    t0 = time.perf_counter()
    docs = sample(load_human(human), config.docs, config.seed)
    texts, ids = [t for _, t in docs], [i for i, _ in docs]
    prior = prior or load_prior(config.model)
    base = EditConfig(top_k=config.top_k, beta=config.beta, seed=config.seed, rounds=config.rounds)
    cal = calibrate_threshold(
        texts,
        prior,
        EditConfig(top_k=config.top_k, beta=config.beta, target_selected_rate=config.selected_rate),
    )
    runs = {}
    for name, threshold in (("paper", config.threshold), ("calibrated", cal.threshold)):
        res = edit_texts(texts, prior, EditConfig(**{**asdict(base), "threshold": threshold}), ids=ids)
        runs[name] = {"threshold": threshold, **_per_round(res, config.rounds)}
    result = {
        "config": asdict(config),
        "documents": len(texts),
        "doc_ids": ids,
        "prior": prior.name,
        "runs": runs,
        "paper": list(PAPER_TABLE15),
        "seconds": round(time.perf_counter() - t0, 1),
        "human": list(human),
    }
    result["table"] = editrounds_table(result)
    result["statement"] = editrounds_statement(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "editrounds.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "editrounds.md").write_text(result["table"] + "\n\n" + result["statement"] + "\n")
    return result


def decay(run: dict[str, Any]) -> dict[str, float]:
    """Paired (per document) difference of the above-share, last round - first round, in points."""
    per_doc = run["per_doc_above_pct"]
    return paired_delta([d[-1] for d in per_doc], [d[0] for d in per_doc])


def editrounds_tests(result: dict[str, Any]) -> list[Test]:
    """The Table 15 family: per run, the per-document change of the share above the threshold, last round -
    round 1 (the claim: it falls); margin from the configuration, in points."""
    n = result["config"]["rounds"]
    margin = result["config"].get("margin", 0.5)
    paper = result["paper"]
    return [
        Test(
            f"per-document share above the threshold, round {n} - round 1 ({run_label(name, run)})",
            decay(run),
            margin,
            f"points; the paper's share falls {paper[0] - paper[-1]:.2f} points",
            sign=-1,
            paper=f"{paper[-1] - paper[0]:+.2f} points over {len(paper)} rounds",
        )
        for name, run in result["runs"].items()
    ]


def editrounds_verdicts(result: dict[str, Any]) -> dict[str, Verdict]:
    """Per run: the share above the threshold falls over the rounds (Holm within the Table 15 family)."""
    tests = editrounds_tests(result)
    judged = family(tests)
    return {name: judged[t.name] for name, t in zip(result["runs"], tests, strict=True)}


def editrounds_family(result: dict[str, Any]) -> str:
    """The section's family sentence (primary endpoint: the paper's threshold)."""
    tests = editrounds_tests(result)
    return family_note("Table 15", tests, tests[0].name)


def run_label(name: str, run: dict[str, Any]) -> str:
    """'the paper's threshold p > 0.99' / 'calibrated threshold p > 0.7395'."""
    kind = "the paper's threshold" if name == "paper" else f"{name} threshold"
    return f"{kind} p > {run['threshold']:.4g}"


def editrounds_table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    head = ["round", "paper's Table 15: % above 0.99"]
    for name, run in runs.items():
        head += [f"{run_label(name, run)}: % above", "% really changed"]
    lines = ["| " + " | ".join(head) + " |", "|---:|" + "---:|" * (len(head) - 1)]
    for r in range(result["config"]["rounds"]):
        paper = result["paper"][r] if r < len(result["paper"]) else None
        cells = [str(r + 1), "-" if paper is None else f"{paper:.2f} %"]
        for run in runs.values():
            row = run["rounds"][r]
            cells += [f"{row['above_pct']:.2f} %", f"{row['changed_pct']:.3f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def editrounds_statement(result: dict[str, Any]) -> str:
    n = result["config"]["rounds"]
    v = editrounds_verdicts(result)
    paper = result["paper"]
    parts = [
        f"Paper (Table 15): {paper[0]:.2f} -> {paper[-1]:.2f} % above 0.99 over {len(paper)} rounds "
        f"(a fall of {paper[0] - paper[-1]:.2f} points)."
    ]
    for name, run in result["runs"].items():
        rows = run["rounds"]
        parts.append(
            f"{run_label(name, run).capitalize()}: {rows[0]['above_pct']:.2f} -> {rows[-1]['above_pct']:.2f} % "
            f"above it over {n} rounds (per-document change {fmt_delta(decay(run), 2)} points); the share falls: "
            f"{v[name].bold}."
        )
    parts.append(editrounds_family(result))
    return " ".join(parts)
