# Set-up and entry points. `make study` runs the study, `make test` runs the tests; both create or reuse the
# project venv (.venv) from the pinned requirements.lock first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
CONFIG ?= config.yaml
export OMP_NUM_THREADS ?= 1

.PHONY: venv study report test bench clean-venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

# The study: every stale stage of the Snakemake workflow for $(CONFIG) (merged over config.yaml).
# A missing or unreadable CONFIG is one line here (Snakemake's own reading of --configfile ends in a traceback).
study: venv
	@test -f "$(CONFIG)" && test -r "$(CONFIG)" || { echo "make study: CONFIG=$(CONFIG): no such readable file; allowed: a YAML config file (default config.yaml)" >&2; exit 2; }
	$(VENV)/bin/snakemake --workflow-profile profiles/default --configfile $(CONFIG)

# The HTML report of every figure, with captions.
report: venv
	$(VENV)/bin/snakemake --workflow-profile profiles/default --configfile $(CONFIG) --report results/report.html

test: venv
	$(PY) -m pytest -q --durations=20

bench: venv
	$(PY) benchmarks/bench_simulator.py

clean-venv:
	rm -rf $(VENV)
