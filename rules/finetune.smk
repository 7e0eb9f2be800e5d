# Fine-tune the base model on one speciality task: a configured run, or a search candidate.


rule finetune:
    input:
        unpack(method_inputs),
        model=base_model_dir(),
        train=lambda w: task_file(w.task, "train"),
    output:
        model=directory(f"{RUN}/model"),
        curve=f"{RUN}/loss.csv",
    params:
        method=lambda w: resolve_run(config, w.run)[0],
        hyper=finetune_params,
        template=lambda w: PROMPT["template"],  # a lambda: its braces are not wildcards
        max_len=PROMPT["max_len"],
        mask=lambda w: "--mask-prompt" if PROMPT["mask_prompt"] else "--no-mask-prompt",
        model_flags=finetune_flags,
        launcher=launcher,
        extra=finetune_extra_inputs,
    log:
        f"{LOGS}/finetune/{{run}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/finetune/{{run}}/{{task}}/seed{{seed}}.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: config["threads"]["finetune"]
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{params.launcher} -m cofi finetune --model {input.model:q} --method {params.method:q} "
        "--params {params.hyper:q} --train {input.train:q} --seed {wildcards.seed} "
        "--template {params.template:q} --max-len {params.max_len} {params.mask} "
        "{params.model_flags} {params.extra:q} --threads {threads} --out {output.model:q} --curve {output.curve:q} "
        "> {log:q} 2>&1"
