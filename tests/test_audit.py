"""`toedit diff`: every recorded span is shown, originals are rebuilt exactly, HTML is escaped and static."""

from __future__ import annotations

import html as _html
import json
import re
from pathlib import Path

import pytest

from tests.conftest import corpus_texts
from toedit.audit import run_diff
from toedit.audit.edits import AuditError, DocEdits, load_edits, original_text
from toedit.audit.page import render_html
from toedit.audit.terminal import render_terminal
from toedit.config import EditConfig, IOConfig, RunConfig
from toedit.runs import Span, run_edit

QUIET = RunConfig(progress=False)
XSS = 'Before <script>alert(1)</script> & "quotes" &amp; after.\n'
EDIT_LINE = re.compile(r"^\s+\d+\. @\d+\s+p=\d\.\d{4}  ", re.M)


def _shown_originals(page: str) -> list[str]:
    """The original texts as the HTML page shows them: drop the insertions, the tags and the whitespace
    symbols of deleted whitespace tokens (each followed by the real line break it stood for)."""
    blocks = re.findall(r'<div class="text">(.*?)</div><div class="side">', page, re.S)
    out = []
    for block in blocks:
        block = re.sub(r"<ins[^>]*>.*?</ins>", "", block, flags=re.S)
        text = _html.unescape(re.sub(r"<[^>]+>", "", block))
        out.append(text.replace("↵\n", "\n").replace("␣", " ").replace("⇥", "\t"))
    return out


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows() -> list[dict]:
    rows = [{"id": f"d{i}", "text": t[:300]} for i, t in enumerate(corpus_texts(8))]
    # markup in the corpus text itself, long enough for the tiny prior to edit some of its tokens
    rows.append({"id": "xss", "text": XSS + corpus_texts(9)[8][:300].replace(" the ", " <b>the</b> ")})
    return rows


@pytest.fixture(scope="module")
def spans_run(tmp_path_factory, tiny_prior):
    tmp = tmp_path_factory.mktemp("audit")
    rows = _rows()
    src = _write(tmp / "in" / "a.jsonl", rows)
    summary = run_edit(
        [str(src)],
        str(tmp / "run"),
        EditConfig(threshold=0.2, record_spans=True),
        run=QUIET,
        prior=tiny_prior,
    )
    return tmp / "run", rows, summary.stats


def test_every_span_is_shown_and_originals_are_exact(spans_run):
    run, rows, stats = spans_run
    docs = load_edits(run, limit=None)
    total = sum(len(d.spans) for d in docs)
    assert total == stats["n_changed"] + stats["n_dropped"] > 0
    inputs = {r["id"]: r["text"] for r in rows}
    out = [json.loads(line) for line in (run / "data" / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    edited = [r["id"] for r in out if r["toedit"]["n_changed"] + r["toedit"]["n_dropped"]]
    assert [d.id for d in docs] == edited
    for d in docs:
        assert d.spans and d.original == inputs[d.id]
        assert d.shard == "a" and d.line == [r["id"] for r in rows].index(d.id) + 1
    page = render_html(docs, "audit")
    assert _shown_originals(page) == [inputs[d.id] for d in docs]
    assert page.count("<del") == total
    assert page.count("<ins") == sum(not s.dropped for d in docs for s in d.spans)
    assert page.count("<tr id=") == total
    term = render_terminal(docs, color=False)
    assert len(EDIT_LINE.findall(term)) == total
    assert f"{len(docs)} documents, {total} edits" in term
    # the limit counts documents with edits, in input order
    assert [d.id for d in load_edits(run, limit=2)] == [d.id for d in docs[:2]]


def test_html_escapes_corpus_and_token_text(spans_run):
    run, rows, _ = spans_run
    term = run_diff(run, doc="xss", html=run.parent / "out" / "page.html", color=False)
    assert term.startswith("== xss ") and "wrote" in term
    html_page = (run.parent / "out" / "page.html").read_text(encoding="utf-8")
    for raw in ("<script", "<b>", "</b>", "alert(1)</script>"):
        assert raw not in html_page
    assert _shown_originals(html_page) == [rows[-1]["text"]]  # the markup shows as text, escaped
    assert "<link" not in html_page and "src=" not in html_page and "<style>" in html_page
    # a synthetic document: the edits themselves carry markup and entities
    text = "<script>alert(1)</script> &amp; x"
    span = Span(8, 13, "alert", "<img src=x>", 0.9, 0, (("<img src=x>", 0.5), ('"><script>', 0.4)))
    edited = text[:8] + span.new + text[13:]
    doc = DocEdits("<i>id</i>", "s", 1, edited, original_text(edited, [span]), [span])
    assert doc.original == text
    page = render_html([doc], "<title>")
    assert "<script" not in page and "<img" not in page and "<i>" not in page
    assert "&lt;script&gt;" in page and "&amp;amp;" in page and "&lt;img src=x&gt;" in page
    assert "&quot;&gt;&lt;script&gt;" in page  # the candidate inside the title tooltip and the table
    assert page.count("<del") == 1 and page.count("<ins") == 1


def test_doc_selection_and_errors(spans_run, tiny_prior, tmp_path):
    run, rows, _ = spans_run
    (one,) = load_edits(run, doc="xss")
    assert one.id == "xss" and one.original == rows[-1]["text"]
    with pytest.raises(ValueError, match="'nope'"):
        load_edits(run, doc="nope")
    src = _write(tmp_path / "b.jsonl", rows[:2])
    run_edit([str(src)], str(tmp_path / "plain"), EditConfig(threshold=0.2), run=QUIET, prior=tiny_prior)
    with pytest.raises(AuditError, match="--record-spans"):
        run_diff(tmp_path / "plain")


def _doc() -> DocEdits:
    spans = [
        Span(3, 7, " cat", " dog", 0.95, 0, ((" cat", 0.95), (" dog", 0.03))),
        Span(11, 12, "\n", " ", 0.91, 0, (("\n", 0.91), (" ", 0.05))),
        Span(26, 30, " was", "", 0.0005, 0, ()),
    ]
    edited = "The dog sat on the mat. It a fine day."
    return DocEdits("t", "s", 1, edited, original_text(edited, spans), spans)


def test_terminal_markers_context_and_color():
    doc = _doc()
    assert doc.original == "The cat sat\non the mat. It was a fine day."
    plain = render_terminal([doc], color=False)
    assert "The[- cat-]{+ dog+} sat[-↵-]{+␣+}\non the mat. It[- was-] a fine day." in plain
    assert "\x1b[" not in plain
    assert "p=0.9500  ␣cat -> ␣dog" in plain and "␣dog* 0.0300" in plain
    assert "p=0.0005  ␣was -> ∅ (dropped)" in plain
    colored = render_terminal([doc], color=True)
    assert "\x1b[31;9m cat\x1b[0m\x1b[32m dog\x1b[0m" in colored
    short = render_terminal([doc], color=False, context=2)
    assert "...he[- cat-]{+ dog+} sat[-↵-]{+␣+}\non..." in short and "...It[- was-] a..." in short
    assert "fine day" not in short


def test_original_text_checks_the_edited_text():
    with pytest.raises(AuditError, match="does not hold"):
        original_text("The dog sat", [Span(3, 7, " cat", " cow", 0.9)], "t")
    assert original_text("abc", []) == "abc"


@pytest.mark.parametrize("mode", ["rounds", "messages"])
def test_multi_round_and_messages_runs_list_spans_without_context(mode, tiny_prior, tmp_path):
    texts = [t[:200] for t in corpus_texts(3)]
    if mode == "messages":
        rows = [
            {
                "id": f"m{i}",
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": t}],
            }
            for i, t in enumerate(texts)
        ]
        io, edit = IOConfig(messages_field="messages"), EditConfig(threshold=0.2, record_spans=True)
    else:
        rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
        io, edit = IOConfig(), EditConfig(threshold=0.2, record_spans=True, rounds=2)
    src = _write(tmp_path / "in.jsonl", rows)
    summary = run_edit([str(src)], str(tmp_path / "run"), edit, io=io, run=QUIET, prior=tiny_prior)
    docs = load_edits(tmp_path / "run", limit=None)
    total = sum(len(d.spans) for d in docs)
    assert total == summary.stats["n_changed"] + summary.stats["n_dropped"] > 0
    assert all(d.original is None and not d.inline for d in docs)
    note = "messages mode" if mode == "messages" else "2 editing rounds"
    term = render_terminal(docs, color=False)
    assert note in term and "without inline context" in term
    assert len(re.findall(r"^\s+\d+\. r\d@\d+\s+p=", term, re.M)) == total
    page = render_html(docs, "audit")
    assert note in page and "<del" not in page and page.count("<tr id=") == total


def test_ids_cannot_forge_an_edit_block(tiny_prior, tmp_path):
    """An id holding a newline printed a second, forged `== ... ==` header in the terminal view."""
    forged = "a\n== forged  (shard x, line 9): 1 edit ==\n\x1b[2J"
    text = corpus_texts(1)[0][:300]
    src = _write(tmp_path / "in.jsonl", [{"id": forged, "text": text}, {"id": "b\tc", "text": text}])
    run_edit(
        [str(src)],
        str(tmp_path / "run"),
        EditConfig(threshold=0.2, record_spans=True),
        run=QUIET,
        prior=tiny_prior,
    )
    docs = load_edits(tmp_path / "run", limit=None)
    assert [d.id for d in docs] == [forged, "b\tc"]
    shown = render_terminal(docs, color=False)
    headers = [line for line in shown.splitlines() if line.startswith("== ")]
    assert len(headers) == 2
    assert headers[0].startswith("== a↵== forged  (shard x, line 9): 1 edit ==↵␛[2J  (shard in, line 1)")
    assert headers[1].startswith("== b⇥c  (shard in, line 2)")
    assert "\x1b" not in shown
