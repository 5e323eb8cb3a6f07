"""experiment benefit's design checks: one text format per setting, overlap removal, declared families, the
'moved' rule, the device and precision options, and the quick preset as a config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toedit.config import ConfigError
from toedit.experiments import benefit as bf
from toedit.experiments.benefit.stats import NOT_INFORMATIVE, apply_family, moved, seed_delta, summarize

WRAPPED = (
    "It is a truth universally acknowledged, that a single man in\npossession of a good fortune, must be in "
    "want of a wife.  However little\nknown the feelings or views of such a man may be on his first entering "
    "a\nneighbourhood, this truth is so well fixed in the minds of the surrounding\nfamilies.\n\n"
    "My dear Mr. Bennet, said his lady to him one day, have you heard that\nNetherfield Park is let at last?  "
    "Mr. Bennet replied that he had not."
)
PLAIN = (
    "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own amusement, never took "
    "up any book but the Baronetage. There he found occupation for an idle hour, and consolation in a "
    "distressed one.\n\nThis was the page at which the favourite volume always opened. Precisely such had the "
    "paragraph originally stood from the printer's hands."
)


def _files(tmp_path: Path, train: list[str], held: list[str]) -> tuple[str, str]:
    paths = []
    for name, texts in (("train", train), ("held", held)):
        p = tmp_path / f"{name}.jsonl"
        p.write_text("".join(json.dumps({"id": f"{name}{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
        paths.append(str(p))
    return paths[0], paths[1]


def test_training_and_heldout_share_one_format_before_editing(tmp_path):
    """Hard-wrapped, double-spaced training text and plain held-out text: after the setting's normalisation
    both have no line wraps inside paragraphs and no double spaces, and similar newlines per word."""
    train, held = _files(tmp_path, [WRAPPED] * 3, [PLAIN] * 2)
    cfg = bf.BenefitConfig(setting="pretrain", data=train, heldout=held)
    data = bf.load_setting_data("pretrain", cfg)
    tr, he = data.format["train"], data.format["heldout"]
    assert tr["wraps_per_word"] == he["wraps_per_word"] == 0
    assert tr["double_spaces_per_100_words"] == he["double_spaces_per_100_words"] == 0
    assert abs(tr["newlines_per_word"] - he["newlines_per_word"]) < 0.01
    # the flag reaches the code: as read, the training text keeps its wraps and double spaces
    raw = bf.load_setting_data(
        "pretrain", bf.BenefitConfig(setting="pretrain", data=train, heldout=held, normalise=False)
    )
    assert (
        raw.format["train"]["wraps_per_word"] > 0.05
        and raw.format["train"]["double_spaces_per_100_words"] > 1
    )
    assert bf.normalise_text(WRAPPED) == bf.normalise_text(bf.normalise_text(WRAPPED))  # idempotent


def test_heldout_sentences_found_in_training_are_removed_and_counted(tmp_path):
    shared = "Then he replied that he had not heard of it."
    train, held = _files(tmp_path, [WRAPPED, "They spoke of it at dinner. " + shared], [PLAIN + " " + shared])
    data = bf.load_setting_data("pretrain", bf.BenefitConfig(setting="pretrain", data=train, heldout=held))
    assert data.overlap["verbatim"] == data.overlap["removed"] == 1 and shared not in data.held[0]
    assert "Sir Walter Elliot" in data.held[0]
    kept = bf.load_setting_data(
        "pretrain", bf.BenefitConfig(setting="pretrain", data=train, heldout=held, overlap_words=0)
    )
    assert kept.overlap["verbatim"] == 1 and kept.overlap["removed"] == 0 and shared in kept.held[0]


def _per_arm():
    h = [100.0, 120.0, 90.0, 110.0]
    rows = [{"arm": "H", "ppl": {"mean": 105.0}}]
    for arm, shift in (("E", -10.0), ("R@2%", 0.0)):
        rows.append(
            {
                "arm": arm,
                "d_ppl": seed_delta([x + shift for x in h], h),
                "d_acc": seed_delta([0.5, 0.52, 0.49, 0.51], [0.5, 0.5, 0.5, 0.5]),
            }
        )
    return rows


def test_declared_family_and_primary_reach_the_verdicts():
    rows = _per_arm()
    note = apply_family(rows, 0.02, 0.0025, primary="E - H, ppl", members=["E - H, ppl", "E - H, acc"])
    e, r = rows[1], rows[2]
    assert "Primary endpoint: E - H, ppl" in note and "family of 2" in e["d_ppl"]["rule"]
    assert not e["d_ppl"]["exploratory"] and r["d_ppl"]["exploratory"]
    assert r["d_ppl"]["rule"].startswith("exploratory, not adjusted")
    cfg = bf.BenefitConfig(cpt_family="E:ppl,E:acc", cpt_primary="E:ppl")
    assert cfg.family("cpt") == ["E - H, ppl", "E - H, acc"] and cfg.primary("cpt") == "E - H, ppl"
    assert cfg.family("pretrain") is None  # "all"
    kinds = bf.BenefitConfig(rates="0.02,0.05", sft_family="E:acc,R:acc")  # a kind stands for every rate
    assert kinds.family("sft") == ["E - H, acc", "R@2% - H, acc", "R@5% - H, acc"]
    with pytest.raises(ConfigError, match="not run"):
        bf.BenefitConfig(setting="cpt", cpt_family="X:acc").validate()
    with pytest.raises(ConfigError, match="must be in the family"):
        bf.BenefitConfig(setting="cpt", cpt_family="E:acc", cpt_primary="E:ppl").validate()
    with pytest.raises(ConfigError, match="ARM:METRIC"):
        bf.BenefitConfig(pt_primary="E").primary("pretrain")


def test_moved_rule_gates_the_verdicts():
    before = {"ppl": 40.0, "acc": 0.5}
    assert moved(35.0, [0.5, 0.52], before, 0.10)["ok"]  # 12.5 % lower, one seed moved
    assert not moved(37.0, [0.5, 0.52], before, 0.10)["ok"]  # 7.5 % lower only
    assert not moved(30.0, [0.5, 0.5], before, 0.10)["ok"]  # no seed's accuracy moved
    runs = [
        {
            "arm": a,
            "seed": s,
            "ppl": 39.0 - (a == "E"),
            "acc": 0.5,
            "correct": [1, 0],
            "train_tokens": 8,
            "corpus_tokens": 8,
        }
        for a in ("H", "E")
        for s in (0, 1, 2)
    ]
    realised = {
        a: [
            {
                "selected_rate": 0,
                "changed_rate": 0,
                "counts": {f"n_changed_{k}": 0 for k in ("word", "fragment", "space", "punct")},
            }
        ]
        * 3
        for a in ("H", "E")
    }
    cfg = bf.BenefitConfig(arms="H,E", bootstrap=10)
    res = summarize("cpt", runs, cfg, realised, before)
    e = res["arms"][1]
    assert res["moved"]["word"] == NOT_INFORMATIVE and e["d_ppl"]["verdict"] == NOT_INFORMATIVE
    assert e["d_ppl"]["verdict_if_moved"] != NOT_INFORMATIVE
    loose = summarize(
        "cpt",
        runs,
        bf.BenefitConfig(arms="H,E", bootstrap=10, moved_ppl=0.0),
        realised,
        {"ppl": 40.0, "acc": 0.4},
    )
    assert loose["moved"]["ok"] and loose["arms"][1]["d_ppl"]["verdict"] != NOT_INFORMATIVE


def test_device_and_precision_reach_the_code(monkeypatch, tmp_path, tiny_prior):
    import toedit.prior
    from toedit.experiments.benefit import run as brun
    from toedit.experiments.benefit.settings import Context, Cpt

    seen = {}

    def fake_load(spec, device=None, **kw):
        seen["device"] = device
        raise RuntimeError("stop")

    monkeypatch.setattr(toedit.prior, "load_prior", fake_load)
    with pytest.raises(RuntimeError, match="stop"):
        brun.run_benefit(tmp_path, bf.BenefitConfig(setting="pretrain", device="cpu", seeds="0,1"))
    assert seen["device"] == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        brun.run_benefit(tmp_path, bf.BenefitConfig(setting="pretrain", device="cuda", seeds="0,1"))
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU-only check of the precision flag")
    for precision, bf16 in (("bfloat16", True), ("float32", False)):
        cfg = bf.BenefitConfig(setting="cpt", ft_layers=1, ft_precision=precision)
        ctx = Context(cfg, tiny_prior, None, torch.device("cpu"))
        impl = Cpt()
        impl._top(ctx)
        assert impl.top.bf16 is bf16


def test_quick_preset_is_a_config_file(tmp_path):
    from toedit.cli import parse
    from toedit.experiments.benefit.config import PRESETS

    _, quick = parse(["experiment", "benefit", "--quick"])
    _, from_file = parse(["experiment", "benefit", "--config", str(PRESETS / "benefit_quick.toml")])
    assert quick.config == from_file.config != bf.BenefitConfig()
    assert quick.config.cpt_tokens // quick.config.cpt_seq_len // quick.config.ft_batch >= 200  # cpt steps
    assert quick.config.sft_pairs // quick.config.ft_batch >= 200  # sft steps
    assert len(quick.config.seed_list("pretrain")) >= 10


def test_the_cpt_corpus_shares_one_format_and_loses_its_verbatim_overlap():
    """The real cpt corpus (the Python docs, `pydoc_data.topics`): indented, hard-wrapped text as read; after
    normalisation training and held-out topics agree, and held-out sentences found in training are gone."""
    cfg = bf.BenefitConfig(**bf.BENEFIT_QUICK).for_setting("cpt")
    data = bf.load_setting_data("cpt", cfg)
    tr, he = data.format["train"], data.format["heldout"]
    assert tr["wraps_per_word"] == he["wraps_per_word"] == 0
    assert tr["double_spaces_per_100_words"] == he["double_spaces_per_100_words"] == 0
    assert abs(tr["newlines_per_word"] - he["newlines_per_word"]) < 0.02
    assert data.overlap["removed"] == data.overlap["verbatim"] > 0
    from toedit.experiments.benefit.data import sentences

    seen = {s for t in data.texts for s in sentences(t)}
    left = [s for t in data.held for s in sentences(t) if len(s.split()) >= cfg.overlap_words and s in seen]
    assert not left
