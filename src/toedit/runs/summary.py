"""`RunSummary`: what one `toedit edit` / `toedit score` invocation did (the CLI prints it, --json dumps it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from . import stats as run_stats
from .layout import RunLayout


@dataclass
class RunSummary:
    """What a run did: merged stats over all shards, and this invocation's throughput."""

    run_dir: str | None  # None: records went to stdout
    shards: int
    shards_done_before: int
    stats: dict[str, Any]
    seconds: float
    tokens_this_run: int
    plan: list[dict[str, Any]] = field(default_factory=list)  # {"name", "path", "format", "size"} per shard
    calibration: dict[str, Any] | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)  # shards that failed every retry
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"} found but not read
    model: str | None = None  # the prior's name
    dtype: str | None = None  # the precision its body ran in (--dtype auto resolved)
    compile: str | None = None  # whether scoring ran torch.compile'd (--compile auto resolved): on | off
    kind: str = "edit"  # "score": no rule ran, so no selection / change / drop lines

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_this_run / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_second": self.tokens_per_second, **run_stats.rates(self.stats)}

    def format(self) -> str:
        s, r = self.stats, run_stats.rates(self.stats)
        lines = [
            f"run dir        {self.run_dir or '(stdout)'}",
            f"prior          {self.model} ({self.dtype}, compile {self.compile})",
            f"shards         {self.shards} ({self.shards_done_before} already done)",
            f"documents      {s['n_records']:,} ({s['n_empty']:,} empty, {s['n_errors']:,} bad records)",
            f"tokens         {s['n_tokens']:,} ({s['n_scored']:,} scored)",
        ]
        if self.kind == "edit":
            lines += [
                f"above thr.     {s['n_above']:,} ({100 * r['above_rate']:.2f} % of scored)",
                f"changed        {s['n_changed']:,} ({100 * r['change_rate']:.3f} % of scored)",
                f"  of which     {s.get('n_changed_word', 0):,} whole words, {s.get('n_changed_fragment', 0):,} "
                f"word fragments, {s.get('n_changed_space', 0):,} whitespace, {s.get('n_changed_punct', 0):,} "
                "punctuation",
                f"dropped        {s['n_dropped']:,} ({100 * r['drop_rate']:.3f} %)",
                f"skipped unsafe {s['n_skipped_unsafe']:,}",
            ]
        lines.append(
            f"speed          {self.tokens_per_second:,.0f} tokens/s ({self.tokens_this_run:,} tokens in {self.seconds:.1f} s)"
        )
        if self.failed:
            names = ", ".join(f["shard"] for f in self.failed[:10])
            where = "see RUN_DIR/failed/" if self.run_dir else _stdout_losses(self.failed)
            first = self.failed[0]["error"]
            lines.append(
                f"FAILED shards  {len(self.failed)} after every retry: {names} (first error: {first}; {where})"
            )
        if self.skipped:
            shown = "; ".join(f"{s['path']} ({s['reason']})" for s in self.skipped[:5])
            more = f"; and {len(self.skipped) - 5} more (see manifest.json)" if len(self.skipped) > 5 else ""
            lines.append(f"not read       {len(self.skipped)}: {shown}{more}")
        if s["n_errors"] and self.run_dir:  # on stdout runs each bad record is already printed to stderr
            lines.append(
                f"bad records    {s['n_errors']:,} not edited: file, line and reason of each in "
                f"{RunLayout(self.run_dir).errors_path}"
            )
        rounds = s.get("rounds") or []
        for i, rnd in enumerate(rounds):
            scored = max(rnd["n_scored"], 1)
            lines.append(
                f"round {i + 1:<8} above {100 * rnd['n_above'] / scored:.2f} %, "
                f"changed {100 * rnd['n_changed'] / scored:.3f} % of {rnd['n_scored']:,} scored"
            )
        if self.calibration:
            c = self.calibration
            lines.insert(
                6,
                f"threshold      {c['threshold']:.6g}, chosen for {c['target']} {c['target_rate']:g} "
                f"(expected change {100 * c['expected_change_rate']:.3f} %, selected {100 * c['selected_rate']:.2f} % "
                f"on {c['sample_docs']} sampled texts)",
            )
        return "\n".join(lines)


def _stdout_losses(failed: list[dict[str, Any]]) -> str:
    """What of each failed shard reached stdout (records are printed as they are edited)."""
    parts = []
    for f in failed[:10]:
        n = f.get("records_written", 0)
        parts.append(
            f"{f['shard']}: its first {n:,} record{'s' * (n != 1)} are in the output, the rest are NOT"
            if n
            else f"{f['shard']}: its records are NOT in the output"
        )
    return "; ".join(parts)
