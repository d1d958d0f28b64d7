# The book's two commands: `make book` (set up, execute every chapter, render) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
LINTED := backward_lib companion tests notebooks benchmarks conftest.py

.PHONY: book test venv data browser-deps lint imports unit verify notebooks robust check html browser clean

venv: $(READY)

# The venv is rebuilt when the pinned requirements change.
$(READY): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Fashion-MNIST from Debian's package when the files are absent (root only; otherwise the
# loader explains where it looked and how to provide them).
data:
	@bash scripts/get-data.sh

# Debian's chromium and chromedriver for the browser test (installed when root and absent).
browser-deps:
	@bash scripts/get-browser.sh

# Chapters execute (the pipeline), and are checked (conftest.py: unit tests and nbval), under
# the book's pinned numerics, companion/numerics.py: AVX2 kernels in torch, MKL and oneDNN and
# two threads, so that machines of one kind give the same bits (across kinds the last bits
# still differ: MKL's AVX2 branch is Intel-only and oneDNN has no reproducible mode; see
# benchmarks/numerics.py and companion/verify.py). BOOK_NUMERICS=reference runs the generic
# kernels instead (see `robust`).
book: venv data
	$(PY) -m companion run --profile book
	$(PY) -m companion build

lint: venv imports
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

# Import-layer contracts (pyproject.toml, [tool.importlinter]).
imports: venv
	$(VENV)/bin/lint-imports --no-cache

unit: venv data
	$(PY) -m pytest tests -q --ignore=tests/browser

# The results store (results/, committed): current, complete, and a seeded sample of its
# recorded steps recomputed from scratch (`python -m companion verify --all`: every step).
verify: venv data
	$(PY) -m companion verify

# Re-execute the published chapters and compare their claim cells (# NBVAL_CHECK_OUTPUT). The
# chapters load their experiments from a copy of the committed store (verified above), so this
# re-executes every chapter without retraining.
notebooks: venv data
	d=$$(mktemp -d) && cp -r results/. $$d/ && \
	BACKWARD_RESULTS=$$d MPLBACKEND=Agg $(PY) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env -q book

# Robustness of every verdict to round-off: re-execute the chapters on the generic kernels
# (torch's ATEN_CPU_CAPABILITY=default) with every experiment recomputed, compare each claim
# with the published one and record it in book/robustness.json (the Reproduce page shows it).
# Not part of `make test`: at the book's scale it retrains everything (hours), in a store of
# its own, results-reference/ (committed, so that a run killed in one session resumes in the
# next), on both cores through Ray. CHAPTERS="a5_adamw fig2_resnet18" checks only those.
robust: venv data
	$(PY) -m companion robust $(CHAPTERS) --executor ray

check: venv
	$(PY) -m companion check

html: venv
	$(PY) -m companion build

# The built site in headless Chromium with the network off: every toc page, its figures, math,
# outputs and links; full-page screenshots in _build/reports/browser/.
browser: html browser-deps
	$(PY) -m pytest -p no:cacheprovider tests/browser -q

test: lint unit verify notebooks check html browser

clean:
	rm -rf _build
