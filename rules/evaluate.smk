# Score models on Spec (speciality) and Vers (know, reason, instruct), on the test or val split.


MAX_ITEMS = "" if EXP.evaluation["max_items"] is None else f"--max-items {int(EXP.evaluation['max_items'])}"
# One command line for both evaluation rules; every config value reaches the shell quoted.
EVALUATE_CMD = (
    "python -m cofi evaluate --model {input.model:q} --prompt {params.prompt:q} --generation {params.generation:q} "
    "--suites {params.suites:q} --labels {params.labels:q} --batch-size {params.batch_size} "
    "{params.max_items} --threads {threads} {params.model_args} "
    "--out {output.scores:q} --predictions {output.predictions:q} > {log:q} 2>&1"
)


rule evaluate_base:
    input:
        model=EXP.base_model_dir,
        data=evaluation_files(TASKS, "test"),
    output:
        scores=LAYOUT.base_scores,
        predictions=LAYOUT.base_scores.replace(".json", ".predictions.json"),
    params:
        suites=lambda w: as_json(EXP.evaluation_suites(TASKS, "test")),
        labels=lambda w: as_json({"method": "base", "seed": None}),
        prompt=lambda w: PROMPT_JSON,  # a lambda: its braces are not wildcards
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
    shell:
        EVALUATE_CMD


rule evaluate_run:
    input:
        model=rules.finetune.output.model,
        data=lambda w: evaluation_files([w.task], w.split),
    output:
        scores=f"{RUN_DIR}/{{split}}_scores.json",
        predictions=f"{RUN_DIR}/{{split}}_predictions.json",
    params:
        suites=lambda w: as_json(EXP.evaluation_suites([w.task], w.split)),
        labels=lambda w: as_json({"method": w.run, "task": w.task, "seed": int(w.seed), "split": w.split}),
        prompt=lambda w: PROMPT_JSON,  # a lambda: its braces are not wildcards
        generation=lambda w: GENERATION_JSON,
        batch_size=EXP.evaluation["batch_size"],
        max_items=MAX_ITEMS,
        model_args=MODEL_ARGS,
    log:
        log_file("evaluate_run", "{run}", "{task}", "seed{seed}_{split}"),
    benchmark:
        benchmark_file("evaluate_run", "{run}", "{task}", "seed{seed}_{split}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads["evaluate"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        EVALUATE_CMD
