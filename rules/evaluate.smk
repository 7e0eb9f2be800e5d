# Score models on Spec (speciality) and Vers (know, reason, instruct), on the test or val split.
# A configured run is scored at every seed in one job (one start-up, each model loaded once); a single model
# (a search candidate, on the split its search selects on) in a job of its own.


MAX_ITEMS = "" if EXP.evaluation["max_items"] is None else f"--max-items {int(EXP.evaluation['max_items'])}"
# One command line for every evaluation rule: each score file's model, suites, labels and outputs are in
# params.scorings; every config value reaches the shell quoted.
EVALUATE_CMD = (
    "python -m cofi evaluate {params.scorings:q} --prompt {params.prompt:q} --generation {params.generation:q} "
    "--batch-size {params.batch_size} {params.max_items} --threads {threads} {params.model_args} > {log:q} 2>&1"
)


rule evaluate_base:
    input:
        model=EXP.base_model_dir,
        data=evaluation_files(TASKS, "test"),
    output:
        scores=LAYOUT.base_scores,
        predictions=LAYOUT.base_scores.replace(".json", ".predictions.json"),
    params:
        scorings=lambda w, input, output: scoring_flags(input.model, EXP.evaluation_suites(TASKS, "test"),
                                                        {"method": "base", "seed": None}, output.scores, output.predictions),
        prompt=prompt_json,
        generation=lambda w: GENERATION_JSON,
        batch_size=EXP.evaluation["batch_size"],
        max_items=MAX_ITEMS,
        model_args=MODEL_ARGS,
    log:
        log_file("evaluate_base", "base"),
    benchmark:
        benchmark_file("evaluate_base", "base")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads["evaluate"]
    resources:
        mem_mb=4000,
        runtime=60,
        **model_resources("evaluation"),
    shell:
        EVALUATE_CMD


# A configured run's files are found by its run rule first; a search candidate's only by evaluate_model.
ruleorder: evaluate_run > evaluate_model
ruleorder: evaluate_sweep > evaluate_model


# Every seed of a configured run: evaluate_run on the test split, evaluate_sweep on the test and validation split.
for name, splits in (("evaluate_run", ("test",)), ("evaluate_sweep", SPLITS)):

    rule:
        name:
            name
        input:
            models=expand(rules.finetune.output.model, seed=EXP.seeds, allow_missing=True),
            data=lambda w, splits=splits: [path for split in splits for path in evaluation_files([w.task], split)],
        output:
            [path for files in score_files("{run}", "{task}", EXP.seeds, splits).values() for path in files],
        wildcard_constraints:
            run=any_of(RUNS_BY_SPLITS[splits]),
        params:
            scorings=lambda w, splits=splits: run_scoring_flags(w, EXP.seeds, splits),
            prompt=prompt_json,
            generation=lambda w: GENERATION_JSON,
            batch_size=EXP.evaluation["batch_size"],
            max_items=MAX_ITEMS,
            model_args=MODEL_ARGS,
        log:
            log_file(name, "{run}", "{task}"),
        benchmark:
            benchmark_file(name, "{run}", "{task}")
        conda:
            "../envs/cofi.yaml"
        threads: EXP.threads["evaluate"]
        resources:
            mem_mb=4000,
            runtime=60 * len(EXP.seeds) * len(splits),
            **model_resources("evaluation"),
        shell:
            EVALUATE_CMD


rule evaluate_model:
    """One model on one split: a search candidate (or any run's model asked for by path)."""
    input:
        model=rules.finetune.output.model,
        data=lambda w: evaluation_files([w.task], w.split),
    output:
        scores=f"{RUN_DIR}/{{split}}_scores.json",
        predictions=f"{RUN_DIR}/{{split}}_predictions.json",
    params:
        scorings=lambda w: run_scoring_flags(w, [w.seed], [w.split]),
        prompt=prompt_json,
        generation=lambda w: GENERATION_JSON,
        batch_size=EXP.evaluation["batch_size"],
        max_items=MAX_ITEMS,
        model_args=MODEL_ARGS,
    log:
        log_file("evaluate_model", "{run}", "{task}", "seed{seed}_{split}"),
    benchmark:
        benchmark_file("evaluate_model", "{run}", "{task}", "seed{seed}_{split}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads["evaluate"]
    resources:
        mem_mb=4000,
        runtime=60,
        **model_resources("evaluation"),
    shell:
        EVALUATE_CMD
