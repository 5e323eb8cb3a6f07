"""Start-up guards: what `import toedit.cli` and a core verb's parser import (in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import toedit

SRC = Path(__file__).resolve().parents[1] / "src"
# none of these is needed to parse a command line; `toedit edit` imports torch, transformers and pyarrow when
# it runs, the others never on JSONL input
HEAVY = ("torch", "transformers", "pyarrow", "numpy", "pandas", "scipy", "sklearn", "matplotlib", "datasets")


def _modules_after(code: str) -> set[str]:
    """The modules imported by `code` in a fresh interpreter, with their top-level packages."""
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    probe = "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code + probe], env=env, capture_output=True, text=True, check=True
    )
    names = set(json.loads(out.stdout.splitlines()[-1]))
    return names | {name.split(".")[0] for name in names}


def test_cli_import_is_light():
    loaded = _modules_after("import toedit, toedit.cli")
    assert not loaded & set(HEAVY)


def test_core_verb_parser_skips_capabilities():
    code = (
        "from toedit import cli\n"
        "args = cli.build_parser(cli._verbs_for(['edit', 'a.jsonl', '-o', 'out'])).parse_args(['edit', 'a.jsonl', '-o', 'out'])\n"
        "assert args._verb.name == 'edit'"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY)
    assert "toedit.experiments" not in loaded and "toedit.analysis" not in loaded


def test_verbs_for():
    from toedit import cli

    assert [v.name for v in cli._verbs_for(["-v", "edit", "x"])] == ["edit"]
    assert cli._verbs_for(["experiment", "mix"]) is None
    assert cli._verbs_for(["--help"]) is None
    assert cli._verbs_for([]) is None


def test_lazy_public_names():
    assert sorted(toedit.__all__) == sorted(toedit._WHERE)
    for name in toedit.__all__:
        assert getattr(toedit, name).__name__ == name
    assert set(toedit.__all__) <= set(dir(toedit))
