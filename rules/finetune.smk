# Fine-tune the base model on one speciality task: a configured run, or a search candidate.


rule finetune:
    input:
        unpack(method_inputs),
        unpack(forgetting_inputs),
        model=EXP.base_model_dir,
        train=lambda w: EXP.tasks[w.task].file("train"),
    output:
        model=directory(f"{RUN_DIR}/model"),
        curve=f"{RUN_DIR}/loss.csv",
    params:
        spec=finetune_spec,
        launcher=launcher,
    log:
        log_file("finetune", "{run}", "{task}", "seed{seed}"),
    benchmark:
        benchmark_file("finetune", "{run}", "{task}", "seed{seed}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.finetune
    resources:
        **training_resources(mem_mb=4000, runtime=120),
    shell:
        job_command("finetune", "{params.launcher}")
