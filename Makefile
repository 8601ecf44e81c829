# Set-up and entry points. `make study` runs the study, `make test` runs the tests; both create or reuse the
# project venv (.venv) from the pinned requirements.lock first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
CONFIG ?= config.yaml
export OMP_NUM_THREADS ?= 1

.PHONY: venv study report reproduce publish readme test test-fast bench schema clean-venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

# A missing, unreadable, binary or invalid-YAML CONFIG is one line here (Snakemake's own reading of --configfile ends
# in a traceback); the values themselves are checked by the workflow, with one line naming the key.
CHECK_CONFIG = $(PY) -m mec.config "$(CONFIG)"

# Snakemake runs under mec.workflow_runner: its output as it comes, and Ctrl-C (or SIGTERM) ends in one line, "stopped
# by SIGINT: the workflow stopped; rerun the same command to go on ...", exit 130 (143), the jobs stopped with their
# state kept. make then stops on that signal itself, without a line of its own (a recipe that fails adds make's
# "*** [Makefile:NN: study] Error 130"); any other exit status of Snakemake is the recipe's.
SNAKEMAKE = $(PY) -m mec.workflow_runner
STOPPED_QUIETLY = || { status=$$?; case $$status in 130) kill -INT $$PPID;; 143) kill -TERM $$PPID;; \
                  *) exit $$status;; esac; }

# The study: every stale stage of the Snakemake workflow for $(CONFIG) (merged over config.yaml); TARGETS: other
# targets instead of the default one (e.g. TARGETS="ablations compare_backends pareto tune" with config/reduced.yaml).
TARGETS ?=
study: venv
	@$(CHECK_CONFIG)
	@$(SNAKEMAKE) $(TARGETS) --workflow-profile profiles/default --configfile $(CONFIG) $(STOPPED_QUIETLY)

# The HTML report of every figure, with captions: report.html in the config's own workflow.results_dir, beside the
# outputs it shows (config.yaml: results/; .test/config.yaml: results-test/). mec.config fills the keys CONFIG leaves
# out with config.yaml's values (a test checks that config.yaml holds exactly the defaults).
RESULTS_DIR = $(PY) -c 'import sys; from mec.config import load_config; print(load_config(sys.argv[1]).workflow.results_dir)'
report: venv
	@$(CHECK_CONFIG)
	@results=$$($(RESULTS_DIR) "$(CONFIG)") && \
	$(SNAKEMAKE) --workflow-profile profiles/default --configfile $(CONFIG) --report "$$results/report.html" \
	$(STOPPED_QUIETLY)

# A rerun of part of the study (config/reproduce.yaml: phase 1 N = 3, seeds 0-2; a few minutes at --cores 2) against
# the committed per-seed rows, value for value (mec reproduce): exit 1 if any differs. RERUN: the rerun's table, under
# the results_dir of REPRODUCE_CONFIG.
REPRODUCE_CONFIG ?= config/reproduce.yaml
COMMITTED ?= docs/summary/learned_seeds.parquet
RERUN ?= results/reproduce/summary/learned_seeds.parquet
reproduce: venv
	@$(PY) -m mec.config "$(REPRODUCE_CONFIG)"
	@$(SNAKEMAKE) --workflow-profile profiles/default --configfile config.yaml $(REPRODUCE_CONFIG) $(STOPPED_QUIETLY)
	$(PY) -m mec reproduce --committed $(COMMITTED) --rerun $(RERUN)

# A finished part of the study (e.g. CONFIG=config/parts/phase1.yaml) merged into the committed tables under
# docs/summary/ by phase, its figures into docs/results/, the part recorded in docs/summary/parts.json (mec publish;
# PART: its name, default the config file's; SCENARIOS_ONLY=1: a part run with TARGETS=scenarios). Then `make
# readme` rebuilds docs/results.md's generated section and the README's headline from docs/summary/ alone.
PART ?=
publish: venv
	@$(CHECK_CONFIG)
	$(PY) -m mec publish --config "$(CONFIG)" $(if $(PART),--part "$(PART)") $(if $(SCENARIOS_ONLY),--scenarios-only)

readme: venv
	$(PY) -m mec readme

# Every test, what CI runs (about 24 minutes on 2 cores).
test: venv
	$(PY) -m pytest -q --durations=20

# The tests that take seconds, touching every module (a one-iteration training on tiny sizes included): under 3
# minutes on 2 cores. The tests marked slow (training runs, the workflow, kills and resumes, SLURM; tests/conftest.py
# names them) run only in `make test`.
test-fast: venv
	$(PY) -m pytest -q -m "not slow" --durations=10

bench: venv
	$(PY) benchmarks/bench_simulator.py

# config/schema.yaml, generated from the fields of mec/config.py (where every config key is declared once); run it
# after adding or changing a key (a test checks that the committed file is current).
schema: venv
	$(PY) -m mec.config --write-schema config/schema.yaml

clean-venv:
	rm -rf $(VENV)
