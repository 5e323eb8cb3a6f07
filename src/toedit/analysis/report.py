"""`toedit analyze`: compare corpora the way the paper does, with numbers, figures and one HTML report.

Every input gets a label; the first is the reference. Inputs that are run directories are read as they are
(their scores/ are reused: no forward pass); plain corpora are scored once into REPORT_DIR/work/ (resumable).
For an edit run the texts are the edited ones, while its scores/ are those of the text the prior saw (the
input, before editing): its PPL and token probabilities describe the source, and its edit statistics say
what editing changed. `score_edited=True` scores the edited texts as well, for the PPL of the edited corpus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, IOConfig, RunConfig, ScoreConfig
from ..divergence import bucket_distribution, js_divergence, kl_divergence
from ..io import write_json_atomic
from ..runs.rundir import RunDir, is_run_dir
from ..runs.stats import rates
from ..verdicts import shifted, u_shape
from . import plots
from .corpus import CorpusStats, collect_run
from .embeddings import Embedder, compare_embeddings, embed_documents, project_2d
from .ngrams import CONCENTRATION_KEYS, NgramStats, ngram_metrics
from .ppl import compare as compare_ppl
from .ppl import summarize as summarize_ppl

__all__ = ["analyze", "default_labels", "summary_text"]

# A verdict compares distributions over documents (PPL quartiles, n-gram buckets): with fewer documents its
# numbers are NaN or a single point, so the findings say "too few documents" instead.
MIN_DOCS = 2


def default_labels(inputs: Sequence[str]) -> list[str]:
    """Labels from the input paths (the last path component without extensions), made unique."""
    out: list[str] = []
    for item in inputs:
        name = Path(str(item).rstrip("/")).name.split(".")[0] or "corpus"
        label, i = name, 2
        while label in out:
            label, i = f"{name}-{i}", i + 1
        out.append(label)
    return out


def _parse_labels(labels: str | Sequence[str] | None, inputs: Sequence[str]) -> list[str]:
    if labels is None:
        return default_labels(inputs)
    if isinstance(labels, str):
        labels = [x.strip() for x in labels.split(",")]
    labels = list(labels)
    if len(labels) != len(inputs):
        raise ConfigError(f"{len(labels)} labels for {len(inputs)} inputs: give one label per input")
    if len(set(labels)) != len(labels) or any(not x for x in labels):
        raise ConfigError(f"labels must be unique and non-empty, got {labels}")
    return labels


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def _score_into(inputs: list[str], work: Path, score, io, run, prior) -> Path:
    from ..runs import run_score

    run_score(inputs, str(work), score=score, io=io, run=run, prior=prior)
    return work


def _source(item: str, label: str, out: Path, score_edited: bool, score, io, run, prior) -> dict[str, Any]:
    """Resolve one input to the run directory whose scores/ and texts are analysed."""
    path = Path(item)
    rd = RunDir(path)
    manifest = rd.manifest if is_run_dir(path) else None
    work = out / "work" / _slug(label)
    if manifest is None:
        return {
            "input": item,
            "kind": "corpus",
            "run_dir": str(_score_into([item], work, score, io, run, prior)),
        }
    kind = manifest.get("kind")
    src: dict[str, Any] = {"input": item, "kind": f"{kind} run", "run_dir": str(path)}
    if kind == "edit":
        stats = rd.read_stats() or {}
        edit = (manifest.get("settings") or {}).get("edit") or {}
        src["edit"] = {
            "threshold": edit.get("threshold"),
            "top_k": edit.get("top_k"),
            "beta": edit.get("beta"),
            "strategy": edit.get("strategy"),
            "rounds": edit.get("rounds"),
            "n_scored": stats.get("n_scored", 0),
            "n_above": stats.get("n_above", 0),
            "n_changed": stats.get("n_changed", 0),
            "n_dropped": stats.get("n_dropped", 0),
            **{k: 100 * v for k, v in rates(stats).items()},  # above_rate, change_rate, drop_rate in %
            "record_spans": bool(edit.get("record_spans")),
            "calibration": manifest.get("calibration"),
        }
        if score_edited:
            src["source_run_dir"] = str(path)
            edited = [rd.edited_shard(e).path for e in manifest.get("inputs") or []]
            src["run_dir"] = str(_score_into(edited, work, score, io, run, prior))
            src["scored"] = "edited text (rescored)"
        else:
            src["scored"] = "source text (the edit run's input, before editing)"
    return src


def _diff_page(src: dict[str, Any], out: Path, label: str) -> str | None:
    """The edit audit page (toedit diff --html) of an edit run with spans, beside the report."""
    edit = src.get("edit")
    if not edit or not edit.get("record_spans"):
        return None
    from ..audit import run_diff

    name = f"diff_{_slug(label)}.html"
    run_diff(src.get("source_run_dir", src["run_dir"]), html=str(out / name), limit=50, color=False)
    return name


def _ngram_compare(ref: CorpusStats, other: CorpusStats) -> dict[str, float]:
    p = bucket_distribution(ref.ngrams.bucket_counts, 1.0)
    q = bucket_distribution(other.ngrams.bucket_counts, 1.0)
    return {"kl": kl_divergence(p, q), "js": js_divergence(p, q)}


def size_matched_ngrams(corpora: dict[str, CorpusStats]) -> dict[str, Any]:
    """n-gram concentration at equal corpus size: entropy and distinct-n fall and rise with the number of
    n-grams alone, so each corpus's (seeded, random-order) sample is cut to whole documents once it holds
    as many n-grams as the smallest sample."""
    totals = {k: NgramStats().add_texts([t for _, t in c.sample]).total_ngrams for k, c in corpora.items()}
    target = min(totals.values()) if totals else 0
    out: dict[str, Any] = {"target_ngrams": target}
    for label, c in corpora.items():
        stats = NgramStats()
        for _, text in c.sample:
            if stats.total_ngrams >= target:
                break
            stats.add_texts([text])
        m = ngram_metrics(stats, top_k=0)
        out[label] = {k: m[k] for k in CONCENTRATION_KEYS}
    return out


def _prob_compare(ref: CorpusStats, other: CorpusStats) -> dict[str, float]:
    p = bucket_distribution(ref.prob_hist, 0.5)
    q = bucket_distribution(other.prob_hist, 0.5)
    return {"kl": kl_divergence(p, q), "js": js_divergence(p, q)}


def _embeddings(
    corpora: dict[str, CorpusStats], embedder: Embedder, permutations: int, seed: int, figs: Path, tsne: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    vecs = {label: embed_documents([t for _, t in c.sample], embedder) for label, c in corpora.items()}
    labels = list(corpora)
    ref = vecs[labels[0]]
    ref_texts = [t for _, t in corpora[labels[0]].sample]
    comparisons: dict[str, Any] = {}
    for label in labels[1:]:
        pairs = pair_copies(ref_texts, [t for _, t in corpora[label].sample])
        if len(pairs) >= max(4, vecs[label].shape[0] // 2):
            # paired copies (e.g. edited documents and their sources) are not independent samples: compare
            # the reference half of one random half of the pairs with the other half's copies
            order = np.random.default_rng(seed).permutation(len(pairs))
            half = len(pairs) // 2
            a = [pairs[i][0] for i in order[:half]]
            b = [pairs[i][1] for i in order[half : 2 * half]]
            cmp = compare_embeddings(ref[a], vecs[label][b], permutations, seed)
            cmp["design"] = f"disjoint halves of {len(pairs)} paired copies ({half} vs {half} documents)"
        else:
            cmp = compare_embeddings(ref, vecs[label], permutations, seed)
            cmp["design"] = "independent samples"
        comparisons[label] = cmp
    out: dict[str, Any] = {
        "documents_embedded": {k: int(v.shape[0]) for k, v in vecs.items()},
        "comparisons": comparisons,
    }
    # a sanity row: the reference split in two random halves (what "no shift" looks like)
    if ref.shape[0] >= 4:
        perm = np.random.default_rng(seed).permutation(ref.shape[0])
        half = ref.shape[0] // 2
        out["reference_split_half"] = compare_embeddings(
            ref[perm[:half]], ref[perm[half:]], permutations, seed
        )
    usable = {k: v for k, v in vecs.items() if v.shape[0]}
    figures: dict[str, str] = {}
    if sum(v.shape[0] for v in usable.values()) >= 3:
        x = np.vstack(list(usable.values()))
        which = np.concatenate([np.full(v.shape[0], i) for i, v in enumerate(usable.values())])
        maps = {"PCA": project_2d(x, "pca", seed)}
        if tsne:
            maps["t-SNE"] = project_2d(x, "tsne", seed)
        plots.plot_embedding_map(maps, which, list(usable), figs / "embedding_map.png")
        figures["embedding_map"] = "embedding_map.png"
    return out, figures


def pair_copies(ref: Sequence[str], other: Sequence[str], min_jaccard: float = 0.8) -> list[tuple[int, int]]:
    """(ref index, other index) of documents of `other` that are near-copies of one of `ref` (word-set
    Jaccard >= `min_jaccard`, each reference used once): an edited corpus against its source."""
    ref_sets = [set(t.lower().split()) for t in ref]
    used: set[int] = set()
    pairs = []
    for j, text in enumerate(other):
        words = set(text.lower().split())
        best, best_i = 0.0, -1
        for i, rs in enumerate(ref_sets):
            if i in used or not rs or not words:
                continue
            jac = len(words & rs) / len(words | rs)
            if jac > best:
                best, best_i = jac, i
        if best >= min_jaccard:
            used.add(best_i)
            pairs.append((best_i, j))
    return pairs


def analyze(
    inputs: Sequence[str],
    output: str,
    labels: str | Sequence[str] | None = None,
    *,
    model: str = "default",
    threshold: float = 0.99,
    embeddings: bool = True,
    embed_docs: int = 500,
    permutations: int = 200,
    tsne: bool = True,
    score_edited: bool = False,
    seed: int = 0,
    score: ScoreConfig | None = None,
    io: IOConfig | None = None,
    progress: bool = True,
    prior: Any = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Analyse corpora / run directories into REPORT_DIR `output`: report.json, figures, report.html.

    `labels`: one per input (comma-separated string or list; default: from the paths), the first input is
    the reference. `threshold`: the share of tokens with p > threshold is the editable fraction.
    `embed_docs`: documents per corpus embedded (a seeded sample). `prior` / `embedder`: injected
    instead of loading `model` / MiniLM (tests). Returns the report dict (as written to report.json).
    """
    inputs = [str(x) for x in inputs]
    if not inputs:
        raise ConfigError("no INPUT given")
    if "-" in inputs:
        raise ConfigError("analyze reads its inputs twice (scores and texts): stdin ('-') is not supported")
    names = _parse_labels(labels, inputs)
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    if embed_docs < 2:
        raise ConfigError("embed_docs must be >= 2")
    out = Path(output)
    figs = out
    out.mkdir(parents=True, exist_ok=True)
    run = RunConfig(model=model, progress=progress)
    score = score or ScoreConfig()
    io = io or IOConfig()
    sources = {
        label: _source(item, label, out, score_edited, score, io, run, prior)
        for item, label in zip(inputs, names, strict=True)
    }
    corpora: dict[str, CorpusStats] = {}
    for label, src in sources.items():
        stats, manifest = collect_run(label, src["run_dir"], threshold, embed_docs, seed)
        src["model"] = (manifest.get("model") or {}).get("name")
        corpora[label] = stats
    models = {s["model"] for s in sources.values()}
    ref_label = names[0]
    ref = corpora[ref_label]

    report: dict[str, Any] = {
        "reference": ref_label,
        "labels": names,
        "models": sorted(m for m in models if m),
        "settings": {
            "threshold": threshold,
            "embed_docs": embed_docs,
            "permutations": permutations,
            "seed": seed,
            "score_edited": score_edited,
            "ngram_buckets": ref.ngrams.num_buckets,
            "embedding": "all-MiniLM-L6-v2, mean of the first 4 chunks of 150 words, L2-normalised"
            if embedder is None
            else "injected embedder",
        },
        "sources": sources,
        "corpora": {},
        "comparisons": {},
        "figures": {},
    }
    if len(models) > 1:
        report["warnings"] = [f"corpora were scored by different priors: {sorted(map(str, models))}"]
    for label, c in corpora.items():
        report["corpora"][label] = {
            "documents": c.num_docs,
            "bad_records": c.num_bad,
            "ppl": summarize_ppl(c.ppl),
            "documents_without_ppl": c.num_no_ppl,
            "token_probs": c.prob_table(),
            "ngrams": ngram_metrics(c.ngrams, top_k=40),
        }
    for label in names[1:]:
        c = corpora[label]
        cmp: dict[str, Any] = {}
        try:
            cmp["ppl"] = compare_ppl(ref.ppl, c.ppl)
        except ValueError as exc:
            cmp["ppl"] = {"error": str(exc)}
        cmp["token_probs"] = _prob_compare(ref, c)
        cmp["ngrams"] = _ngram_compare(ref, c)
        report["comparisons"][label] = cmp
    report["ngrams_size_matched"] = size_matched_ngrams(corpora)

    report["figures"]["ppl_hist"] = "ppl_hist.png"
    plots.plot_ppl_hist({k: c.ppl for k, c in corpora.items()}, figs / "ppl_hist.png")
    report["figures"]["token_probs"] = "token_probs.png"
    plots.plot_prob_hist({k: c.prob_hist for k, c in corpora.items()}, threshold, figs / "token_probs.png")
    report["figures"]["ngram_buckets"] = "ngram_buckets.png"
    plots.plot_bucket_response({k: c.ngrams for k, c in corpora.items()}, figs / "ngram_buckets.png")
    report["figures"]["top_bigrams"] = "top_bigrams.png"
    plots.plot_top_bigrams({k: c.ngrams for k, c in corpora.items()}, figs / "top_bigrams.png", k=40)

    if embeddings:
        if embedder is None:
            from .embeddings import minilm_embedder

            embedder = minilm_embedder()
        emb, emb_figs = _embeddings(corpora, embedder, permutations, seed, figs, tsne)
        report["embeddings"] = emb
        report["figures"].update(emb_figs)
    for label, src in sources.items():
        page = _diff_page(src, out, label)
        if page:
            src["diff_html"] = page
    report["excerpts"] = {label: [t[:600] for _, t in c.sample[:2]] for label, c in corpora.items()}
    report["findings"] = findings(report)
    write_json_atomic(out / "report.json", _jsonable(report))
    from .html import render_report

    (out / "report.html").write_text(render_report(report, out), encoding="utf-8")
    (out / "stats").mkdir(exist_ok=True)
    for label, c in corpora.items():  # mergeable raw statistics, e.g. to merge with other shards later
        write_json_atomic(out / "stats" / f"{_slug(label)}.json", _jsonable(c.to_dict()))
    return report


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def findings(report: dict[str, Any]) -> list[str]:
    """The paper's qualitative claims, checked against this report's numbers (one sentence each); verdict words
    come from the rules of `toedit.verdicts`, stated beside them."""
    ref = report["reference"]
    rc = report["corpora"][ref]
    out: list[str] = []
    for label in report["labels"]:
        tp = report["corpora"][label]["token_probs"]
        if _too_few(report, label):
            out.append(f"Token probabilities of '{label}': no verdict, {_few(report, label)}.")
        elif tp["n_scored"]:
            out.append(f"Token probabilities of '{label}': {_u_shape(tp)}")
    for label, cmp in report["comparisons"].items():
        c = report["corpora"][label]
        if _too_few(report, label) or _too_few(report, ref):
            few = "; ".join(_few(report, x) for x in (label, ref) if _too_few(report, x))
            out.append(f"'{label}' vs '{ref}': no verdict, {few}.")
            continue
        parts = []
        ppl = cmp.get("ppl", {})
        src = report["sources"][label]
        if src.get("edit") and not src.get("source_run_dir"):
            parts.append("PPL and token probabilities are those of its source text (use --score-edited)")
        elif "range_coverage" in ppl:
            iqr_ref = _iqr(rc["ppl"])
            iqr = _iqr(c["ppl"])
            narrower = (
                "narrower" if iqr < 0.9 * iqr_ref else ("wider" if iqr > 1.1 * iqr_ref else "about as wide")
            )
            parts.append(
                f"PPL median {c['ppl'].get('q50', float('nan')):.1f} vs {rc['ppl'].get('q50', float('nan')):.1f}, "
                f"interquartile log-PPL width {iqr:.2f} vs {iqr_ref:.2f} ({narrower}: rule, below 0.9x / above "
                "1.1x the reference's), "
                f"covers {100 * ppl['range_coverage']:.0f} % of the reference's PPL range, KL {ppl['kl']:.3f}"
            )
        sm = report.get("ngrams_size_matched") or {}
        gr, g = sm.get(ref) or rc["ngrams"], sm.get(label) or c["ngrams"]
        hr, h = gr["bucket_entropy_bits"], g["bucket_entropy_bits"]
        if hr is not None and h is not None:
            conc = "more" if h < hr else "less"
            parts.append(
                f"n-grams {conc} concentrated (rule: lower bucket entropy) at equal size ({sm.get('target_ngrams', '?'):,} n-grams: bucket "
                f"entropy {h:.3f} vs {hr:.3f} bits, top-1 % share {_pct(g['top_1pct_share'])} vs "
                f"{_pct(gr['top_1pct_share'])}, distinct-2 {_num(g['distinct_2'])} vs {_num(gr['distinct_2'])})"
            )
        emb = (report.get("embeddings") or {}).get("comparisons", {}).get(label)
        if emb and "p_value" in emb:
            sig = shifted(emb["p_value"], design=emb.get("design", "independent samples"))
            parts.append(f"embeddings {sig.bold} (MMD^2 {emb['mmd2']:.4f}, Frechet {emb['frechet']:.4f})")
        if src.get("edit"):
            e = src["edit"]
            parts.append(
                f"editing selected {e['above_rate']:.2f} % and really changed {e['change_rate']:.3f} % of tokens"
            )
        out.append(f"'{label}' vs '{ref}': " + "; ".join(parts) + ".")
    return out


def _too_few(report: dict[str, Any], label: str) -> bool:
    return report["corpora"][label]["documents"] < MIN_DOCS


def _few(report: dict[str, Any], label: str) -> str:
    n = report["corpora"][label]["documents"]
    return f"too few documents in '{label}' ({n}; a verdict needs at least {MIN_DOCS})"


def _u_shape(tp: dict[str, Any]) -> str:
    """The histogram's shape by `verdicts.u_shape` (each end bin >= 2x the fullest inner bin)."""
    v = u_shape([r["pct"] for r in tp["rows"]])
    return f"{v.bold}; {tp['above_pct']:.2f} % above p = {tp['threshold']} (the editable fraction)."


def _iqr(ppl: dict[str, Any]) -> float:
    if "q25" not in ppl:
        return float("nan")
    return math.log(ppl["q75"]) - math.log(ppl["q25"])


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def summary_text(report: dict[str, Any]) -> str:
    """The short stdout summary: one line per corpus, then the findings."""
    lines = [f"reference: {report['reference']}"]
    head = (
        f"{'corpus':<16} {'docs':>7} {'PPL q25/q50/q75':>22} {'p>thr %':>8} {'H bits':>7} {'distinct-2':>10}"
    )
    lines.append(head)
    for label, c in report["corpora"].items():
        p = c["ppl"]
        q = f"{p.get('q25', float('nan')):.1f}/{p.get('q50', float('nan')):.1f}/{p.get('q75', float('nan')):.1f}"
        d2 = c["ngrams"]["distinct_2"]
        lines.append(
            f"{label[:16]:<16} {c['documents']:>7,} {q:>22} {c['token_probs']['above_pct']:>8.2f} "
            f"{c['ngrams']['bucket_entropy_bits']:>7.3f} {d2 if d2 is None else round(d2, 4)!s:>10}"
        )
    lines.append("")
    lines += [f"- {f}" for f in report["findings"]]
    return "\n".join(lines)
