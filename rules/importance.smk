# Unit importance on the base model, for the soft-mask methods: one file per data source
# (a task's unlabeled training inputs, or the versatility set), reused by every run and seed.


rule importance:
    input:
        model=base_model_dir(),
        data=lambda w: importance_data(w.source),
    output:
        tensors=f"{RESULTS}/importance/{{source}}.safetensors",
        plot=f"{RESULTS}/importance/{{source}}.png",
    params:
        options=lambda w: as_json({k: v for k, v in IMPORTANCE.items() if k not in ("source", "versatility_data")}),
        template=lambda w: PROMPT["template"],  # a lambda: its braces are not wildcards
        max_len=PROMPT["max_len"],
        model_flags=MODEL_FLAGS,
    log:
        f"{LOGS}/importance/{{source}}.log",
    benchmark:
        f"{BENCH}/importance/{{source}}.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: config["threads"]["importance"]
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m cofi importance --model {input.model:q} --data {input.data:q} --options {params.options:q} "
        "--template {params.template:q} --max-len {params.max_len} {params.model_flags} --threads {threads} "
        "--out {output.tensors:q} --plot {output.plot:q} > {log:q} 2>&1"
