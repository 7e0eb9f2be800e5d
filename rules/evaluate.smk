# Score models on Spec (speciality) and Vers (know, reason, instruct), on the test or val split.


rule evaluate_base:
    input:
        model=base_model_dir(),
        data=eval_inputs(config["tasks"], "test"),
    output:
        scores=f"{RESULTS}/scores/base.json",
        predictions=f"{RESULTS}/scores/base.predictions.json",
    params:
        suites=lambda w: eval_suites(config["tasks"], "test"),
        labels=lambda w: as_json({"method": "base", "seed": None}),
        template=lambda w: PROMPT["template"],  # a lambda: its braces are not wildcards
        batch_size=config["evaluation"]["batch_size"],
        max_items=MAX_ITEMS,
        model_flags=MODEL_FLAGS,
    log:
        f"{LOGS}/evaluate/base.log",
    benchmark:
        f"{BENCH}/evaluate_base/base.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        EVALUATE_CMD


rule evaluate_run:
    input:
        model=f"{RUN}/model",
        data=lambda w: eval_inputs([w.task], w.split),
    output:
        scores=f"{RUN}/{{split}}_scores.json",
        predictions=f"{RUN}/{{split}}_predictions.json",
    params:
        suites=lambda w: eval_suites([w.task], w.split),
        labels=lambda w: as_json({"method": w.run, "task": w.task, "seed": int(w.seed), "split": w.split}),
        template=lambda w: PROMPT["template"],  # a lambda: its braces are not wildcards
        batch_size=config["evaluation"]["batch_size"],
        max_items=MAX_ITEMS,
        model_flags=MODEL_FLAGS,
    log:
        f"{LOGS}/evaluate/{{run}}/{{task}}/seed{{seed}}_{{split}}.log",
    benchmark:
        f"{BENCH}/evaluate_run/{{run}}/{{task}}/seed{{seed}}_{{split}}.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        EVALUATE_CMD
