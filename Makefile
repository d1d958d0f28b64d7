# The book's two commands: `make book` (set up, execute every chapter, render) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
LINTED := backward_lib tests notebooks benchmarks

.PHONY: book test venv data browser-deps lint unit notebooks check html browser clean

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

book: venv data
	$(PY) -m backward_lib.book run --profile book
	$(PY) -m backward_lib.book build

lint: venv
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

unit: venv data
	$(PY) -m pytest tests -q --ignore=tests/browser

# Re-execute the published chapters and compare their claim cells (# NBVAL_CHECK_OUTPUT).
notebooks: venv data
	MPLBACKEND=Agg $(PY) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env -q book

check: venv
	$(PY) -m backward_lib.book check

html: venv
	$(PY) -m backward_lib.book build

# The built site in headless Chromium with the network off: every toc page, its figures, math,
# outputs and links; full-page screenshots in _build/reports/browser/.
browser: html browser-deps
	$(PY) -m pytest -p no:cacheprovider tests/browser -q

test: lint unit notebooks check html browser

clean:
	rm -rf _build
