# The embedded synthetic world, written as JSONL (only needed where the config leaves paths null).
from cofi.world import SPLITS as WORLD_SPLITS


rule make_data:
    output:
        [LAYOUT.data_file(split) for split in WORLD_SPLITS],
    params:
        world=lambda w: as_json(config["embedded"]["world"]),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        log_file("make_data"),
    benchmark:
        benchmark_file("make_data", "make_data")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi make-data --world {params.world:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
