# Two commands on a fresh machine: `make run` (the default experiment) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= 2
SNAKEMAKE := PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --workflow-profile workflow/profiles/local

.PHONY: setup run test bench
setup: $(VENV)/.installed

# torch first, pinned: the machine's cached CPU wheel; a looser pin would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(SNAKEMAKE)

test: setup
	PATH="$(BIN):$$PATH" python -m pytest -v

# The default experiment from scratch under a fresh name, wall time, then per-rule times.
bench: setup
	@exp=bench-$$(date +%Y%m%d-%H%M%S); start=$$(date +%s); \
	$(SNAKEMAKE) --config experiment=$$exp --quiet rules && \
	echo "wall: $$(( $$(date +%s) - start )) s for results/$$exp" && \
	PATH="$(BIN):$$PATH" python -m cofi bench-report results/$$exp/benchmarks
