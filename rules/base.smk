# The embedded base model: tokenizer + small Llama "aligned" on the versatility mixture.


rule build_base:
    input:
        f"{DATA}/versatility_train.jsonl",
    output:
        directory(f"{RESULTS}/base_model"),
    params:
        world=lambda w: as_json(config["embedded"]["world"]),
        base=lambda w: as_json(config["embedded"]["base"]),
        template=lambda w: PROMPT["template"],  # a lambda: its braces are not wildcards
        max_len=PROMPT["max_len"],
    log:
        f"{LOGS}/build_base.log",
    benchmark:
        f"{BENCH}/build_base/build_base.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: config["threads"]["base"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "python -m cofi build-base --world {params.world:q} --base {params.base:q} --train {input:q} "
        "--template {params.template:q} --max-len {params.max_len} --out {output:q} "
        "--threads {threads} > {log:q} 2>&1"
