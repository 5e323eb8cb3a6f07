"""The mixing and collapse runners and the results page, on a tiny budget (the in-test model and corpus)."""

from __future__ import annotations

import json

import pytest

from toedit.cli import main
from toedit.config import ConfigError
from toedit.experiments.collapse import CollapseConfig, run_collapse
from toedit.experiments.human import seed_summary, split_heldout
from toedit.experiments.mix import MixConfig, mixed_rows, run_mix
from toedit.experiments.results import run_all

TINY_LM = dict(seq_len=48, batch_size=4, hidden=32, layers=1, vocab=300)
MIX = dict(
    shares="0,50,100",
    seeds="0,1,2",
    heldout_share=0.2,
    human_segments=8,
    heldout_segments=4,
    segment_tokens=24,
    prompt_tokens=6,
    gen_batch_size=8,
    tokens=768,
    **TINY_LM,
)
COLLAPSE = dict(
    rounds=2,
    seeds="0,1",
    heldout_share=0.2,
    human_segments=8,
    heldout_segments=4,
    segment_tokens=32,
    prompt_tokens=6,
    own_docs=4,
    change_rate=0.1,
    tokens=768,
    **TINY_LM,
)


def test_mix_runner(tmp_path, human_jsonl, tiny_model_dir):
    config = MixConfig(model=str(tiny_model_dir), **MIX)
    res = run_mix([str(human_jsonl)], tmp_path, config, progress=False)
    assert [p["share"] for p in res["per_share"]] == [0, 50, 100]
    assert len(res["runs"]) == 9 and all(r["heldout_ppl"] > 1 for r in res["runs"])
    for p in res["per_share"]:
        assert p["heldout_ppl"]["n"] == 3 and p["heldout_ppl"]["ci95"] > 0
    assert res["corpus"]["synthetic_documents"] == res["corpus"]["human_segments"] == 8
    # the text each run saw, and the paired differences against 0 % (3 seeds each)
    for r in res["runs"]:
        assert (r["synthetic_chars_seen"] == 0) == (r["share"] == 0)
        assert (r["human_chars_seen"] == 0) == (r["share"] == 100)
    assert set(res["paired"]) == {"50", "100"} and res["paired"]["100"]["heldout_ppl"]["n"] == 3
    assert res["corpus"]["unigram_heldout_ppl"] > 1 and "both pools" in res["corpus"]["tokenizer"]
    on_disk = json.loads((tmp_path / "mix.json").read_text())
    assert on_disk["per_share"] == res["per_share"]
    assert (tmp_path / "mix.png").stat().st_size > 1000
    assert "| synthetic % |" in (tmp_path / "mix.md").read_text()
    syn = [json.loads(line) for line in (tmp_path / "synthetic.jsonl").read_text().splitlines()]
    assert len(syn) == 8 and all(r["prompt"] and not r["text"].startswith(r["prompt"]) for r in syn)
    # reuse the generated corpus: same pools, same numbers
    again = run_mix(
        [str(human_jsonl)],
        tmp_path / "again",
        MixConfig(**{**config.__dict__, "synthetic": str(tmp_path / "synthetic.jsonl")}),
        progress=False,
    )

    def strip(runs):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in runs]

    assert strip(again["runs"]) == strip(res["runs"])


def test_mixed_rows_share_and_determinism():
    import torch

    human = torch.zeros((10, 4), dtype=torch.long)
    synth = torch.ones((3, 4), dtype=torch.long)
    rows = mixed_rows(human, synth, 0.25, 8, seed=0)
    assert rows.shape == (8, 4) and int(rows[:, 0].sum()) == 2
    assert torch.equal(rows, mixed_rows(human, synth, 0.25, 8, seed=0))
    assert int(mixed_rows(human, synth, 1.0, 7, seed=0)[:, 0].sum()) == 7  # the synthetic pool cycles


def test_collapse_runner(tmp_path, human_jsonl):
    res = run_collapse([str(human_jsonl)], tmp_path, CollapseConfig(**COLLAPSE), progress=False)
    s = res["summary"]
    assert set(s) == {"human", "replace", "accumulate", "toedit", "toedit_fixed"}
    for rows in s.values():
        assert [r["round"] for r in rows] == [0, 1, 2]
        for key in ("heldout_ppl", "own_ppl", "tail_share", "ngram_entropy"):
            assert rows[-1][key]["n"] == 2
    assert s["replace"][0] == s["toedit"][0]  # round 0 is shared
    runs = res["runs"]["0"]
    assert runs["accumulate"][2]["train_docs"] == 3 * runs["accumulate"][0]["train_docs"]
    assert all(0 < r["change_rate"] < 0.5 for r in runs["toedit"][1:])
    # the paper-faithful arm: one threshold (calibrated once per seed's round-0 prior) for every round
    for chains in res["runs"].values():
        thresholds = {r["threshold"] for r in chains["toedit_fixed"][1:]}
        assert len(thresholds) == 1 and 0 < thresholds.pop() < 1
    # the human control trains on the human segments every round
    assert all(r["train_docs"] == runs["human"][0]["train_docs"] for r in runs["human"])
    assert "toedit_fixed - human" in res["table"] and "against the human control" in res["statement"]
    assert (tmp_path / "collapse.png").stat().st_size > 1000
    assert "really changed" in (tmp_path / "collapse.md").read_text()
    assert json.loads((tmp_path / "collapse.json").read_text())["summary"] == json.loads(json.dumps(s))


@pytest.mark.slow
def test_run_all_writes_results_page(tmp_path, human_jsonl, tiny_model_dir):
    page = tmp_path / "docs" / "RESULTS.md"
    out = run_all(
        [str(human_jsonl)],
        tmp_path / "runs",
        quick=True,
        results=page,
        command="toedit experiment all --quick",
        progress=False,
        overrides={
            "mix": {**MIX, "seeds": "0,1", "model": str(tiny_model_dir)},
            "collapse": {**COLLAPSE, "rounds": 1},
            "theory": {"trials": 100, "generations": 4},
            "editrounds": {"docs": 3, "rounds": 2, "model": str(tiny_model_dir)},
        },
    )
    text = page.read_text()
    assert "## 4. Editing rounds on a real corpus: the paper's Table 15" in text
    assert out["editrounds"]["table"] in text and "12.50 %" in text
    er = out["editrounds"]["runs"]
    assert len(er["paper"]["rounds"]) == 2 and er["paper"]["threshold"] == 0.99
    assert all(len(d) == 2 for d in er["calibrated"]["per_doc_above_pct"])
    assert "`toedit experiment all --quick`" in text and "## Findings" in text
    assert out["mix_once"]["table"] in text and "Control: 1 pass(es)" in text
    assert all(r["human_epochs"] <= 1 and r["synthetic_epochs"] <= 1 for r in out["mix_once"]["runs"])
    for name in ("exp_theory.png", "exp_mix.png", "exp_mix_once.png", "exp_collapse.png"):
        assert f"]({name})" in text and (page.parent / name).exists()
    assert out["mix"]["table"] in text and out["collapse"]["table"] in text and out["theory"]["table"] in text
    assert "quick setting" in text and "reused from" not in text
    # every section declares its family and primary endpoint; the theory section carries Theorem 2's scope
    assert text.count("Primary endpoint:") >= 4 and "### Theorem 2's scope" in text
    assert "(verdicts.md)" in text
    # a rerun reuses the mixing and collapse results of the same configuration and rewrites the page; margins
    # only set verdicts, so results stored without them (or with other margins) are reused and re-judged
    stored = tmp_path / "runs" / "mix" / "mix.json"
    old = json.loads(stored.read_text())
    for key in ("ppl_margin", "loss_margin"):
        del old["config"][key]
    stored.write_text(json.dumps(old))
    again = run_all(
        [str(human_jsonl)],
        tmp_path / "runs",
        quick=True,
        results=page,
        progress=False,
        overrides={
            "mix": {**MIX, "seeds": "0,1", "model": str(tiny_model_dir), "ppl_margin": 0.37},
            "collapse": {**COLLAPSE, "rounds": 1, "ppl_margin": 0.29},
            "theory": {"trials": 100, "generations": 4},
            "editrounds": {"docs": 3, "rounds": 2, "model": str(tiny_model_dir), "margin": 0.41},
        },
    )
    assert again["info"]["resumed"] == ["mix", "mix control", "collapse", "edit rounds"]
    rerendered = page.read_text()
    assert "37 % of the 0 % runs' mean PPL" in rerendered and "29 % of the human control's" in rerendered
    assert "±0.41 (points" in rerendered
    assert again["mix"]["runs"] == out["mix"]["runs"] and again["collapse"]["runs"] == json.loads(
        json.dumps(out["collapse"]["runs"])
    )
    assert "reused from" in page.read_text()


def test_config_errors(tmp_path, human_jsonl, capsys):
    with pytest.raises(ConfigError):
        MixConfig(shares="0,150").validate()
    with pytest.raises(ConfigError):
        CollapseConfig(settings="replace,bogus").validate()
    assert (
        main(["experiment", "mix", "--human", str(human_jsonl), "--shares", "a,b", "-o", str(tmp_path)]) == 2
    )
    assert main(["experiment", "all", "--human", str(tmp_path / "missing"), "-o", str(tmp_path)]) == 4
    assert "toedit corpus austen" in capsys.readouterr().err


def test_split_and_seed_summary():
    docs = [(f"d{i}", "x") for i in range(20)]
    train, held = split_heldout(docs, 0.25)
    assert len(held) == 5 and not {d for d, _ in train} & {d for d, _ in held}
    assert split_heldout(list(reversed(docs)), 0.25)[1] == list(reversed(held))  # by id, not by order
    s = seed_summary([1.0, 2.0, 3.0])
    assert (
        s["mean"] == 2.0
        and s["se"] == pytest.approx(1 / 3**0.5)
        and s["ci95"] == pytest.approx(4.303 / 3**0.5, rel=1e-3)
    )
