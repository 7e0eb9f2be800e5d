# Unit importance on the base model, for the soft-mask methods: one file per data source
# (a task's unlabeled training inputs, or the versatility set), reused by every run and seed.


rule importance:
    input:
        model=EXP.base_model_dir,
        data=lambda w: EXP.importance_data(w.source),
    output:
        tensors=LAYOUT.importance("{source}"),
        plot=LAYOUT.importance("{source}", "png"),
    params:
        spec=lambda w: job_spec("importance", model=EXP.base_model_dir, data=EXP.importance_data(w.source),
                                options=EXP.importance_options(), prompt=PROMPT, out=LAYOUT.importance(w.source),
                                plot=LAYOUT.importance(w.source, "png"), **ON_DEVICE),
        launcher=launcher,  # several processes where the site's GPUs are asked for (as a finetune job)
    log:
        log_file("importance", "{source}"),
    benchmark:
        benchmark_file("importance", "{source}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.importance
    resources:
        mem_mb=4000,
        runtime=30,
        **model_resources("importance"),
    shell:
        job_command("importance", "{params.launcher}")
