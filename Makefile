# jif_fastai — the two commands a user needs are `make demo` and `make test` (see README).
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test check-export nbtest chapters book pytest clean-book results results-decisions results-trainable results-trainable-progress

# Create/reuse the virtual environment; reinstall when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(STAMP)

# Train + cross-validate JIF-MMFA on the embedded PAD-UFES-20-layout sample (CPU, a few minutes).
demo: venv
	$(BIN)/jif-fastai train --out runs/demo

# Everything CI runs: export drift, every notebook (outputs kept for the book), the book, pytest.
test: venv check-export nbtest book pytest

# Notebooks are the source of truth: exporting them must not change jif_fastai/, and they must be clean.
check-export: venv
	PATH=$(BIN):$$PATH bash tools/check_export.sh

# Run every notebook once (nbdev-test) in book/nbs; the executed copies are what the book shows.
nbtest: venv
	rm -rf book/nbs && mkdir -p book/nbs && cp nbs/*.ipynb book/nbs/
	cp -r nbs/images book/nbs/ 2>/dev/null || true
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test book/nbs --save --timing --n-workers 2
	$(MAKE) chapters

# Publish the executed notebooks at the URLs nbdev links to (nbs/06_fusion.ipynb -> book/fusion.ipynb -> fusion.html,
# plus fusion.html.md): see tools/place_chapters.py. Runs on already-executed notebooks; no execution.
chapters: venv
	$(PY) tools/place_chapters.py book/nbs book

# Build the tutorial site (Jupyter Book 1.x / Sphinx, offline). Fails on any Sphinx warning.
book: venv
	test -d book/nbs || $(MAKE) nbtest
	test -d book/_markdown || $(MAKE) chapters
	$(BIN)/jupyter-book build book --warningiserror --nitpick --keep-going

pytest: venv
	$(BIN)/pytest -q tests

clean-book:
	rm -rf book/_build book/nbs book/_markdown book/images book/*.ipynb

# The book's results (docs: nbs/17_results.ipynb): the HAM10000 ablation grid + PAD-UFES-20 metadata-only, about an
# hour on a 2-core CPU. Writes results/ (committed) and runs/results/ (models, predictions; not committed).
HAM   ?= ../shared/data/ham10000
PAD   ?= ../shared/data/pad-ufes-20
LITE0 ?= ../shared/weights/tf_efficientnet_lite0_timm.safetensors
results: venv
	$(PY) -m jif_fastai.results --root $(HAM) --weights-file $(LITE0) --pad-root $(PAD) --out results --runs runs/results --cache-dir $(CACHE)

# Beyond the paper (docs: nbs/17_results.ipynb): fixed vs searched vs adaptive decisions vs train-time metadata dropout,
# and calibration, on HAM10000 at the results' settings. The feature cache in $(CACHE) makes a rerun cheap.
CACHE ?= ../cache-ham
results-decisions: venv
	$(PY) -m jif_fastai.results --decisions --root $(HAM) --weights-file $(LITE0) --out results --runs runs/results --cache-dir $(CACHE)

# Issue 20 (docs: nbs/17_results.ipynb): the HAM10000 grid with the backbone's last stage trainable, then more seeds of
# JIF-MMFA and its two closest rivals. About 34 hours on a 2-core CPU (31 min a fold, bench/RESULTS.md); resumes fold by fold.
# Its run folders are committed without the models (results/runs/, see .gitignore), so a fresh clone resumes too.
# Memory: with glibc's allocator the process grew over the epochs (4.9 -> 22 GB RSS in 1.3 folds with MALLOC_ARENA_MAX=2;
# 17.4 GB with the defaults, an earlier session) and would not fit 24 GB; jemalloc without decay held 4.0 GB flat at the
# same 90 s/epoch (with its default decay: 29 % system time, 150 s/epoch). Used when installed (apt-get install libjemalloc2).
comma    := ,
JEMALLOC ?= $(firstword $(wildcard /usr/lib/*-linux-gnu/libjemalloc.so.2))
ALLOC    := $(if $(JEMALLOC),LD_PRELOAD=$(JEMALLOC) MALLOC_CONF=background_thread:true$(comma)metadata_thp:auto$(comma)dirty_decay_ms:-1$(comma)muzzy_decay_ms:-1)
results-trainable: venv
	$(ALLOC) $(PY) -m jif_fastai.results --trainable --root $(HAM) --weights-file $(LITE0) --out results --cache-dir $(CACHE)

# The trainable protocol's folds finished so far, against the frozen grid on the same folds (no training).
results-trainable-progress: venv
	$(PY) -m jif_fastai.results --progress --out results
