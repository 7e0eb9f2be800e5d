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
        options=lambda w: as_json(EXP.importance_options()),
        prompt=prompt_json,
        model_args=MODEL_ARGS,
        **IMPORTANCE_LAUNCHER,
    log:
        log_file("importance", "{source}"),
    benchmark:
        benchmark_file("importance", "{source}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads["importance"]
    resources:
        mem_mb=4000,
        runtime=30,
        **model_resources("importance"),
    shell:
        IMPORTANCE_PYTHON + " -m cofi importance --model {input.model:q} --data {input.data:q} --options {params.options:q} "
        "--prompt {params.prompt:q} {params.model_args} --threads {threads} "
        "--out {output.tensors:q} --plot {output.plot:q} > {log:q} 2>&1"
