# Coarse search as a data-dependent DAG: one checkpoint per depth, then the report.
# Candidates are runs named region-<id> (and region-<id>_lr<lr> at another lr than the reference's: search.lr),
# so a wider beam, a deeper search or a longer lr list reuses finished ones.

SEARCH = LAYOUT.search_dir(EXP.search.name, "{task}")  # tree and grid side by side


localrules:
    search_step,
    search_result,  # cheap file work: never submitted to a cluster


checkpoint search_step:
    input:
        unpack(search_step_inputs),
    output:
        f"{SEARCH}/depth{{depth}}.json",
    params:
        spec=search_step_spec,
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
        job_command("search-step")


checkpoint search_result:
    input:
        search_depth_files,
    output:
        result=f"{SEARCH}/result.json",
        trace=f"{SEARCH}/trace.csv",
        table=f"{SEARCH}/table.md",
        tree=multiext(f"{SEARCH}/tree", ".png", ".pdf"),
    params:
        spec=lambda w: job_spec("search-report", task=w.task, depth_files=search_depth_files(w), n_layers=EXP.n_layers,
                                out_dir=LAYOUT.search_dir(EXP.search.name, w.task)),
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
        job_command("search-report")


rule search_all:
    """Target: every task's search result (without rebuilding the tables)."""
    input:
        expand(f"{SEARCH}/result.json", task=TASKS if SEARCH_ON else []),
