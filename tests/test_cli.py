"""The CLI: flags from the config schema, config files, exit codes, stdin/stdout, status and report."""

from __future__ import annotations

import io
import json
import sys

import pytest

from tests.conftest import corpus_texts
from toedit.cli import EXIT_CONFIG, EXIT_INPUT, EXIT_MODEL, EXIT_OK, EXIT_TOO_MANY_ERRORS, main


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t[:200]}) + "\n" for t in corpus_texts(5)), encoding="utf-8")
    return path


def base(tiny_model_dir) -> list[str]:
    return ["--model", str(tiny_model_dir), "--device", "cpu", "--no-progress"]


def test_edit_status_report(tmp_path, corpus, tiny_model_dir, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "edit",
                str(corpus),
                "-o",
                str(run),
                "--threshold",
                "0.2",
                "--record-spans",
                *base(tiny_model_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "documents      5" in out and "tokens/s" in out
    assert main(["status", str(run)]) == EXIT_OK
    assert "shards 1/1 done" in capsys.readouterr().out
    assert main(["status", str(run), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["shards_done"] == 1
    assert main(["report", str(run)]) == EXIT_OK
    assert (run / "report.md").exists()
    capsys.readouterr()
    assert (
        main(["diff", str(run), "--no-color", "--limit", "0", "--html", str(tmp_path / "d.html")]) == EXIT_OK
    )
    assert "{+" in capsys.readouterr().out and (tmp_path / "d.html").exists()
    assert main(["diff", str(run), "--doc", "no-such-id"]) == EXIT_INPUT


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_config_file_and_flags_win(tmp_path, corpus, tiny_model_dir, suffix, capsys):
    cfg = tmp_path / f"cfg{suffix}"
    if suffix == ".yaml":
        cfg.write_text("threshold: 0.5\nbeta: 2.0\nedit:\n  seed: 9\n")
    else:
        cfg.write_text("threshold = 0.5\nbeta = 2.0\n[edit]\nseed = 9\n")
    run = tmp_path / "run"
    code = main(
        [
            "edit",
            str(corpus),
            "-o",
            str(run),
            "--config",
            str(cfg),
            "--threshold",
            "0.3",
            *base(tiny_model_dir),
        ]
    )
    assert code == EXIT_OK
    edit = json.loads((run / "manifest.json").read_text())["settings"]["edit"]
    assert (edit["threshold"], edit["beta"], edit["seed"]) == (0.3, 2.0, 9)


def test_config_errors_exit_2(tmp_path, corpus, tiny_model_dir, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("threshhold: 0.5\n")
    assert main(["edit", str(corpus), "-o", str(tmp_path / "r"), "--config", str(bad)]) == EXIT_CONFIG
    assert "unknown option(s) ['threshhold']" in capsys.readouterr().err
    assert (
        main(["edit", str(corpus), "-o", str(tmp_path / "r"), "--threshold", "2", *base(tiny_model_dir)])
        == EXIT_CONFIG
    )
    with pytest.raises(SystemExit) as exc:
        main(["edit", str(corpus), "--strategy", "nope"])
    assert exc.value.code == 2


def test_model_and_input_errors(tmp_path, corpus, tiny_model_dir, capsys):
    assert (
        main(["edit", str(corpus), "-o", str(tmp_path / "r"), "--model", str(tmp_path / "none.gguf")])
        == EXIT_MODEL
    )
    assert "GGUF file not found" in capsys.readouterr().err
    missing = tmp_path / "missing.jsonl"
    assert main(["edit", str(missing), "-o", str(tmp_path / "r"), *base(tiny_model_dir)]) == EXIT_INPUT
    assert str(missing) in capsys.readouterr().err


def test_max_errors_exit_5(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n{"text": 1}\n')
    code = main(["edit", str(bad), "-o", str(tmp_path / "r"), "--max-errors", "1", *base(tiny_model_dir)])
    assert code == EXIT_TOO_MANY_ERRORS
    assert "line 3" in capsys.readouterr().err


def test_corpus_and_select_errors_exit_without_a_traceback(tmp_path, monkeypatch, capsys):
    """A newcomer's mistakes outside `edit`: an unknown corpus, no apt-get, more documents than the pool has."""
    with pytest.raises(SystemExit) as exc:
        main(["corpus", "dickens", "-o", str(tmp_path / "c")])
    assert exc.value.code == EXIT_CONFIG and "must be one of austen, pydoc" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get / dpkg-deb
    assert main(["corpus", "austen", "-o", str(tmp_path / "c")]) == EXIT_INPUT
    assert "apt-get/dpkg-deb not found" in capsys.readouterr().err
    target, raw, empty = tmp_path / "t.jsonl", tmp_path / "r.jsonl", tmp_path / "e.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus_texts(3)), encoding="utf-8")
    raw.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus_texts(2)), encoding="utf-8")
    empty.write_text("", encoding="utf-8")
    out = tmp_path / "s.jsonl"
    for args, message in (
        (["-n", "5"], "cannot select 5 documents: only 2 raw documents are eligible"),
        (["-n", "-1"], "n must be >= 0"),
    ):
        assert (
            main(["select", "--target", str(target), "--raw", str(raw), "-o", str(out), *args]) == EXIT_INPUT
        )
        assert message in capsys.readouterr().err
    assert (
        main(["select", "--target", str(empty), "--raw", str(raw), "-o", str(out), "-n", "1"]) == EXIT_INPUT
    )
    assert "the target corpus has no n-grams" in capsys.readouterr().err
    assert not out.exists()


def test_stdin_to_stdout(tmp_path, tiny_model_dir, monkeypatch, capsys):
    rows = [{"id": i, "text": t[:150]} for i, t in enumerate(corpus_texts(3))]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert main(["edit", "-", "-o", "-", "--threshold", "1.0", *base(tiny_model_dir)]) == EXIT_OK
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["text"] for r in out] == [r["text"] for r in rows]
    assert "documents      3" in captured.err


def test_dry_run_prints_the_plan(tmp_path, corpus, capsys):
    assert main(["edit", str(corpus), "-o", str(tmp_path / "r"), "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "plan: 1 shard(s)" in out and "in" in out
    assert "settings: all defaults" in out
    assert not (tmp_path / "r").exists()


def test_dry_run_prints_the_settings_from_the_config_file_and_flags(tmp_path, corpus, capsys):
    """A dry run shows what the run would use: the --config file's keys and the flags, where not default."""
    cfg = tmp_path / "edit.yaml"
    cfg.write_text("threshold: 0.9\ntop_k: 0\n", encoding="utf-8")
    argv = ["edit", str(corpus), "-o", str(tmp_path / "r"), "--config", str(cfg), "--seed", "7", "--dry-run"]
    assert main(argv) == EXIT_OK
    assert "settings: threshold=0.9 top_k=0 seed=7\n" in capsys.readouterr().out


def test_score_help_says_top_k_needs_save_topk(capsys):
    """scores/ hold top-k candidates only with --save-topk (docs/usage.md); the verb's help must not promise them."""
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "top-k too with --save-topk" in capsys.readouterr().out


def test_an_unknown_flag_names_the_verb_and_the_closest_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["edit", "in.jsonl", "-o", "r", "--treshold", "0.9"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("usage: toedit edit ")
    assert "toedit edit: error: unrecognized arguments: --treshold 0.9 (did you mean --threshold?)" in err
    with pytest.raises(SystemExit):  # nothing close: no guess (a shared "--" prefix is not closeness)
        main(["edit", "in.jsonl", "-o", "r", "--bogus"])
    assert capsys.readouterr().err.endswith("unrecognized arguments: --bogus\n")
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "all", "--no-such-flag"])
    err = capsys.readouterr().err
    assert (
        exc.value.code == 2
        and "toedit experiment all: error: unrecognized arguments: --no-such-flag\n" in err
    )


def test_every_verb_has_help(capsys):
    from toedit.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    for verb in ["", *sub.choices]:
        with pytest.raises(SystemExit) as exc:
            main([verb, "--help"] if verb else ["--help"])
        assert exc.value.code == 0, verb
        assert "usage: toedit" in capsys.readouterr().out


def test_seed_flag_reaches_the_edits_and_the_manifest(tmp_path, corpus, tiny_model_dir):
    """`--seed 7` and `--seed 8` give different edits and manifests that say 7 and 8 (it was once dropped)."""
    outs = {}
    for seed in (7, 8):
        run = tmp_path / f"s{seed}"
        argv = ["edit", str(corpus), "-o", str(run), "--threshold", "0.2", "--seed", str(seed)]
        assert main([*argv, *base(tiny_model_dir)]) == EXIT_OK
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["settings"]["edit"]["seed"] == seed and manifest["config"]["edit"]["seed"] == seed
        outs[seed] = (run / "data" / "in.jsonl").read_text()
    assert outs[7] != outs[8]


def test_seed_flag_reaches_score_free_verbs(tmp_path, corpus, tiny_model_dir, capsys):
    rows = {}
    for seed in (3, 4):
        argv = [
            "sweep",
            str(corpus),
            "--thresholds",
            "0.2",
            "--betas",
            "1",
            "--top-k",
            "8",
            "--seed",
            str(seed),
        ]
        assert main([*argv, "--sample-docs", "3", "--json", *base(tiny_model_dir)]) == EXIT_OK
        result = json.loads(capsys.readouterr().out)
        assert result["seed"] == seed
        rows[seed] = result["rows"][0]["n_changed"], result["sample_texts"]
    assert rows[3][1] == rows[4][1] == 3


INTERRUPT_IN_EXEC = """
import sys

from toedit import cli

def interrupted(*args):  # as a lazy import that builds a dataclass (exec of a string) when SIGTERM lands
    exec("raise KeyboardInterrupt")

cli.parse_options = interrupted
sys.exit(cli.main(["status", "no-such-run"]))
"""


def test_an_interrupt_inside_exec_still_exits_130(tmp_path):
    """CPython ends a `python -m` process by SIGINT when a KeyboardInterrupt passed through exec() of a
    string, even if it was then caught; `main` resets that so the documented exit code arrives."""
    import os
    import subprocess
    from pathlib import Path

    (tmp_path / "interrupt_probe.py").write_text(INTERRUPT_IN_EXEC)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "interrupt_probe"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr


def test_every_exit_error_names_a_real_exception_class():
    """cli.EXIT_ERRORS looks classes up by module and name (no torch import in toedit.cli): a class that moves
    must move here too, or its errors would exit with a traceback."""
    import importlib

    from toedit import cli

    for module, name, _code in cli.EXIT_ERRORS:
        found = getattr(importlib.import_module(module), name)
        assert isinstance(found, type) and issubclass(found, Exception), (module, name)
