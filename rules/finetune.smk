# Fine-tune the base model on one speciality task: a configured run, or a search candidate.


rule finetune:
    input:
        unpack(method_inputs),
        model=EXP.base_model_dir,
        train=lambda w: EXP.tasks[w.task].file("train"),
    output:
        model=directory(f"{RUN_DIR}/model"),
        curve=f"{RUN_DIR}/loss.csv",
    params:
        run=run_spec,
        prompt=prompt_json,
        compute=lambda w: as_json({k: v for k, v in non_default(EXP.compute).items() if k != "device"}),
        inputs=method_input_flags,
        checkpoints=checkpoint_flags,
        model_args=MODEL_ARGS,
        launcher=launcher,
    log:
        log_file("finetune", "{run}", "{task}", "seed{seed}"),
    benchmark:
        benchmark_file("finetune", "{run}", "{task}", "seed{seed}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads["finetune"]
    resources:
        **training_resources(mem_mb=4000, runtime=120),
    shell:
        "{params.launcher} -m cofi finetune --model {input.model:q} --train {input.train:q} --run-spec {params.run:q} "
        "--seed {wildcards.seed} --prompt {params.prompt:q} --compute {params.compute:q} {params.inputs:q} "
        "{params.checkpoints:q} {params.model_args} --threads {threads} --out {output.model:q} "
        "--curve {output.curve:q} > {log:q} 2>&1"
