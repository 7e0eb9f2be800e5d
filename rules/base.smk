# The embedded base model: tokenizer + small Llama "aligned" on the versatility mixture.


rule build_base:
    input:
        LAYOUT.data_file("versatility_train"),
    output:
        directory(LAYOUT.base_model),
    params:
        world=lambda w: as_json(config["embedded"]["world"]),
        base=lambda w: as_json(config["embedded"]["base"]),
        prompt=lambda w: as_json(to_dict(PROMPT)),
    log:
        log_file("build_base"),
    benchmark:
        benchmark_file("build_base", "build_base")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads["base"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "python -m cofi build-base --world {params.world:q} --base {params.base:q} --train {input:q} "
        "--prompt {params.prompt:q} --out {output:q} --threads {threads} > {log:q} 2>&1"
