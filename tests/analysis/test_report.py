"""toedit analyze end to end on small corpora with the tiny prior and a cheap deterministic embedder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import corpus_texts
from toedit.analysis.features import featurize
from toedit.analysis.html import finding_rows, render_report
from toedit.analysis.report import analyze, default_labels, pair_copies, summary_text
from toedit.config import ConfigError, EditConfig, RunConfig
from toedit.runs import run_edit

SCRIPT = "<script>alert('x')</script>"


def bow_embedder(texts):
    """Deterministic bag-of-words embedding (hashed unigrams, 64 dims): the math, without a model."""
    x = featurize(texts, num_buckets=64, ngrams=1, dense=True).astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def write_jsonl(path, texts, prefix="d"):
    path.write_text(
        "".join(json.dumps({"id": f"{prefix}{i}", "text": t}) + "\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, tiny_prior):
    root = tmp_path_factory.mktemp("corpora")
    human = [t[:400] for t in corpus_texts(24)]
    human[3] = f"A document with markup {SCRIPT} in it. " + human[3]
    synthetic = [
        f"The model writes the same sentence again and again, number {i % 3}. " * 4 + SCRIPT
        for i in range(24)
    ]
    h = write_jsonl(root / "human.jsonl", human)
    s = write_jsonl(root / "synthetic.jsonl", synthetic, "s")
    edited = root / "edit_run"
    run_edit(
        [str(h)],
        str(edited),
        edit=EditConfig(threshold=0.5, record_spans=True),
        run=RunConfig(progress=False),
        prior=tiny_prior,
    )
    return {"human": h, "synthetic": s, "edited": edited}


@pytest.fixture(scope="module")
def report(corpora, tiny_prior, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rep = analyze(
        [str(corpora["human"]), str(corpora["synthetic"]), str(corpora["edited"])],
        str(out),
        "human,synthetic,edited",
        prior=tiny_prior,
        embedder=bow_embedder,
        permutations=99,
        progress=False,
    )
    return out, rep


def test_report_numbers(report):
    out, rep = report
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["labels"] == ["human", "synthetic", "edited"]
    assert rep["sources"]["synthetic"]["kind"] == "corpus" and rep["sources"]["edited"]["kind"] == "edit run"
    human, synth = on_disk["corpora"]["human"], on_disk["corpora"]["synthetic"]
    assert human["documents"] == 24 and synth["documents"] == 24
    # Table 6: ten bins whose counts add up to the scored tokens
    tp = human["token_probs"]
    assert len(tp["rows"]) == 10 and sum(r["count"] for r in tp["rows"]) == tp["n_scored"] > 0
    assert abs(sum(r["pct"] for r in tp["rows"]) - 100) < 1e-6
    # the repetitive corpus is far more concentrated, and its embeddings are shifted
    assert synth["ngrams"]["bucket_entropy_bits"] < human["ngrams"]["bucket_entropy_bits"] - 3
    assert synth["ngrams"]["distinct_2"] < human["ngrams"]["distinct_2"]
    emb = on_disk["embeddings"]["comparisons"]
    assert emb["synthetic"]["p_value"] <= 0.02
    assert on_disk["embeddings"]["reference_split_half"]["p_value"] > 0.05
    # edited documents are copies of the human ones: compared on disjoint halves, not as independent samples
    assert emb["synthetic"]["design"] == "independent samples"
    paired = re.match(r"disjoint halves of (\d+) paired copies", emb["edited"]["design"])
    assert paired and 12 <= int(paired.group(1)) <= 24  # most of the 24 edited documents pair up
    # the edit run: the source's scores are reused; its edit statistics are reported
    e = on_disk["sources"]["edited"]["edit"]
    assert e["n_changed"] > 0 and e["n_above"] >= e["n_changed"]
    assert on_disk["corpora"]["edited"]["token_probs"]["n_scored"] == tp["n_scored"]  # same source text
    assert on_disk["comparisons"]["edited"]["ppl"]["kl"] == pytest.approx(0.0, abs=1e-12)
    assert (
        on_disk["sources"]["edited"]["diff_html"]
        and (out / on_disk["sources"]["edited"]["diff_html"]).exists()
    )
    for name in on_disk["figures"].values():
        assert (out / name).stat().st_size > 1000
    assert (out / "stats" / "human.json").exists()
    text = summary_text(rep)
    assert "human" in text and "x the fullest inner bin" in text  # the U-shape verdict states its rule
    assert "(disjoint halves of" in text


def test_pair_copies_finds_near_copies_only():
    ref = [" ".join(f"w{i}_{k}" for k in range(20)) for i in range(4)]
    copy = ref[2].replace("w2_5", "edited")  # one word of twenty changed: Jaccard 19/21
    other = [copy, "entirely different words in this one"]
    assert pair_copies(ref, other) == [(2, 0)]
    assert pair_copies(ref, other, min_jaccard=0.95) == []


def test_html_is_self_contained_and_escaped(report):
    out, rep = report
    page = (out / "report.html").read_text(encoding="utf-8")
    assert SCRIPT not in page and "&lt;script&gt;" in page
    assert "<script" not in page.lower()
    assert page.count("data:image/png;base64,") == len(rep["figures"])
    assert "http://" not in page and "https://" not in page


def test_findings_render_as_a_table_with_bold_verdicts(report):
    out, rep = report
    page = (out / "report.html").read_text(encoding="utf-8")
    table = page.split("<h2>Findings</h2>", 1)[1].split("<h2>", 1)[0]
    assert table.startswith("<table class='find'>")
    assert "**" not in table and table.count("<b>") >= len(
        rep["findings"]
    )  # every finding has a verdict word
    # one row per statement: each pair finding's parts, each corpus's token-probability verdict
    n_statements = sum(
        len(parts) for _, parts in finding_rows(rep["findings"], rep["labels"], rep["reference"])
    )
    assert table.count("<tr>") == n_statements + 1 > len(rep["findings"])
    for label in rep["labels"]:
        assert f"Token probabilities of &#x27;{label}&#x27;</td>" in table


def test_finding_rows_split_statements_and_keep_odd_labels_whole():
    labels, ref = ["ref: a; b", "x"], "ref: a; b"
    findings = [
        "Token probabilities of 'ref: a; b': **left arm only** (rule: a; b); 4.90 % above p = 0.99.",
        "'x' vs 'ref: a; b': PPL median 3 (narrower: rule, below 0.9x [a; b]); embeddings **shifted** (p < 0.05).",
        "a finding without a subject",
    ]
    assert finding_rows(findings, labels, ref) == [
        ("Token probabilities of 'ref: a; b'", ["**left arm only** (rule: a; b)", "4.90 % above p = 0.99"]),
        (
            "'x' vs 'ref: a; b'",
            ["PPL median 3 (narrower: rule, below 0.9x [a; b])", "embeddings **shifted** (p < 0.05)"],
        ),
        ("", ["a finding without a subject"]),
    ]


def test_findings_markup_is_escaped_before_it_is_rendered(report, tmp_path):
    out, rep = report
    hostile = {**rep, "findings": [f"'x' vs 'y': **{SCRIPT}** and `<i>code</i>`", "**unclosed <b> bold"]}
    page = render_report(hostile, out)
    assert "<b>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</b>" in page
    assert "<code>&lt;i&gt;code&lt;/i&gt;</code>" in page and "**unclosed &lt;b&gt; bold" in page


def test_labels_and_errors(tmp_path, corpora):
    assert default_labels(["a/human.jsonl", "b/human.jsonl.gz", "runs/x/"]) == ["human", "human-2", "x"]
    with pytest.raises(ConfigError, match="labels"):
        analyze([str(corpora["human"])], str(tmp_path), "a,b")
    with pytest.raises(ConfigError, match="stdin"):
        analyze(["-"], str(tmp_path))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
]
PROBE = (
    "<script>window.addEventListener('load', () => { const im = Array.from(document.images); "
    "const find = document.querySelector('table.find'); "
    "document.title = 'IMAGES ' + im.length + ' RENDERED ' + "
    "im.filter(i => i.complete && i.naturalWidth > 0).length + ' FINDINGS ' + "
    "find.querySelectorAll('tr').length + ' BOLD ' + find.querySelectorAll('b').length + "
    "' STARS ' + (find.innerText.includes('**') ? 1 : 0); });</script></body>"
)


def _chromium(args, tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")
def test_report_renders_every_figure_in_headless_chromium(report, tmp_path):
    out, rep = report
    n_figs = len(rep["figures"])
    # a COPY of the page with a probe that writes how many images decoded into the title
    probe = tmp_path / "probe.html"
    probe.write_text(
        (out / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8"
    )
    res = _chromium(["--dump-dom", probe.as_uri()], tmp_path)
    m = re.search(
        r"<title>IMAGES (\d+) RENDERED (\d+) FINDINGS (\d+) BOLD (\d+) STARS (\d)</title>", res.stdout
    )
    assert m, f"no probe result in the DOM; chromium said: {res.stderr[-2000:]}"
    assert int(m.group(1)) == n_figs and int(m.group(2)) == n_figs
    # the findings as the browser shows them: a table row per statement, verdict words bold, no Markdown
    statements = sum(len(p) for _, p in finding_rows(rep["findings"], rep["labels"], rep["reference"]))
    assert int(m.group(3)) == statements + 1 and int(m.group(4)) >= len(rep["findings"])
    assert m.group(5) == "0"
    # the page itself (no probe) as a screenshot: a real, non-blank image
    shot = tmp_path / "shot.png"
    res = _chromium(
        [f"--screenshot={shot}", "--window-size=1100,2400", (out / "report.html").as_uri()], tmp_path
    )
    assert shot.exists(), res.stderr[-2000:]
    from PIL import Image

    px = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert px.shape[0] >= 2000 and px.std() > 10  # not a blank page
    assert (px < 128).mean() > 0.005  # text and plot lines


def test_score_edited_rescores_the_edited_text(corpora, tiny_prior, tmp_path):
    rep = analyze(
        [str(corpora["human"]), str(corpora["edited"])],
        str(tmp_path / "r"),
        prior=tiny_prior,
        embeddings=False,
        score_edited=True,
        progress=False,
    )
    src = rep["sources"]["edit_run"]
    assert src["scored"].startswith("edited text") and src["source_run_dir"] == str(corpora["edited"])
    # edited tokens were likely ones, replaced by less likely ones: the edited text's PPL is higher
    h, e = rep["corpora"]["human"]["ppl"], rep["corpora"]["edit_run"]["ppl"]
    assert e["mean_log_ppl"] > h["mean_log_ppl"]
    assert rep["comparisons"]["edit_run"]["ppl"]["wasserstein_log_ppl"] > 0
    assert "embeddings" not in rep and "embedding_map" not in rep["figures"]
    assert (tmp_path / "r" / "report.html").exists()


def test_size_matched_ngrams_removes_the_size_effect():
    from toedit.analysis.corpus import CorpusStats
    from toedit.analysis.ngrams import bucket_entropy
    from toedit.analysis.report import size_matched_ngrams

    texts = [t[:400] for t in corpus_texts(60)]
    big, small = CorpusStats("big"), CorpusStats("small")
    big.add_texts([(f"b{i}", t) for i, t in enumerate(texts)])
    small.add_texts([(f"s{i}", t) for i, t in enumerate(texts[::4])])
    raw_gap = bucket_entropy(big.ngrams, 2) - bucket_entropy(small.ngrams, 2)
    sm = size_matched_ngrams({"big": big, "small": small})
    assert sm["small"]["total_ngrams"] == sm["target_ngrams"] == small.ngrams.total_ngrams
    assert sm["target_ngrams"] <= sm["big"]["total_ngrams"] < sm["target_ngrams"] * 1.2
    matched_gap = sm["big"]["bucket_entropy_bits"] - sm["small"]["bucket_entropy_bits"]
    assert raw_gap > 0.5 and abs(matched_gap) < raw_gap / 3


def test_cli_analyze(corpora, tiny_model_dir, tmp_path, capsys):
    from toedit.cli import main

    out = tmp_path / "cli"
    argv = ["analyze", str(corpora["human"]), str(corpora["synthetic"]), "-o", str(out)]
    argv += ["--model", str(tiny_model_dir), "--labels", "h,s", "--no-embeddings", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "reference: h" in printed and "report.html" in printed
    assert json.loads((out / "report.json").read_text())["labels"] == ["h", "s"]
    assert main([*argv[:-4], "--labels", "only-one", "--no-embeddings"]) == 2
    assert main(["analyze", str(tmp_path / "missing.jsonl"), "-o", str(out), "--no-embeddings"]) == 4


@pytest.mark.parametrize("sizes", [(0, 0), (1, 1), (1, 24)])
def test_too_few_documents_give_no_verdict(tmp_path, tiny_prior, sizes):
    """0- or 1-document corpora printed findings computed from NaN ("U-shaped" from 0 >= 2 x 0)."""
    texts = [t[:300] for t in corpus_texts(24)]
    paths = []
    for i, n in enumerate(sizes):
        paths.append(write_jsonl(tmp_path / f"c{i}.jsonl", texts[:n], f"c{i}-"))
    rep = analyze(
        [str(p) for p in paths],
        str(tmp_path / "rep"),
        "a,b",
        prior=tiny_prior,
        embeddings=False,
        progress=False,
    )
    few = [label for label, n in zip("ab", sizes, strict=True) if n < 2]
    text = " ".join(rep["findings"])
    assert all(f"too few documents in '{label}'" in text for label in few)
    assert "'b' vs 'a': no verdict" in text
    assert "nan" not in text.lower() and "concentrated" not in text and "PPL median" not in text
    assert not any(
        f.startswith(f"Token probabilities of '{label}': **") for label in few for f in rep["findings"]
    )
    if sizes[1] >= 2:
        assert any(f.startswith("Token probabilities of 'b': **") for f in rep["findings"])
