# Coarse search as a data-dependent DAG: one checkpoint per depth, then the report.
# Candidates are runs named region-<id> (and region-<id>_lr<lr> at another lr than the reference's: search.lr),
# so a wider beam, a deeper search or a longer lr list reuses finished ones.

SEARCH = LAYOUT.search_dir(EXP.search.name, "{task}")  # tree and grid side by side
N_LAYERS = EXP.n_layers


localrules:
    search_step,
    search_result,  # cheap file work: never submitted to a cluster


checkpoint search_step:
    input:
        unpack(search_step_inputs),
    output:
        f"{SEARCH}/depth{{depth}}.json",
    params:
        policy=lambda w: as_json(to_dict(EXP.search.policy)),
        n_layers=N_LAYERS,
        split=lambda w: EXP.selection_split(w.task),
        previous=lambda w, input: ["--previous", input.previous] if "previous" in input.keys() else [],
        candidates=candidate_pairs,
        reference_run=lambda w: as_json({"run": EXP.search.reference, "lr": EXP.search.reference_lr}),
    log:
        log_file("search_step", EXP.search.name, "{task}", "depth{depth}"),
    benchmark:
        benchmark_file("search_step", EXP.search.name, "{task}", "depth{depth}")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi search-step --task {wildcards.task:q} --depth {wildcards.depth} "
        "--policy {params.policy:q} --n-layers {params.n_layers} --split {params.split} "
        "--reference {input.reference:q} --reference-run {params.reference_run:q} {params.previous:q} "
        "--candidates {params.candidates:q} "
        "--out {output:q} > {log:q} 2>&1"


checkpoint search_result:
    input:
        search_depth_files,
    output:
        result=f"{SEARCH}/result.json",
        trace=f"{SEARCH}/trace.csv",
        table=f"{SEARCH}/table.md",
        tree=multiext(f"{SEARCH}/tree", ".png", ".pdf"),
    params:
        n_layers=N_LAYERS,
        out_dir=lambda w, output: os.path.dirname(output.result),
    log:
        log_file("search_result", EXP.search.name, "{task}"),
    benchmark:
        benchmark_file("search_result", EXP.search.name, "{task}")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi search-report --task {wildcards.task:q} --n-layers {params.n_layers} "
        "--out-dir {params.out_dir:q} {input:q} > {log:q} 2>&1"


rule search_all:
    """Target: every task's search result (without rebuilding the tables)."""
    input:
        expand(f"{SEARCH}/result.json", task=TASKS if SEARCH_ON else []),
