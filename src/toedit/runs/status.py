"""`toedit status`: a run directory's progress (shards done, pending, failed or stale) and merged stats."""

from __future__ import annotations

from typing import Any

from . import stats as run_stats
from .rundir import RunDir


def run_status(run_dir: str) -> dict[str, Any]:
    """Progress of a run directory: shards done / pending, merged stats so far (per round), errors."""
    rd = RunDir(run_dir)
    manifest = rd.manifest
    names = rd.shard_names()
    markers = rd.done_markers()
    merged = run_stats.merge(m["stats"] for m in markers.values())
    seconds = sum(m.get("seconds", 0.0) for m in markers.values())
    return {
        "run_dir": str(rd.root),
        "kind": manifest.get("kind"),
        "model": manifest.get("model", {}).get("name"),
        "fingerprint": manifest["fingerprint"],
        "shards": len(names),
        "shards_done": len(markers),
        "pending": [n for n in names if n not in markers],
        "failed": [f for f in rd.failures() if f["shard"] not in markers],
        "stale": rd.stale_markers(),
        "stats": merged,
        "rates": run_stats.rates(merged),
        "rounds": [rnd | {"rates": run_stats.rates(rnd)} for rnd in merged.get("rounds") or []],
        "tokens_per_second": merged["n_tokens"] / seconds if seconds else None,
        "errors_file": str(rd.errors_path),
    }


def format_status(status: dict[str, Any]) -> str:
    s, r = status["stats"], status["rates"]
    lines = [
        f"{status['run_dir']}: {status['kind']} run, model {status['model']}",
        f"shards {status['shards_done']}/{status['shards']} done"
        + (f"; pending: {', '.join(status['pending'][:10])}" if status["pending"] else ""),
        f"documents {s['n_records']:,}  tokens {s['n_tokens']:,}  bad records {s['n_errors']:,}",
        f"above threshold {100 * r['above_rate']:.2f} %  changed {100 * r['change_rate']:.3f} %",
    ]
    for i, rnd in enumerate(status.get("rounds") or []):
        lines.append(
            f"round {i + 1}: above threshold {100 * rnd['rates']['above_rate']:.2f} %  changed "
            f"{100 * rnd['rates']['change_rate']:.3f} % of {rnd['n_scored']:,} scored tokens"
        )
    for name, why in list((status.get("stale") or {}).items())[:10]:
        lines.append(f"NOT done after all: {name} ({why}); rerun the same command to run it again")
    if status.get("failed"):
        lines.append(
            f"FAILED after every retry: {', '.join(f['shard'] for f in status['failed'][:10])} "
            f"(rerun the same command to try them again; reasons in {status['run_dir']}/failed/)"
        )
    return "\n".join(lines)
