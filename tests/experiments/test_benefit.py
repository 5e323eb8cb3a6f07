"""experiment benefit: arms from one scoring pass, paired training, SFT masking, verdicts, the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import corpus_texts
from toedit.config import ConfigError, ScoreConfig
from toedit.experiments import benefit as bf
from toedit.experiments.benefit import items as bitems
from toedit.experiments.benefit import lm as blm
from toedit.experiments.benefit.stats import apply_family, item_bootstrap, seed_delta
from toedit.scoring import score_texts

TINY = dict(
    seeds="0,1",
    rates="0.05",
    items=24,
    ft_items=24,
    bootstrap=200,
    pt_tokens=4096,
    pt_hidden=32,
    pt_layers=1,
    pt_vocab=300,
    pt_seq_len=32,
    pt_batch=4,
    ft_layers=1,
    ft_batch=4,
    cpt_tokens=1024,
    cpt_docs=8,
    cpt_seq_len=32,
    sft_pairs=16,
    sft_max_len=40,
    item_words=20,
)


def write_jsonl(path, texts):
    with open(path, "w") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": f"d{i}", "text": t}) + "\n")
    return str(path)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matmuls: one thread (two threads on a loaded 2-core machine were 50x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def chitchat_json(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "went",
        "home",
        "today",
        "yes",
        "no",
        "maybe",
        "good",
        "fine",
        "thanks",
    ]
    data = {}
    for c in range(80):
        msgs = []
        for _turn in range(4):
            n = int(rng.integers(3, 9))
            msgs.append([{"text": " ".join(rng.choice(words, n)) + "."}])
        data[f"conv{c}"] = {"messages": msgs}
    path = tmp_path_factory.mktemp("chat") / "chat.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def pt_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pt")
    return write_jsonl(d / "train.jsonl", corpus_texts(20)), write_jsonl(
        d / "held.jsonl", corpus_texts(60)[30:]
    )


def _config(**kw):
    return bf.BenefitConfig(**{**TINY, **kw})


def test_pretrain_end_to_end_paired_and_token_matched(tiny_prior, pt_files):
    cfg = _config(setting="pretrain", data=pt_files[0], heldout=pt_files[1])
    cfg.validate()
    res = bf.run_setting("pretrain", cfg, tiny_prior, progress=False)
    arms = [a["arm"] for a in res["arms"]]
    assert arms == ["H", "E", "E-rate@5%", "E-text@5%", "E-word@5%", "R@5%"]
    for seed in (0, 1):
        runs = [r for r in res["runs"] if r["seed"] == seed]
        assert len({r["train_tokens"] for r in runs}) == 1  # identical token budgets
        assert len({r["doc_order"] for r in runs}) == 1  # identical document order
        corpus = {r["arm"]: r["corpus_tokens"] for r in runs}
        # the edited corpora differ a little in length (the LM's own BPE retokenizes the prior's swaps); the
        # training budget above is identical regardless
        assert all(abs(corpus[a] - corpus["H"]) / corpus["H"] < 0.03 for a in corpus), corpus
    by = {a["arm"]: a for a in res["arms"]}
    assert by["E-rate@5%"]["changed_rate"] > 0
    # R: per kind, the reference's changes minus the positions that were missing
    for kind, n in by["E-rate@5%"]["kind_counts"].items():
        assert by["R@5%"]["kind_counts"][kind] + by["R@5%"]["shortfall"][kind] == n
    assert by["E-word@5%"]["kinds"]["word"] == 1.0
    assert by["E-text@5%"]["kind_counts"]["space"] == 0 and by["E-text@5%"]["changed_rate"] > 0
    assert all(math.isfinite(r["ppl"]) and 0 <= r["acc"] <= 1 for r in res["runs"])
    assert res["unigram_ppl"] > 1  # the word-frequency level, on the same held-out tokens
    md = bf.setting_markdown({**res, "description": "d"})
    assert "unigram" in md
    assert "| R@5% |" in md and "Paper:" in md


def test_changing_the_arms_seeds_and_rates_reaches_the_runs(tiny_prior, pt_files):
    cfg = _config(
        setting="pretrain",
        data=pt_files[0],
        heldout=pt_files[1],
        arms="H,E-rate",
        rates="0.02,0.1",
        seeds="3,4",
    )
    res = bf.run_setting("pretrain", cfg, tiny_prior, progress=False)
    assert [a["arm"] for a in res["arms"]] == ["H", "E-rate@2%", "E-rate@10%"]
    assert res["seeds"] == [3, 4]
    by = {a["arm"]: a for a in res["arms"]}
    assert by["E-rate@10%"]["changed_rate"] > by["E-rate@2%"]["changed_rate"]


def test_cpt_end_to_end(tiny_prior):
    cfg = _config(setting="cpt", arms="H,E-rate,R")
    res = bf.run_setting("cpt", cfg, tiny_prior, progress=False)
    for seed in (0, 1):
        runs = [r for r in res["runs"] if r["seed"] == seed]
        assert len({r["train_tokens"] for r in runs}) == 1 and runs[0]["train_tokens"] >= 1024
        assert len({r["doc_order"] for r in runs}) == 1
    assert res["items"] > 0 and all(math.isfinite(r["ppl"]) for r in res["runs"])
    assert math.isfinite(res["before"]["ppl"]) and len(res["before"]["correct"]) == res["items"]
    assert res["moved"]["word"] in ("moved", "not informative: the model barely moved")
    md = bf.setting_markdown({**res, "description": "d"})
    assert "the prior before training" in md
    assert {r["precision"] for r in res["runs"]} <= {"bfloat16", "float32"} and ", matmuls in " in md


def test_cpt_trains_only_the_top_layers_and_leaves_the_prior_alone(tiny_prior):
    before = {k: v.clone() for k, v in tiny_prior.model.state_dict().items()}
    top = blm.TopLM(bf.trainable_copy(tiny_prior), 1)
    state = top.state()
    ids = tiny_prior.tokenizer(corpus_texts(2)[1], return_tensors="pt")["input_ids"][:, :32]
    blm.train_lm(top, [(top.inputs(ids), ids)] * 3, lr=1e-2)
    changed = [k for k, v in top.state().items() if not np.allclose(v.numpy(), state[k].numpy())]
    assert changed and all("layers.0." in k or k.startswith("norm") for k in changed)
    assert all(v.equal(tiny_prior.model.state_dict()[k]) for k, v in before.items())
    top.reset(state)
    assert all(v.equal(state[k]) for k, v in top.state().items())


def test_top_lm_computes_the_same_logits_as_the_model(tiny_prior):
    import torch

    model = bf.trainable_copy(tiny_prior)
    ids = tiny_prior.tokenizer(corpus_texts(3)[2], return_tensors="pt")["input_ids"][:, :40]
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        top = blm.TopLM(model, 1)
        got = top.head(top.hidden(top.inputs(ids)))
        # the frozen layers may come from another copy of the same model (the prior in its own dtype)
        shared = blm.TopLM(bf.trainable_copy(tiny_prior), 1, frozen=tiny_prior.model)
        got_shared = shared.head(shared.hidden(shared.inputs(ids)))
    assert torch.allclose(got, ref, atol=1e-4)
    assert torch.allclose(got_shared, ref, atol=1e-4)


@pytest.mark.parametrize("bf16", [False, True])
def test_top_lm_encode_does_not_depend_on_block_mates_and_is_memoised(tiny_prior, bf16):
    import torch

    top = blm.TopLM(bf.trainable_copy(tiny_prior), 1, frozen=tiny_prior.model)
    top.bf16 = bf16
    ids = tiny_prior.tokenizer(corpus_texts(3)[2], add_special_tokens=False)["input_ids"]
    a, b, c = ids[:20], ids[5:37], ids[40:47]
    alone = top.encode([a], 40)[0]
    mixed = top.encode([b, a, c, a], 40)
    assert mixed[1].equal(alone) and mixed[3].equal(alone) and len(mixed[2]) == 7
    # the same as the frozen stack on the sequence by itself (no padding), up to bf16 rounding
    with torch.no_grad(), blm.autocast(top.device, bf16):
        plain = top.low(ids=torch.tensor([a]))[0]
    assert torch.allclose(alone.float(), plain.float(), atol=3e-2 if bf16 else 1e-5)
    calls = []
    hook = top.low.register_forward_hook(lambda *_: calls.append(1))
    top.memo = {}
    first = top.encode([a, b], 40)
    again = top.encode([b, a, a], 40)
    hook.remove()
    assert len(calls) == 1  # each distinct sequence computed once, in one block
    assert again[0].equal(first[1]) and again[1].equal(alone) and again[2].equal(alone)
    with pytest.raises(ValueError, match="longer than width"):
        top.encode([ids[:41]], 40)


@pytest.mark.parametrize("bf16", [False, True])
def test_evaluation_runs_the_frozen_stack_once_per_sequence_for_every_model(tiny_prior, bf16):
    """With a memo, every model after the first reads the evaluation set's frozen-stack output from it: the
    same numbers as without a memo, and no frozen forward after the first evaluation."""
    top = blm.TopLM(bf.trainable_copy(tiny_prior), 1, frozen=tiny_prior.model)
    top.bf16 = bf16
    items = bitems.lambada_items(corpus_texts(6), 20, 0, context_words=20, min_words=8)
    seqs = bitems.item_sequences(items, tiny_prior.tokenizer, tiny_prior.context_id, 48)
    assert len(items) > 5
    plain = blm.evaluate_items(top, items, seqs, "sequence")
    calls = []
    hook = top.low.register_forward_hook(lambda *_: calls.append(1))
    top.memo = {}
    first = blm.evaluate_items(top, items, seqs, "sequence")
    n_first = len(calls)
    again = blm.evaluate_items(top, items, seqs, "sequence")
    hook.remove()
    assert n_first > 0 and len(calls) == n_first
    for res in (first, again):
        assert res[0].tolist() == plain[0].tolist() and res[1:] == plain[1:]


def test_top_lm_scores_targets_with_the_priors_head(tiny_prior):
    import torch

    from toedit.lmhead import LMHead

    top = blm.TopLM(bf.trainable_copy(tiny_prior), 1, frozen=tiny_prior.model)
    ids = tiny_prior.tokenizer(corpus_texts(3)[2], return_tensors="pt")["input_ids"][:, :40]
    with torch.no_grad():
        h = top.hidden(top.inputs(ids))[0, :-1]
        tgt = ids[0, 1:]
        plain = top.logprobs(h, tgt)
        top.scorer = LMHead(tiny_prior)  # an fp32 prior: its head is exact
        scored = top.logprobs(h, tgt)
        ref = torch.log_softmax(top.head(h), -1).gather(1, tgt[:, None])[:, 0]
    assert torch.allclose(plain, ref, atol=1e-5) and torch.allclose(scored, ref, atol=1e-5)


def test_sft_end_to_end(tiny_prior, chitchat_json):
    cfg = _config(setting="sft", data=chitchat_json, arms="H,E,E-word", rates="0.1")
    res = bf.run_setting("sft", cfg, tiny_prior, progress=False)
    assert res["items"] > 0 and res["ppl_on"] == "choice"
    for seed in (0, 1):
        runs = [r for r in res["runs"] if r["seed"] == seed]
        assert len({r["doc_order"] for r in runs}) == 1


def test_sft_memo_changes_the_time_not_the_numbers(tiny_prior, chitchat_json, monkeypatch):
    cfg = _config(setting="sft", data=chitchat_json, arms="H,E-rate", rates="0.1")
    computed: list[int] = []
    encode = blm.TopLM.encode

    def counting(self, seqs, width, keep=True):
        if not keep:
            self.memo = None
        before = len(self.memo) if self.memo is not None else 0
        out = encode(self, seqs, width)
        computed.append(len(self.memo) - before if self.memo is not None else len(set(map(tuple, seqs))))
        return out

    monkeypatch.setattr(blm.TopLM, "encode", counting)
    memo = bf.run_setting("sft", cfg, tiny_prior, progress=False)
    reused, computed[:] = sum(computed), []
    monkeypatch.setattr(blm.TopLM, "encode", lambda self, s, w: counting(self, s, w, keep=False))
    plain = bf.run_setting("sft", cfg, tiny_prior, progress=False)
    # H's 16 examples are computed once for both seeds (and E-rate's unedited replies are H's); the evaluation
    # set once for the untrained prior and the 4 models
    assert len(plain["runs"]) == 4 and reused <= sum(computed) - 16
    assert [(r["ppl"], r["correct"], r["final_loss"]) for r in memo["runs"]] == [
        (r["ppl"], r["correct"], r["final_loss"]) for r in plain["runs"]
    ]


def test_sft_loss_masks_everything_but_the_response(tiny_tokenizer):
    eos = tiny_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids, labels = bf.sft_example("A: hello there\nB:", "fine thanks", tiny_tokenizer, eos, 64)
    reply = tiny_tokenizer(" fine thanks", add_special_tokens=False)["input_ids"] + [eos]
    kept = [(i, lab) for i, lab in zip(ids, labels, strict=True) if lab != blm.IGNORE]
    assert [lab for _, lab in kept] == reply and [i for i, _ in kept] == reply
    assert ids[-len(reply) :] == reply and all(lab == blm.IGNORE for lab in labels[: -len(reply)])
    # a long context is cut from the left, the reply is kept whole
    ids, labels = bf.sft_example("A: " + "word " * 200 + "\nB:", "fine thanks", tiny_tokenizer, eos, 32)
    assert len(ids) == 32 and labels[-len(reply) :] == reply


def test_masked_loss_ignores_masked_positions(tiny_prior):
    import torch

    lm = blm.FullLM(bf.trainable_copy(tiny_prior))
    ids = torch.tensor([[1, 5, 9, 12, 7, 3]])
    labels = ids.clone()
    labels[0, :4] = blm.IGNORE
    base = blm.masked_loss(lm, ids, labels)
    other = ids.clone()
    other[0, 1] = 42  # a masked target changes the context only: the loss is over positions 4 and 5
    ref = blm.masked_loss(lm, ids, ids)
    assert not torch.isclose(base, ref)
    logits = lm.head(lm.hidden(ids))[0].float()
    expect = torch.nn.functional.cross_entropy(logits[3:5], ids[0, 4:6])
    assert torch.isclose(base, expect, atol=1e-5)


def test_random_control_matches_each_kind_of_change(tiny_prior):
    from toedit.editing import CHANGE_KINDS
    from toedit.experiments.benefit.arms import _piece_test

    texts = [t[:600] for t in corpus_texts(12)]
    scores = score_texts(texts, tiny_prior, ScoreConfig(store_k=8), k=8)
    rng = np.random.default_rng(0)
    unsafe = frozenset(tiny_prior.special_ids())
    usable = _piece_test(tiny_prior.piece, lambda p: "\ufffd" not in p)
    for text, sc in zip(texts, scores, strict=True):
        for want in ({}, {"word": 2}, {"word": 1, "fragment": 1, "punct": 1, "space": 1}):
            out, st, short = bf.matched_random(text, sc, want, rng, tiny_prior.piece, usable, unsafe)
            for k in CHANGE_KINDS:
                assert getattr(st, f"n_changed_{k}") == want.get(k, 0) - short[k] and short[k] >= 0
            assert (out == text) == (st.n_changed == 0)
    # more than the document has: the shortfall says so, nothing of another kind fills it
    out, st, short = bf.matched_random(
        texts[0], scores[0], {"word": 10_000}, rng, tiny_prior.piece, usable, unsafe
    )
    assert short["word"] == 10_000 - st.n_changed_word > 0 and st.n_changed == st.n_changed_word


def test_arms_come_from_one_scoring_pass(tiny_prior, monkeypatch):
    texts = [t[:500] for t in corpus_texts(10)]
    scores = score_texts(texts, tiny_prior, ScoreConfig(store_k=8), k=8)
    calls = []
    for where in (
        "toedit.scoring.score_texts",
        "toedit.pipeline.score_texts",
        "toedit.experiments.benefit.run.score_texts",
    ):
        monkeypatch.setattr(where, lambda *a, **k: calls.append(1))
    cfg = _config(rates="0.05")
    cal = bf.calibrate_arms(texts, scores, tiny_prior, cfg)
    arms = bf.build_arms(texts, [str(i) for i in range(10)], scores, tiny_prior, cfg, cal, seed=0)
    assert not calls
    assert arms["H"][0] == texts
    ref = arms["E-rate@5%"][1]
    assert arms["R@5%"][1]["changed"] + sum(arms["R@5%"][1]["shortfall"].values()) == ref["changed"] > 0
    assert abs(ref["changed_rate"] - 0.05) < 0.03  # calibrated from the same scores
    assert abs(arms["E-word@5%"][1]["changed_rate"] - 0.05) < 0.03  # the boundary rule is calibrated too
    other = bf.build_arms(texts, [str(i) for i in range(10)], scores, tiny_prior, cfg, cal, seed=1)
    assert other["E-rate@5%"][0] != arms["E-rate@5%"][0]  # edits are redrawn per seed


def _arms(ppl: dict[str, list[float]], acc: dict[str, list[float]]) -> list[dict]:
    h_ppl, h_acc = ppl.pop("H"), acc.pop("H")
    rows = [{"arm": "H", "ppl": {"mean": sum(h_ppl) / len(h_ppl)}}]
    for arm in ppl:
        rows.append({"arm": arm, "d_ppl": seed_delta(ppl[arm], h_ppl), "d_acc": seed_delta(acc[arm], h_acc)})
    return rows


def test_seed_delta_is_the_shared_paired_delta():
    d = seed_delta([0.30, 0.32, 0.31], [0.25, 0.26, 0.27])
    assert d["mean"] == pytest.approx(0.05) and d["n"] == 3 and d["half"] > 0 and 0 < d["p"] < 0.05
    assert d["per_seed"] == pytest.approx([0.05, 0.06, 0.04])
    with pytest.raises(ValueError):
        seed_delta([1.0], [1.0, 2.0])


def test_benefit_family_four_outcomes_with_margins_from_the_config():
    h = [100.0, 120.0, 90.0, 110.0, 105.0]
    arms = _arms(
        {
            "H": h,
            "E": [x - 10 for x in h],  # 10 PPL lower in every seed: improves
            "R": [x + 0.1 * (i - 2) for i, x in enumerate(h)],  # within ±2 % of H: no effect
            "E-rate": [x + d for x, d in zip(h, (-40, 35, -20, 30, 0), strict=True)],  # wide: inconclusive
        },
        {"H": [0.5] * 5, "E": [0.5] * 5, "R": [0.5] * 5, "E-rate": [0.5] * 5},
    )
    note = apply_family(arms, ppl_margin=0.02, acc_margin=0.0025)
    by = {a["arm"]: a for a in arms[1:]}
    assert by["E"]["d_ppl"]["verdict"] == "improves"
    assert by["R"]["d_ppl"]["verdict"] == "no effect"
    assert by["E-rate"]["d_ppl"]["verdict"] == "inconclusive" and by["E-rate"]["d_ppl"]["mde"] > 20
    assert by["E"]["d_acc"]["verdict"] == "no effect"  # Δ = 0 in every seed: inside ±0.25 points
    assert "Primary endpoint: E - H, acc" in note and "family of 6" in by["E"]["d_ppl"]["rule"]
    # a margin wider than the spread turns the wide arm into "no effect": the margin reaches the rule
    apply_family(arms, ppl_margin=0.9, acc_margin=0.0025)
    assert by["E-rate"]["d_ppl"]["verdict"] == "no effect"
    # identical decisions over 275 items cannot show a difference below one item (0.36 points): inconclusive
    apply_family(arms, ppl_margin=0.02, acc_margin=0.0025, items=275)
    assert by["E"]["d_acc"]["verdict"] == "inconclusive" and "resolution" in by["E"]["d_acc"]["rule"]
    apply_family(arms, ppl_margin=0.02, acc_margin=0.0025, items=400)  # one item = 0.25 points: inside
    assert by["E"]["d_acc"]["verdict"] == "no effect"


def test_item_bootstrap_both_ways():
    rng = np.random.default_rng(0)
    base = (rng.random((3, 400)) < 0.5).astype(int)
    better = np.maximum(base, (rng.random((3, 400)) < 0.3).astype(int))
    up = item_bootstrap(better, base, 500)
    assert up["lo"] > 0 and up["p"] < 0.01
    down = item_bootstrap(base, better, 500)
    assert down["hi"] < 0
    same = item_bootstrap(base, base, 500)
    assert same["mean"] == 0 and same["p"] == 1.0


def _zipf_text(seed: int = 0) -> tuple[str, dict[str, int]]:
    """Sentences of 3-letter words with Zipf-like frequencies, the commonest also capitalised sometimes."""
    import itertools

    rng = np.random.default_rng(seed)
    vocab = ["".join(t) for t in itertools.product("bcdfgk", repeat=3)][:150]
    p = 1 / np.arange(1, len(vocab) + 1)
    words = list(rng.choice(vocab, 6000, p=p / p.sum()))
    words = [w.capitalize() if i % 7 == 0 else w for i, w in enumerate(words)]
    sentences = [" ".join(words[i : i + 25]) + "." for i in range(0, len(words), 25)]
    counts: dict[str, int] = {}
    for w in words:
        counts[w.lower()] = counts.get(w.lower(), 0) + 1
    return "\n\n".join(" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)), counts


def test_lambada_distractors_are_frequency_matched_and_deterministic():
    text, counts = _zipf_text()
    items = bitems.lambada_items([text], 200, seed=3)
    assert len(items) == 200
    forms, ranks = bitems.word_ranks([text], np.random.default_rng(3))  # the ranking the items drew from
    assert [counts[f.lower()] for f in forms] == sorted(counts.values(), reverse=True)
    freq_pick = 0
    for it in items:
        true = it.choices[it.answer].strip()
        others = [c.strip() for i, c in enumerate(it.choices) if i != it.answer]
        assert len({o.lower() for o in others}) == 3 and true.lower() not in {o.lower() for o in others}
        assert all(abs(ranks[o.lower()] - ranks[true.lower()]) <= 12 for o in others)  # frequency-matched
        freq_pick += max(range(4), key=lambda i: counts[it.choices[i].strip().lower()]) == it.answer
    # a model that knows only word frequencies is near chance (25 %), not far above or below it
    assert 0.12 < freq_pick / len(items) < 0.4, freq_pick
    again = bitems.lambada_items([text], 200, seed=3)
    assert [(i.context, i.choices, i.answer) for i in again] == [
        (i.context, i.choices, i.answer) for i in items
    ]
    other = bitems.lambada_items([text], 200, seed=4)
    assert [i.choices for i in other] != [i.choices for i in items]


def test_matched_distractors_skip_the_answer_and_its_case_variants():
    forms = [f"w{c}" for c in "abcdefghijklmnopqrst"]
    forms[5] = "Wf"  # the answer's type, shown capitalised
    ranks = {f.lower(): i for i, f in enumerate(forms)}
    for seed in range(20):
        got = bitems.matched_distractors("wF", forms, ranks, np.random.default_rng(seed), window=4)
        assert len(set(got)) == 3 and "Wf" not in got
        assert all(abs(ranks[g.lower()] - 5) <= 2 for g in got)  # the 4 nearest ranks: 3, 4, 6, 7


def test_lambada_items_end_sentences_and_keep_the_text_before():
    text = " ".join(f"alpha{'' if i % 2 else 'x'} beta gamma delta." for i in range(12))
    items = bitems.lambada_items([text], 50, 0, context_words=10, min_words=8)
    assert items
    for it in items:
        true = it.choices[it.answer].strip()
        assert true == "delta"
        assert len(it.context.split()) == 10 and it.context.endswith("gamma")


def test_config_errors():
    with pytest.raises(ConfigError, match="arm"):
        bf.BenefitConfig(arms="H,X").validate()
    with pytest.raises(ConfigError, match="include H"):
        bf.BenefitConfig(arms="E").validate()
    with pytest.raises(ConfigError, match="one setting"):
        bf.BenefitConfig(data="x.jsonl").validate()
    with pytest.raises(ConfigError, match="2 seeds"):
        bf.BenefitConfig(seeds="1").validate()
    with pytest.raises(ConfigError, match="rates"):
        bf.BenefitConfig(rates="2").validate()


def test_write_marked_replaces_only_the_marked_block(tmp_path):
    from toedit.experiments.common import marked_block, markers, write_marked

    page = tmp_path / "RESULTS.md"
    page.write_text("# Results\n\nother part\n")
    write_marked(page, "benefit", "first")
    write_marked(page, "benefit", "second")
    text = page.read_text()
    assert text.startswith("# Results\n\nother part\n") and "second" in text and "first" not in text
    assert text.count(markers("benefit")[0]) == 1 and marked_block(page, "benefit") == "second"


def test_run_benefit_writes_json_page_and_rerenders(tiny_model_dir, pt_files, tmp_path):
    page = tmp_path / "RESULTS.md"
    page.write_text("# Results\n")
    cfg = _config(
        setting="pretrain", model=str(tiny_model_dir), data=pt_files[0], heldout=pt_files[1], arms="H,E-rate"
    )
    result = bf.run_benefit(
        tmp_path / "out", cfg, progress=False, results=page, command="toedit experiment benefit"
    )
    text = page.read_text()
    assert text.startswith("# Results\n") and "### Pre-training from scratch (2 seeds)" in text
    stored = json.loads((tmp_path / "out" / "benefit.json").read_text())
    assert [r["acc"] for r in stored["settings"]["pretrain"]["runs"]] == [
        r["acc"] for r in result["settings"]["pretrain"]["runs"]
    ]
    before = (tmp_path / "out" / "benefit.md").read_text()
    bf.rerender(tmp_path / "out", page)
    assert (tmp_path / "out" / "benefit.md").read_text() == before


def test_cli_flags_reach_the_run(tiny_model_dir, pt_files, tmp_path, capsys):
    from toedit.cli import main

    page = tmp_path / "R.md"
    args = [
        "experiment",
        "benefit",
        "--setting",
        "pretrain",
        "--model",
        str(tiny_model_dir),
        "--data",
        pt_files[0],
    ]
    args += [
        "--heldout",
        pt_files[1],
        "--arms",
        "H,E-word",
        "--rates",
        "0.04",
        "--seeds",
        "2,5",
        "--items",
        "12",
    ]
    args += ["--pt-tokens", "2048", "--pt-hidden", "32", "--pt-layers", "1", "--pt-vocab", "300"]
    args += ["--pt-seq-len", "32", "--pt-batch", "4", "-o", str(tmp_path / "out"), "--results", str(page)]
    assert main(args) == 0
    res = json.loads((tmp_path / "out" / "benefit.json").read_text())
    pre = res["settings"]["pretrain"]
    assert [a["arm"] for a in pre["arms"]] == ["H", "E-word@4%"] and pre["seeds"] == [2, 5]
    assert pre["items"] == 12 and {r["train_tokens"] for r in pre["runs"]} == {2048}
    assert "### Pre-training from scratch (2 seeds)" in page.read_text()


def test_quick_preset_and_explicit_flags():
    from toedit.cli import parse

    _, quick = parse(["experiment", "benefit", "--quick"])
    assert quick.config.pt_docs == bf.BENEFIT_QUICK["pt_docs"]
    assert quick.config.cpt_tokens == bf.BENEFIT_QUICK["cpt_tokens"]
    _, given = parse(["experiment", "benefit", "--quick", "--cpt-tokens", "4096"])
    assert given.config.cpt_tokens == 4096
    _, full = parse(["experiment", "benefit"])
    assert full.config == bf.BenefitConfig()
