# Score models on Spec (speciality test sets) and Vers (know, reason, instruct).


rule evaluate_base:
    input:
        model=base_model_dir(),
        data=eval_inputs(config["tasks"]),
    output:
        scores=f"{RESULTS}/scores/base.json",
        predictions=f"{RESULTS}/scores/base.predictions.json",
    params:
        suites=lambda w: eval_suites(config["tasks"]),
        labels=lambda w: json.dumps({"method": "base", "seed": None}),
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
        data=lambda w: eval_inputs([w.task]),
    output:
        scores=f"{RUN}/scores.json",
        predictions=f"{RUN}/predictions.json",
    params:
        suites=lambda w: eval_suites([w.task]),
        labels=lambda w: json.dumps({"method": w.method, "task": w.task, "seed": int(w.seed)}),
        template=lambda w: PROMPT["template"],  # a lambda: its braces are not wildcards
        batch_size=config["evaluation"]["batch_size"],
        max_items=MAX_ITEMS,
        model_flags=MODEL_FLAGS,
    log:
        f"{LOGS}/evaluate/{{method}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/evaluate_run/{{method}}/{{task}}/seed{{seed}}.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        EVALUATE_CMD
