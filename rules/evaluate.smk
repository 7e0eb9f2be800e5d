# Score models on Spec (speciality) and Vers (know, reason, instruct), on the test or val split.
# A configured run is scored at every seed in one job (one start-up, each model loaded once); a single model
# (a search candidate, on the split its search selects on) in a job of its own.


rule evaluate_base:
    input:
        model=EXP.base_model_dir,
        data=evaluation_files(TASKS, "test"),
    output:
        scores=LAYOUT.base_scores,
        predictions=LAYOUT.base_scores.replace(".json", ".predictions.json"),
    params:
        spec=lambda w: evaluate_spec([scoring(EXP.base_model_dir, EXP.evaluation_suites(TASKS, "test"),
                                              {"method": "base", "seed": None}, LAYOUT.base_scores,
                                              LAYOUT.base_scores.replace(".json", ".predictions.json"))]),
    log:
        log_file("evaluate_base", "base"),
    benchmark:
        benchmark_file("evaluate_base", "base")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.evaluate
    resources:
        mem_mb=4000,
        runtime=60,
        **model_resources("evaluation"),
    shell:
        job_command("evaluate")


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
            spec=lambda w, splits=splits: evaluate_spec(run_scorings(w, EXP.seeds, splits)),
        log:
            log_file(name, "{run}", "{task}"),
        benchmark:
            benchmark_file(name, "{run}", "{task}")
        conda:
            "../envs/cofi.yaml"
        threads: EXP.threads.evaluate
        resources:
            mem_mb=4000,
            runtime=60 * len(EXP.seeds) * len(splits),
            **model_resources("evaluation"),
        shell:
            job_command("evaluate")


rule evaluate_model:
    """One model on one split, or on a seeded sample of its items (val_items<N>_seed<S>: search.eval_items): a search
    candidate (or any run's model asked for by path)."""
    input:
        model=rules.finetune.output.model,
        data=lambda w: evaluation_files([w.task], split_of(w.split)[0]),
    output:
        scores=f"{RUN_DIR}/{{split}}_scores.json",
        predictions=f"{RUN_DIR}/{{split}}_predictions.json",
    params:
        spec=lambda w: evaluate_spec(run_scorings(w, [w.seed], [w.split])),
    log:
        log_file("evaluate_model", "{run}", "{task}", "seed{seed}_{split}"),
    benchmark:
        benchmark_file("evaluate_model", "{run}", "{task}", "seed{seed}_{split}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.evaluate
    resources:
        mem_mb=4000,
        runtime=60,
        **model_resources("evaluation"),
    shell:
        job_command("evaluate")
