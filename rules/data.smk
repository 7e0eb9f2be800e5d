# The data cofi makes itself where suite paths are null (embedded.suites: the symbolic world or the
# chat suites), written as JSONL.
from cofi.data.embedded import suites_module

EMBEDDED_SPLITS = suites_module(EXP.embedded_suites).SPLITS


localrules:
    make_data,  # seconds of pure Python: never submitted to a cluster


rule make_data:
    output:
        [LAYOUT.data_file(split) for split in EMBEDDED_SPLITS],
    params:
        spec=lambda w: job_spec("make-data", suites=EXP.embedded_suites, settings=to_dict(EXP.embedded_spec()),
                                out_dir=os.path.dirname(LAYOUT.data_file(EMBEDDED_SPLITS[0]))),
    log:
        log_file("make_data", "make_data"),
    benchmark:
        benchmark_file("make_data", "make_data")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("make-data")
