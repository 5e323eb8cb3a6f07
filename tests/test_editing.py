"""Editing: byte-identical untouched text, honest counts, determinism, rounds, full-vocabulary draws."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TRICKY_TEXTS, corpus_texts
from toedit.config import EditConfig, ScoreConfig
from toedit.editing import EditStats, splice
from toedit.pipeline import edit_batch, edit_texts
from toedit.scoring import score_texts

TEXTS = [t[:400] for t in corpus_texts(10)] + TRICKY_TEXTS


def apply_spans(text: str, spans: list[list]) -> str:
    out, cursor = [], 0
    for start, end, old, new, _p, _round, _cands in spans:
        assert text[start:end] == old
        out += [text[cursor:start], new]
        cursor = end
    return "".join(out) + text[cursor:]


def test_threshold_one_returns_every_text_byte_identical(tiny_prior):
    results = edit_texts(TEXTS, tiny_prior, EditConfig(threshold=1.0))
    assert [r.text for r in results] == TEXTS
    assert all(r.stats.n_changed == 0 and r.stats.n_above == 0 for r in results)


@pytest.mark.parametrize("strategy", ["resample", "resample+drop", "drop"])
def test_untouched_text_is_byte_identical(tiny_prior, strategy):
    cfg = EditConfig(threshold=0.3, low=0.05, strategy=strategy, record_spans=True, top_k=8)
    results = edit_texts(TEXTS, tiny_prior, cfg)
    assert sum(r.stats.n_changed + r.stats.n_dropped for r in results) > 0
    for text, res in zip(TEXTS, results, strict=True):
        assert apply_spans(text, res.spans) == res.text
        assert len(res.spans) == res.stats.n_changed + res.stats.n_dropped
        for _s, _e, old, new, p, _r, _c in res.spans:
            assert old != new
            if strategy == "drop" or new == "":
                assert new == "" and p < 0.05
            else:
                assert p > 0.3


def test_stats_are_true_counts(tiny_prior):
    cfg = EditConfig(threshold=0.5, top_k=8)
    results = edit_texts(TEXTS, tiny_prior, cfg)
    scores = score_texts(TEXTS, tiny_prior)
    for res, sc in zip(results, scores, strict=True):
        assert res.stats.n_tokens == len(sc)
        assert res.stats.n_scored == sc.n_scored
        assert res.stats.n_above == int((np.exp(sc.logprob.astype(float)) > 0.5).sum())
        assert res.stats.n_changed + res.stats.n_skipped_unsafe <= res.stats.n_above


def test_multibyte_fragments_are_never_edited(tiny_prior):
    texts = ["東京都は日本の首都です。😀👍🏽 👨‍👩‍👧"] * 3
    results = edit_texts(
        texts, tiny_prior, EditConfig(threshold=0.0, exclude_original=True, record_spans=True)
    )
    for text, res in zip(texts, results, strict=True):
        assert res.stats.n_skipped_unsafe > 0
        assert apply_spans(text, res.spans) == res.text
        assert "\ufffd" not in res.text


def test_same_seed_same_output_other_seed_differs(tiny_prior):
    cfg = EditConfig(threshold=0.2, seed=3)
    a = [r.text for r in edit_texts(TEXTS, tiny_prior, cfg)]
    b = [r.text for r in edit_texts(TEXTS, tiny_prior, cfg)]
    c = [r.text for r in edit_texts(TEXTS, tiny_prior, EditConfig(threshold=0.2, seed=4))]
    assert a == b
    assert a != c


def test_output_does_not_depend_on_batching_or_windows(tiny_prior):
    cfg = EditConfig(threshold=0.2, seed=1)
    ids = [f"doc{i}" for i in range(len(TEXTS))]
    base = edit_texts(TEXTS, tiny_prior, cfg, ids=ids, score_config=ScoreConfig(token_budget=10_000))
    small = edit_texts(
        TEXTS, tiny_prior, cfg, ids=ids, score_config=ScoreConfig(token_budget=100, head_chunk=7)
    )
    one_by_one = [edit_texts([t], tiny_prior, cfg, ids=[i])[0] for t, i in zip(TEXTS, ids, strict=True)]
    assert [r.text for r in base] == [r.text for r in small] == [r.text for r in one_by_one]
    # a window covering the whole text gives the same result as the default window
    wide = edit_texts(TEXTS, tiny_prior, cfg, ids=ids, score_config=ScoreConfig(window=256, stride=200))
    assert [r.text for r in base] == [r.text for r in wide]


def test_rounds_rescore_the_previous_output(tiny_prior):
    res = edit_texts(TEXTS[:5], tiny_prior, EditConfig(threshold=0.2, rounds=3, record_spans=True))
    for r in res:
        assert len(r.rounds) == 3
        total = EditStats()
        for st in r.rounds:
            total += st
        assert total == r.stats
        assert {s[5] for s in r.spans} <= {0, 1, 2}
    one = edit_texts(TEXTS[:5], tiny_prior, EditConfig(threshold=0.2, rounds=1))
    assert [r.rounds[0] for r in res] == [r.stats for r in one]


def test_full_vocabulary_draws(tiny_prior):
    # beta -> 0 turns the tempered distribution into argmax: every selected token becomes the top-1 token
    cfg = EditConfig(threshold=0.0, top_k=0, beta=1e-4, record_spans=True)
    texts = [t[:300] for t in corpus_texts(3)]
    res = edit_texts(texts, tiny_prior, cfg)
    scores = score_texts(texts, tiny_prior, ScoreConfig(store_k=1))
    for r, sc, text in zip(res, scores, texts, strict=True):
        argmax_differs = int((sc.topk_ids[:, 0] != sc.token_ids).sum())
        assert r.stats.n_changed + r.stats.n_skipped_unsafe == argmax_differs
        assert apply_spans(text, r.spans) == r.text
    # exclude_original: every clean selected token changes
    res = edit_texts(texts, tiny_prior, EditConfig(threshold=0.0, top_k=0, exclude_original=True))
    for r in res:
        assert r.stats.n_changed + r.stats.n_skipped_unsafe == r.stats.n_above == r.stats.n_scored


def test_splice_skips_special_token_replacements(tiny_prior):
    text = "hello world"
    (sc,) = score_texts([text], tiny_prior)
    new_ids = sc.token_ids.astype(np.int64).copy()
    new_ids[0] = 0  # <|endoftext|>
    out, stats, _ = splice(text, sc, new_ids, tiny_prior.piece, frozenset({0}))
    assert out == text and stats.n_skipped_unsafe == 1 and stats.n_changed == 0


def test_edit_batch_for_datasets_map(tiny_prior):
    batch = {"text": TEXTS[:4], "meta": [1, 2, 3, 4]}
    out = edit_batch(batch, tiny_prior, EditConfig(threshold=0.2))
    assert out["meta"] == [1, 2, 3, 4]
    assert len(out["text"]) == 4 and "toedit_n_changed" in out
    # keyed by content: the same text edits the same way wherever it sits in a batch
    again = edit_batch({"text": TEXTS[2:4], "meta": [0, 0]}, tiny_prior, EditConfig(threshold=0.2))
    assert again["text"] == out["text"][2:4]


def test_windowing_changes_context_not_the_random_streams(tiny_prior):
    # windows larger than every document: identical output; windows that split a document: the first
    # window's positions see the same context and draw the same uniforms, so their decisions agree
    from toedit.editing import decide
    from toedit.rng import doc_uniforms

    texts = [t[:300] for t in corpus_texts(4)]
    cfg = EditConfig(threshold=0.2, seed=2)
    a = edit_texts(texts, tiny_prior, cfg, score_config=ScoreConfig(window=200))
    b = edit_texts(texts, tiny_prior, cfg, score_config=ScoreConfig(window=256))
    assert [r.text for r in a] == [r.text for r in b]
    wide = score_texts(texts, tiny_prior, ScoreConfig(window=256))
    narrow = score_texts(texts, tiny_prior, ScoreConfig(window=32, stride=24))
    for i, (w, n) in enumerate(zip(wide, narrow, strict=True)):
        u = doc_uniforms(cfg.seed, str(i), 0, len(w))
        np.testing.assert_array_equal(decide(w, cfg, u)[:31], decide(n, cfg, u)[:31])


def test_edit_batch_with_datasets_map(tiny_prior):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": TEXTS[:6], "n": list(range(6))})
    kwargs = {"prior": tiny_prior, "config": EditConfig(threshold=0.2)}
    one = ds.map(edit_batch, batched=True, batch_size=1, fn_kwargs=kwargs)
    four = ds.map(edit_batch, batched=True, batch_size=4, fn_kwargs=kwargs)
    assert one["text"] == four["text"] and one["n"] == list(range(6))
    assert sum(one["toedit_n_changed"]) > 0


def _word_spans(text: str) -> list[tuple[int, int]]:
    """Maximal runs of word characters (alphanumerics, inner apostrophes) of a text."""
    from toedit.editing import _word_char_at

    spans, i = [], 0
    while i < len(text):
        if _word_char_at(text, i):
            j = i
            while _word_char_at(text, j):
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


@pytest.mark.parametrize("seed", range(12))
def test_word_boundary_never_edits_inside_a_word(tiny_prior, seed):
    """Every change under boundary=word replaces a whole word of the input by a whole word."""
    cfg = EditConfig(threshold=0.05, top_k=8, boundary="word", seed=seed, record_spans=True)
    results = edit_texts(TEXTS, tiny_prior, cfg)
    assert sum(r.stats.n_changed for r in results) > 0
    for text, res in zip(TEXTS, results, strict=True):
        words = set(_word_spans(text))
        for start, end, old, new, _p, _r, _c in res.spans:
            lead = len(old) - len(old.lstrip())
            assert (start + lead, end) in words, (old, text[max(0, start - 10) : end + 10])
            body = new.lstrip()
            assert body and body[0].isalnum() and body[-1].isalnum()
            assert new[:1].isspace() or start == 0 or not text[start - 1].isalnum()
        st = res.stats
        assert st.n_changed == st.n_changed_word  # every change is a whole word
        assert st.n_changed_fragment == st.n_changed_space == st.n_changed_punct == 0


def test_without_boundary_the_rule_also_splits_words(tiny_prior):
    """The control: the same low threshold without the boundary edits fragments, spaces or punctuation."""
    results = edit_texts(TEXTS, tiny_prior, EditConfig(threshold=0.05, top_k=8))
    tot = EditStats()
    for r in results:
        tot += r.stats
    assert tot.n_changed > 0
    assert tot.n_changed_fragment + tot.n_changed_space + tot.n_changed_punct > 0
    assert tot.n_changed == sum(
        getattr(tot, f"n_changed_{k}") for k in ("word", "fragment", "space", "punct")
    )


@pytest.mark.parametrize(
    ("text", "start", "end", "new", "kind"),
    [
        ("Mr Darcy came.", 2, 8, " Bingley", "word"),
        ("Mr Darcy came.", 2, 8, "\n", "space"),
        ("Mr Darcy came.\nThen", 14, 15, " Of", "space"),
        ("Mr Darcy came.", 2, 7, " Darc", "fragment"),  # " Darc" + "y": inside the word
        ("Mr Bingley came.", 8, 10, "es", "fragment"),  # Bingley -> Bingles
        ("together", 0, 8, "ta", "word"),
        ("to-gether", 3, 9, "ir", "fragment"),  # "ir" glues onto "-"? no: "-ir" starts a word -> see below
        ("Mr Darcy came.", 13, 14, "!", "punct"),
        ("Mr Darcy came, then", 13, 14, " and", "fragment"),  # punctuation replaced by a word
        ("of it", 0, 2, "Of", "word"),
    ],
)
def test_change_kind_on_hand_made_cases(text, start, end, new, kind):
    from toedit.editing import change_kind

    if text == "to-gether":  # "gether" after "-" is a whole word; "ir" replacing it is one too
        kind = "word"
    assert change_kind(text, start, end, new) == kind


def test_cli_boundary_flag_reaches_the_rule(tmp_path, tiny_model_dir):
    """`toedit edit --boundary word`: the run's stats count whole-word changes only."""
    import json

    from toedit.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t[:400]}) + "\n" for t in corpus_texts(8)), encoding="utf-8")
    for boundary in ("word", "none"):
        run = tmp_path / boundary
        args = ["edit", str(src), "-o", str(run), "--threshold", "0.05", "--boundary", boundary]
        assert main([*args, "--model", str(tiny_model_dir), "--device", "cpu", "--no-progress"]) == 0
        stats = json.loads((run / "stats.json").read_text())
        totals = stats.get("totals", stats)
        assert totals["n_changed"] > 0
        assert (totals["n_changed_word"] == totals["n_changed"]) == (boundary == "word")
