# The embedded synthetic world, written as JSONL (only needed where the config leaves paths null).


rule make_data:
    output:
        expand(f"{DATA}/{{split}}.jsonl", split=EMBEDDED_SPLITS),
    params:
        world=lambda w: as_json(config["embedded"]["world"]),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{LOGS}/make_data.log",
    benchmark:
        f"{BENCH}/make_data/make_data.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi make-data --world {params.world:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
